"""Chapter 3's run setup: task batches, test evaluation, a fresh adapter with its data and stopwatch.

Plain helpers of :mod:`lls.chapters.lora_drift.protocol` (which holds the cached experiments).
"""

from __future__ import annotations

import time

import torch

from lls import lora, models, seeds, textdata
from lls.evaluation import answer_metrics


class TaskBatches:
    """Encoded training examples of one task, served as batches ``step -> batch``.

    A pool of ``n_batches * batch_size`` examples, drawn with ``seed``, is encoded once; batch ``s``
    is slice ``s mod n_batches`` of a shuffle by the ``"batch order"`` stream of ``seed``, so steps
    cycle through the pool. Each batch is a dict of (batch_size, <= max_length) int64 tensors on ``device``.
    """

    def __init__(self, tokenizer, task: str, batch_size: int, max_length: int, n_batches: int, seed: int,
                 device: str = "cpu"):
        data = textdata.encode(tokenizer, textdata.examples(task, "train", n_batches * batch_size, seed),
                               max_length)
        order = torch.randperm(n_batches * batch_size, generator=seeds.generator(seed, "batch order"))
        self.data = {k: v[order].to(device) for k, v in data.items()}
        self.batch_size, self.n_batches = batch_size, n_batches

    def __call__(self, step: int) -> dict:
        start = (step % self.n_batches) * self.batch_size
        return {k: v[start:start + self.batch_size] for k, v in self.data.items()}


def evaluate(model, tokenizer, task: str, n: int, max_length: int, device: str = "cpu") -> dict[str, float]:
    """Answer loss (nats per answer token) and accuracy (fraction) of ``model`` on ``n`` test examples.

    The same test examples for every run and seed (``textdata.examples``'s fixed draw 0).
    """
    batch = textdata.encode(tokenizer, textdata.examples(task, "test", n, 0), max_length)
    return answer_metrics(model, {k: v.to(device) for k, v in batch.items()})


def undone_fraction(loss_start: float, loss_after_a: float, loss_after_b: float) -> float:
    """Fraction of task A's test-loss gain (start -> after A) that training on B undid; nan without gain."""
    gain = loss_start - loss_after_a
    return (loss_after_b - loss_after_a) / gain if gain > 0 else float("nan")


class Setup:
    """A fresh LoRA adapter on ``spec.model`` (a ScreenSpec or RunSpec) with task A and B batches drawn from ``seed``'s streams,
    and a stopwatch: ``lap(name)`` closes the part of the run named ``name`` (wall seconds in ``seconds``)."""

    def __init__(self, spec, seed: int, n_batches: int):
        self.seconds: dict[str, float] = {}
        self.clock, self.cpu_start = time.perf_counter(), time.process_time()
        torch.manual_seed(seeds.derive(seed, "lora init"))  # the adapter's initial A factors
        self.model, self.tok = models.load(spec.model, device=spec.device)
        self.peft = lora.add_lora(self.model, r=spec.lora_rank, alpha=spec.lora_alpha)
        self.space = lora.adapter_space(self.peft)
        self.spec, self.tasks = spec, spec.pair
        self.data = [TaskBatches(self.tok, task, spec.batch_size, spec.max_length, n_batches,
                                 seeds.derive(seed, "training data", role), spec.device)
                     for task, role in zip(spec.pair, ("task A", "task B"), strict=True)]

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name], self.clock = now - self.clock, now

    def cpu_seconds(self) -> float:
        """CPU seconds (all threads) since the setup started."""
        return time.process_time() - self.cpu_start

    def evals(self, tasks=None) -> dict[str, dict[str, float]]:
        s = self.spec
        return {t: evaluate(self.peft, self.tok, t, s.n_eval, s.max_length, s.device) for t in tasks or self.tasks}
