"""Synthetic sequence tasks marked by a task token, their batches, loss and exact-match accuracy.

A sequence of the task family :class:`Tasks` (``L`` = ``length``, ``n`` = ``n_symbols``) is

``[task token, x_1 .. x_L, SEP, y_1 .. y_L]``  (``2L + 2`` tokens)

with symbols ``x_i`` drawn uniformly from ``0 .. n-1`` and the answer ``y`` a function of ``x``:

* ``copy``: ``y = x``;  * ``reverse``: ``y_i = x_{L+1-i}``;  * ``sort``: ``y = sorted(x)``;
* ``add`` (modular addition): ``y_i = (x_i + x_{L+1-i}) mod n``, the sequence plus its reverse.

Held-out inputs: one input sequence ``x`` in :data:`HOLDOUT` (chosen by a hash of ``x``, the same for
every task) is never drawn for training; test sequences (``split="test"``) are drawn from those
inputs only, so a test accuracy is measured on inputs the model has never seen.

Token ids: symbols ``0 .. n-1``, ``SEP = n``, task tokens ``n+1 .. n+len(TASKS)``. The loss is the
mean cross-entropy of the next-token prediction on the ``L`` answer tokens only. Exact-match
accuracy counts an example as right when every answer token is the argmax prediction given the
true prefix; for exact match this equals greedy decoding (if all teacher-forced argmaxes are
right, greedy decoding reproduces the same tokens, and conversely).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lls.seeds import derive

TASKS: tuple[str, ...] = ("copy", "reverse", "sort", "add")
HOLDOUT = 10
"""One input sequence in ``HOLDOUT`` (by :func:`held_out`) is kept for testing, never trained on."""
SPLITS = ("train", "test")
_PRIME = 2**31 - 1


def held_out(x: torch.Tensor) -> torch.Tensor:
    """Boolean ``(B,)``: which input sequences ``x`` ``(B, L)`` are held out for testing (a fixed hash
    of the symbols: a polynomial hash mod 2^31-1, mixed by Knuth's multiplier, kept when ``% HOLDOUT == 0``)."""
    h = torch.zeros(x.shape[0], dtype=torch.long)
    for column in x.T:
        h = (h * 1_000_003 + column.long() + 1) % _PRIME
    return (h * 2654435761) % 2**32 % HOLDOUT == 0


@dataclass(frozen=True)
class Tasks:
    """The task family: sequences of ``length`` symbols from an alphabet of ``n_symbols``."""

    length: int
    n_symbols: int

    def __post_init__(self):
        if self.length < 2 or self.n_symbols < 2:
            raise ValueError("length and n_symbols must be >= 2")
        if self.n_symbols ** self.length <= 4096:  # small input spaces: both splits must be non-empty
            every = torch.cartesian_prod(*[torch.arange(self.n_symbols)] * self.length)
            if not 0 < int(held_out(every).sum()) < len(every):
                raise ValueError(f"{self.n_symbols}^{self.length} inputs are too few to hold one in {HOLDOUT} "
                                 f"out for testing; use a longer sequence or a larger alphabet")

    @property
    def sep(self) -> int:
        return self.n_symbols

    @property
    def vocab_size(self) -> int:
        return self.n_symbols + 1 + len(TASKS)

    @property
    def seq_len(self) -> int:
        return 2 * self.length + 2

    def task_token(self, task: str) -> int:
        return self.n_symbols + 1 + TASKS.index(task)

    def answer(self, task: str, x: torch.Tensor) -> torch.Tensor:
        """The answer ``(B, L)`` of ``task`` for inputs ``x`` ``(B, L)``."""
        if task == "copy":
            return x.clone()
        if task == "reverse":
            return x.flip(1)
        if task == "sort":
            return x.sort(dim=1).values
        if task == "add":
            return (x + x.flip(1)) % self.n_symbols
        raise ValueError(f"unknown task {task!r}; the tasks are {TASKS}")

    def inputs(self, size: int, generator: torch.Generator, split: str = "train") -> torch.Tensor:
        """``size`` input sequences ``(size, L)`` drawn uniformly from the ``split``'s inputs: those not
        :func:`held_out` (``train``) or only those (``test``), by rejection."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        kept, have = [], 0
        while have < size:
            draw = max(size - have, 1) * (HOLDOUT + 1 if split == "test" else 2)
            x = torch.randint(0, self.n_symbols, (draw, self.length), generator=generator)
            x = x[held_out(x) == (split == "test")]
            kept.append(x)
            have += len(x)
        return torch.cat(kept)[:size]

    def batch(self, tasks: str | Sequence[str], size: int, generator: torch.Generator,
              split: str = "train") -> torch.Tensor:
        """``size`` sequences ``(size, 2L+2)`` (int64) of ``split``'s inputs (:meth:`inputs`); each of a task
        drawn uniformly from ``tasks``."""
        tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        x = self.inputs(size, generator, split)
        which = torch.randint(0, len(tasks), (size,), generator=generator)
        out = torch.empty(size, self.seq_len, dtype=torch.long)
        out[:, 1:self.length + 1] = x
        out[:, self.length + 1] = self.sep
        for j, task in enumerate(tasks):
            rows = which == j
            out[rows, 0] = self.task_token(task)
            out[rows, self.length + 2:] = self.answer(task, x[rows])
        return out

    def sampler(self, tasks: str | Sequence[str], size: int, seed: int) -> Callable[[int], torch.Tensor]:
        """``step -> batch``: batch number ``step`` of a reproducible stream (for :func:`lls.train.train`);
        the same ``(seed, step)`` always gives the same batch."""
        return lambda step: self.batch(tasks, size, torch.Generator().manual_seed(derive(seed, "sampler", step)))


def answer_logits(call: Callable, batch: torch.Tensor) -> torch.Tensor:
    """Logits ``(B, L, V)`` predicting the ``L`` answer tokens (``call(input_ids=...)`` runs the model)."""
    length = (batch.shape[1] - 2) // 2
    return call(input_ids=batch).logits[:, -length - 1:-1]


def batch_loss(call: Callable, batch: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per answer token) of the answer tokens of ``batch``."""
    logits = answer_logits(call, batch)
    length = logits.shape[1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, -length:].reshape(-1))


@torch.no_grad()
def exact_match(model: torch.nn.Module, batch: torch.Tensor, chunk: int = 512) -> float:
    """Fraction of the sequences of ``batch`` whose whole answer is predicted right (argmax)."""
    right = 0
    for part in batch.split(chunk):
        logits = answer_logits(model, part)
        right += int((logits.argmax(-1) == part[:, -logits.shape[1]:]).all(dim=1).sum())
    return right / len(batch)


def accuracies(model: torch.nn.Module, tasks: Tasks, n: int, seed: int) -> dict[str, float]:
    """Exact-match accuracy of ``model`` on ``n`` test sequences of every task, on held-out inputs
    (never trained on; :func:`held_out`) drawn from the stream ``derive(seed, "accuracy test")``."""
    generator = torch.Generator().manual_seed(derive(seed, "accuracy test"))
    return {task: exact_match(model, tasks.batch(task, n, generator, "test")) for task in TASKS}
