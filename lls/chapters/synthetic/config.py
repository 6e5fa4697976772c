"""Chapter 2's parameters: the synthetic tasks, the model, its training, forgetting and recovery.

:class:`Config` is every parameter of the chapter; :class:`Training` is the part that the
multitask model theta0 and the forgotten point theta_f depend on, so that the cached stages
(:mod:`lls.chapters.synthetic.protocol`) that produce them, and chapter 4, which searches
around theta_f, are keyed on it alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lls.config import ChapterConfig, param, presets
from lls.protocols.forget_recover import Phases
from lls.synthetic import TASKS

SGD_LRS = (0.01, 0.03, 0.1, 0.3, 1.0)
"""Learning rates tried, in this order, for the SGD recovery arm (C2/C4 without Adam's sign-like first
steps); the rule, fixed before any SGD run: the smallest rate whose task-A accuracy after
``recover_steps`` is at least Adam's minus :data:`SGD_MATCH`, else the most accurate rate tried."""
SGD_MATCH = 0.05
"""How far below Adam's task-A accuracy (a fraction) the SGD arm's may end and still count as comparable."""


@dataclass(frozen=True)
class Training:
    """What theta0 (multitask training) and theta_f (the forgetting run) depend on; see :class:`Config`."""

    task: str
    length: int
    n_symbols: int
    n_layer: int
    n_embd: int
    n_head: int
    batch_size: int
    pretrain_lr: float
    lr: float
    pretrain_steps: int
    forget_steps: int
    n_eval: int

    def phases(self, recover_steps: int, k_max: int = 0, checkpoint_every: int | None = None) -> Phases:
        """The forget and recover phases at this training's rate ``lr`` (Adam), recovering ``recover_steps``."""
        return Phases(forget_steps=self.forget_steps, recover_steps=recover_steps, lr=self.lr,
                      record_first=k_max, checkpoint_every=checkpoint_every)


@dataclass(frozen=True)
class Config(ChapterConfig):
    """Chapter 2: a small multitask transformer, forgotten and recovered (C1-C4, C10)."""

    chapter: ClassVar[str] = "02_synthetic"
    cpu_only: ClassVar[str] = "its transformers have about 10^5 weights and its analysis works on CPU tensors"
    renamed: ClassVar[dict[str, str]] = {"tune_lr": "lr", "eval_n": "n_eval", "record_first": "k_max"}

    task: str = param("reverse", choices=TASKS)
    """task A, forgotten and recovered"""
    length: int = param(5, low=2, high=16)
    """symbols per input sequence"""
    n_symbols: int = param(8, low=2, high=64)
    """alphabet size"""
    n_layer: int = param(2, low=1, high=8)
    """transformer blocks"""
    n_embd: int = param(64, low=8, high=512)
    """model width"""
    n_head: int = param(4, low=1, high=16)
    """attention heads"""
    batch_size: int = param(64, low=1, high=4096)
    """training batch size (sequences)"""
    pretrain_lr: float = param(5e-3, low=1e-6, high=1.0)
    """peak Adam learning rate of (multitask or sequential) training (called lr before the refactor)"""
    lr: float = param(3e-3, low=1e-6, high=1.0)
    """constant Adam learning rate of forgetting and recovery (called tune_lr before; lr was the
    training rate, now pretrain_lr)"""
    pretrain_steps: int = param(1500, low=1, high=100_000)
    """multitask training steps (theta0)"""
    forget_steps: int = param(300, low=1, high=100_000)
    """steps on the other tasks (theta_f)"""
    recover_steps: int = param(200, low=1, high=100_000)
    """steps on task A (theta_r)"""
    k_max: int = param(64, low=1, high=512)
    """recovery updates recorded = largest basis size k"""
    checkpoint_every: int = param(10, low=1, high=10_000)
    """recovery steps between drift checkpoints"""
    n_grad_batches: int = param(64, low=2, high=4096)
    """per-batch task-A gradients for spectra and SVD bases"""
    grad_batch_size: int = param(16, low=1, high=4096)
    """sequences per gradient batch"""
    drift_batches: int = param(16, low=2, high=512)
    """per-batch gradients at each drift checkpoint"""
    drift_k: int = param(8, low=1, high=512)
    """size of the top-k gradient subspaces compared in the drift map"""
    lanczos_iter: int = param(80, low=2, high=2048)
    """Lanczos iterations (HVPs) for the Hessian top-k"""
    hvp_batch_size: int = param(64, low=1, high=65536)
    """task-A sequences in the Hessian's batch"""
    noise_sigma: float = param(0.02, low=0.0, high=10.0)
    """std of the weight noise in the robustness table"""
    n_eval: int = param(512, low=1, high=100_000)
    """test sequences per task for exact-match accuracy"""
    n_seeds: int = param(5, low=1, high=50)
    """seeds (seed, seed+1, ...) for means, spreads and the t-intervals every verdict is decided on"""

    def rules(self) -> list[tuple[bool, str]]:
        return [
            (self.n_embd % self.n_head == 0, f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"),
            (self.k_max <= self.recover_steps,
             f"k_max ({self.k_max}) cannot exceed recover_steps ({self.recover_steps})"),
            (self.k_max <= self.n_grad_batches,
             f"the gradient SVD bases need n_grad_batches >= k_max (the largest k); "
             f"got {self.n_grad_batches} < {self.k_max}"),
            (self.k_max <= self.lanczos_iter, f"lanczos_iter ({self.lanczos_iter}) must be >= k_max ({self.k_max})"),
            (self.drift_k <= self.drift_batches,
             f"drift_k ({self.drift_k}) cannot exceed drift_batches ({self.drift_batches})"),
            (2 * self.checkpoint_every <= self.recover_steps and self.recover_steps % self.checkpoint_every == 0,
             f"checkpoint_every ({self.checkpoint_every}) must divide recover_steps ({self.recover_steps}) "
             f"and leave >= 3 checkpoints"),
        ]

    def training(self) -> Training:
        """The parameters theta0 and theta_f depend on."""
        return Training(task=self.task, length=self.length, n_symbols=self.n_symbols, n_layer=self.n_layer,
                        n_embd=self.n_embd, n_head=self.n_head, batch_size=self.batch_size,
                        pretrain_lr=self.pretrain_lr, lr=self.lr, pretrain_steps=self.pretrain_steps,
                        forget_steps=self.forget_steps, n_eval=self.n_eval)

    def seeds(self) -> list[int]:
        """The seeds of the run: ``seed, seed + 1, ..., seed + n_seeds - 1``."""
        return [self.seed + i for i in range(self.n_seeds)]


PRESETS = presets(
    Config,
    smoke={"length": 4, "n_symbols": 6, "n_layer": 1, "n_embd": 32, "n_head": 2, "batch_size": 32,
           "pretrain_lr": 1e-2, "pretrain_steps": 60, "forget_steps": 15, "recover_steps": 20, "k_max": 8,
           "checkpoint_every": 5, "n_grad_batches": 8, "grad_batch_size": 8, "drift_batches": 4, "drift_k": 2,
           "lanczos_iter": 12, "hvp_batch_size": 32, "n_eval": 64, "n_seeds": 2},
    cpu={},
    paper={"length": 6, "n_symbols": 10, "n_layer": 4, "n_embd": 128, "batch_size": 128, "pretrain_steps": 4000,
           "forget_steps": 500, "recover_steps": 500, "n_grad_batches": 128, "grad_batch_size": 32,
           "drift_batches": 32, "lanczos_iter": 128, "hvp_batch_size": 256, "n_eval": 2048, "n_seeds": 5},
)
