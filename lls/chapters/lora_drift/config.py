"""Chapter 3's parameters: one typed field per parameter, presets as instances, cross-field rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lls import models, textdata
from lls.config import ChapterConfig, param, presets


@dataclass(frozen=True)
class Config(ChapterConfig):
    """LoRA subspace drift: forget and recover a task in a pretrained LM's adapter space.

    Class defaults are the ``cpu`` preset.
    """

    chapter: ClassVar[str] = "03_lora_drift"
    renamed: ClassVar[dict[str, str]] = {
        "rank": "lora_rank", "alpha": "lora_alpha", "steps_a": "learn_steps", "steps_b": "forget_steps",
        "steps_recover": "recover_steps", "n_grad": "n_grad_batches", "drift_every": "checkpoint_every"}

    models: str = "smollm2-135m"
    """comma-separated registry names of the pretrained models (lls.models)"""
    pairs: int = param(2, low=1, high=2)
    """how many task pairs of lls.textdata.TASK_PAIRS to run (first ones)"""
    n_seeds: int = param(3, low=1, high=20)
    """seeds per model and pair (seed, seed+1, ...)"""
    lora_rank: int = param(8, low=1, high=256)
    """LoRA rank r"""
    lora_alpha: int = param(16, low=1, high=1024)
    """LoRA alpha (scaling = alpha / r)"""
    lr: float = param(1e-3, low=1e-6, high=1.0)
    """Adam learning rate of all three phases"""
    batch_size: int = param(8, low=1, high=512)
    """examples per training batch"""
    max_length: int = param(32, low=8, high=1024)
    """tokens per example (padded/truncated)"""
    learn_steps: int = param(20, low=1, high=100_000)
    """steps of the first training on task A"""
    forget_steps: int = param(20, low=1, high=100_000)
    """steps of training on task B (forgetting A)"""
    recover_steps: int = param(100, low=2, high=100_000)
    """steps of recovery on task A (T)"""
    k_max: int = param(100, low=1, high=10_000)
    """largest prefix length k (at most recover_steps)"""
    k_ref: int = param(10, low=1, high=10_000)
    """prefix length at which C4 is read, fixed in advance"""
    k_static: int = param(8, low=1, high=1000)
    """largest dimension of the static bases (gradient SVD, Hessian, Krylov, random)"""
    n_grad_batches: int = param(8, low=1, high=1000)
    """per-batch gradients for each gradient-SVD basis (>= k_static)"""
    lanczos_iter: int = param(12, low=1, high=1000)
    """Lanczos iterations (Hessian-vector products) for the top-k eigenvectors"""
    curvature_runs: int = param(1, low=0, high=1000)
    """runs (first ones) that compute the Hessian and Krylov bases"""
    checkpoint_every: int = param(20, low=1, high=10_000)
    """recovery steps between the gradient bases compared for drift"""
    drift_k: int = param(4, low=1, high=1000)
    """dimension of the top-k gradient subspaces compared for drift"""
    n_eval: int = param(32, low=1, high=100_000)
    """test examples per task for the loss/accuracy table"""

    def rules(self) -> list[tuple[bool, str]]:
        """Cross-field rules; an unknown model name raises :class:`ConfigError` from :func:`lls.models.names_from`."""
        models.names_from(self.models)
        return [
            (self.k_max <= self.recover_steps, "k_max must be at most recover_steps"),
            (self.k_ref <= self.k_max, "k_ref must be at most k_max"),
            (self.k_static <= self.n_grad_batches, "k_static must be at most n_grad_batches (top-k of n gradients)"),
            (self.drift_k <= self.n_grad_batches, "drift_k must be at most n_grad_batches"),
            (self.k_static <= self.lanczos_iter, "k_static must be at most lanczos_iter"),
            (self.checkpoint_every < self.recover_steps, "checkpoint_every must be below recover_steps"),
            (self.pairs <= len(textdata.TASK_PAIRS), f"pairs must be at most {len(textdata.TASK_PAIRS)}"),
        ]


PRESETS = presets(
    Config,
    smoke={"models": "tiny-llama", "n_seeds": 1, "lora_rank": 4, "lora_alpha": 8, "lr": 1e-2, "batch_size": 4,
           "max_length": 24, "learn_steps": 6, "forget_steps": 6, "recover_steps": 12, "k_max": 12, "k_ref": 5,
           "k_static": 3, "n_grad_batches": 4, "lanczos_iter": 4, "checkpoint_every": 4, "drift_k": 2,
           "n_eval": 8},
    cpu={},
    paper={"models": "distilgpt2,gpt2", "n_seeds": 5, "batch_size": 16, "max_length": 64, "learn_steps": 300,
           "forget_steps": 300, "recover_steps": 400, "k_static": 16, "n_grad_batches": 32, "lanczos_iter": 40,
           "curvature_runs": 100, "drift_k": 8, "n_eval": 256},
)
"""The presets: ``cpu`` is the class defaults; ``smoke`` and ``paper`` list what differs from it."""
