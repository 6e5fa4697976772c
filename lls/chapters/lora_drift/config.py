"""Chapter 3's parameters: one typed field per parameter, presets as instances, cross-field rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lls import models, textdata
from lls.config import ChapterConfig, param, presets

CANDIDATE_PAIRS: tuple[tuple[str, str], ...] = (
    *textdata.TASK_PAIRS, ("past_tense", "plural"), ("number_words", "arithmetic"), ("antonym", "plural"),
    ("plural", "antonym"), ("capital", "antonym"), ("antonym", "capital"), ("past_tense", "antonym"),
    ("antonym", "past_tense"))
"""Task pairs (A, B) the forgetting screen tries, in this fixed order (written before any screen ran):
the two pairs of lls.textdata.TASK_PAIRS, their reverses, then word-task pairs sharing an input domain."""


@dataclass(frozen=True)
class Config(ChapterConfig):
    """LoRA subspace drift: forget and recover a task in a pretrained LM's adapter space.

    Class defaults are the ``cpu`` preset.
    """

    chapter: ClassVar[str] = "03_lora_drift"
    renamed: ClassVar[dict[str, str]] = {
        "rank": "lora_rank", "alpha": "lora_alpha", "steps_a": "learn_steps", "steps_b": "forget_steps",
        "steps_recover": "recover_steps", "n_grad": "n_grad_batches", "drift_every": "checkpoint_every",
        "curvature_runs": "curvature_seeds", "k_ref": "k_fraction", "k_max": "k_fraction"}

    models: str = "smollm2-135m"
    """comma-separated registry names of the pretrained models (lls.models)"""
    pairs: int = param(4, low=1, high=len(CANDIDATE_PAIRS))
    """task pairs measured: the first ones of CANDIDATE_PAIRS that pass the forgetting screen"""
    screen_max: int = param(8, low=1, high=len(CANDIDATE_PAIRS))
    """candidate pairs the screen may try, in order, before it stops with fewer than ``pairs``"""
    n_seeds: int = param(2, low=1, high=20)
    """seeds per model and pair (seed, seed+1, ...); the screen uses its own seed stream"""
    lora_rank: int = param(8, low=1, high=256)
    """LoRA rank r"""
    lora_alpha: int = param(16, low=1, high=1024)
    """LoRA alpha (scaling = alpha / r)"""
    lr: float = param(3e-3, low=1e-6, high=1.0)
    """Adam learning rate of all three phases (cpu: 3e-3, raised from 1e-3 when the screen at 1e-3 passed
    one candidate pair of eight; registry C4). The SGD recovery arm's rate is not a parameter: it is
    1 / lambda_max, the top eigenvalue of the task-A Hessian at theta_f (Lanczos), the largest step a
    quadratic model at theta_f takes without overshooting its sharpest direction (a rule fixed before the
    cpu preset ran; the first rule, SGD's first step as long as Adam's, diverged on one cpu run)"""
    batch_size: int = param(4, low=1, high=512)
    """examples per training batch (and per gradient batch)"""
    max_length: int = param(32, low=8, high=1024)
    """tokens per example at most (batches are padded to their longest row)"""
    learn_steps: int = param(20, low=1, high=100_000)
    """steps of the first training on task A (also in the screen)"""
    forget_steps: int = param(20, low=1, high=100_000)
    """steps of training on task B, forgetting A (also in the screen)"""
    recover_steps: int = param(40, low=2, high=100_000)
    """steps of recovery on task A: the longest horizon T"""
    horizons: str = "20,40"
    """comma-separated recovery horizons T at which C4 is read (each a multiple of checkpoint_every, the
    last = recover_steps); the run for the longest includes every shorter one (no schedule, same data)"""
    k_fraction: float = param(0.1, low=0.001, high=1.0)
    """C4's prefix length as a fraction of the horizon: k = max(1, round(k_fraction * T)), fixed in advance"""
    k_static: int = param(4, low=1, high=1000)
    """dimension k at which static bases are compared with the prefix (at most k at the longest T)"""
    n_grad_batches: int = param(4, low=1, high=1000)
    """per-batch gradients in each of the two independent gradient sets (>= drift_k); the static
    gradient SVD uses both sets (2 n gradients)"""
    lanczos_iter: int = param(4, low=1, high=1000)
    """Lanczos iterations (Hessian-vector products) for the top-k eigenvectors"""
    curvature_seeds: int = param(1, low=0, high=20)
    """first seeds of every pair whose runs compute the Hessian, Krylov and preconditioned-Krylov bases"""
    sgd_seeds: int = param(1, low=0, high=20)
    """first seeds of every pair whose runs add a second recovery from theta_f with plain SGD (at most
    curvature_seeds: its learning rate needs the Hessian's top eigenvalue)"""
    checkpoint_every: int = param(4, low=1, high=10_000)
    """recovery steps between the checkpoints compared for drift (C3)"""
    drift_window: int = param(32, low=1, high=100_000)
    """recovery steps (from theta_f) over which the drift checkpoints are taken"""
    drift_k: int = param(2, low=1, high=1000)
    """dimension of the top-k gradient subspaces compared for drift"""
    n_eval: int = param(24, low=1, high=100_000)
    """test examples per task for the loss/accuracy table and the forgetting screen"""

    def horizon_list(self) -> list[int]:
        """The horizons T as integers, in the given order."""
        return [int(t) for t in self.horizons.split(",") if t.strip()]

    def k_at(self, horizon: int) -> int:
        """C4's prefix length at horizon T: max(1, round(k_fraction * T))."""
        return max(1, round(self.k_fraction * horizon))

    def rules(self) -> list[tuple[bool, str]]:
        """Cross-field rules; an unknown model name raises :class:`ConfigError` from :func:`lls.models.names_from`."""
        models.names_from(self.models)
        ts = self.horizon_list() if all(t.strip().isdigit() for t in self.horizons.split(",")) else []
        k_max = self.k_at(self.recover_steps)
        return [
            (bool(ts), "horizons must be comma-separated positive integers"),
            (bool(ts) and ts[-1] == self.recover_steps, "the last horizon must equal recover_steps"),
            (all(0 < t <= self.recover_steps and t % self.checkpoint_every == 0 for t in ts),
             "every horizon must be a multiple of checkpoint_every and at most recover_steps"),
            (self.k_static <= k_max, "k_static must be at most k at the longest horizon (k_fraction * recover_steps)"),
            (self.k_static <= 2 * self.n_grad_batches, "k_static must be at most 2 * n_grad_batches"),
            (self.drift_k <= self.n_grad_batches, "drift_k must be at most n_grad_batches"),
            (self.k_static <= self.lanczos_iter, "k_static must be at most lanczos_iter"),
            (self.checkpoint_every < self.drift_window <= self.recover_steps,
             "checkpoint_every must be below drift_window, and drift_window at most recover_steps"),
            (self.drift_window % self.checkpoint_every == 0, "drift_window must be a multiple of checkpoint_every"),
            (self.pairs <= self.screen_max, "pairs must be at most screen_max"),
            (self.sgd_seeds <= self.curvature_seeds, "sgd_seeds must be at most curvature_seeds (SGD's lr is 1/lambda_max)"),
        ]


PRESETS = presets(
    Config,
    smoke={"models": "tiny-llama", "pairs": 2, "screen_max": 4, "n_seeds": 1, "lora_rank": 4, "lora_alpha": 8,
           "lr": 1e-2, "batch_size": 4, "max_length": 24, "learn_steps": 6, "forget_steps": 6, "recover_steps": 12,
           "horizons": "6,12", "k_fraction": 0.25, "k_static": 3, "n_grad_batches": 3, "lanczos_iter": 4,
           "checkpoint_every": 2, "drift_window": 8, "drift_k": 2, "n_eval": 8},
    cpu={},
    paper={"models": "distilgpt2,gpt2", "n_seeds": 5, "batch_size": 16, "max_length": 64, "learn_steps": 300,
           "forget_steps": 300, "recover_steps": 400, "lr": 1e-3, "horizons": "100,200,400", "k_static": 16,
           "n_grad_batches": 16, "lanczos_iter": 40, "curvature_seeds": 5, "sgd_seeds": 5, "checkpoint_every": 5,
           "drift_window": 150, "drift_k": 8, "n_eval": 256},
)
"""The presets: ``cpu`` is the class defaults; ``smoke`` and ``paper`` list what differs from it."""
