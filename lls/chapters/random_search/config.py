"""Chapter 4's parameters: the sigma grids and searches around chapter 2's theta_f, the LM's LoRA
search, the C6 subspaces and RandOpt.

The synthetic model, its training and its forgetting run are chapter 2's, with chapter 2's
parameters for the same preset (:func:`chapter2`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lls import models, textdata
from lls.chapters.synthetic import config as chapter2_config
from lls.config import ChapterConfig, param, presets

ODD_TOL = 0.2
"""Largest relative drift of F1/sigma from the smallest grid sigma still called local-linear
(a regime diagnostic, see :attr:`lls.f1f2.F1F2Result.odd_deviation`)."""

LOCAL_FRACTION = 0.1
"""The C6 local norm as a fraction of the smallest optimal norm over the subspaces (:func:`.protocol.c6_norm`)."""

LM_MODELS = tuple(name for name in models.MODEL_NAMES if name != "synthetic-gpt2")
"""The pretrained (or tiny random) LMs whose LoRA space can be searched."""


@dataclass(frozen=True)
class Config(ChapterConfig):
    """Chapter 4: random parameter search (Theorem 1, Proposition 1; C5, C6) and RandOpt."""

    chapter: ClassVar[str] = "04_random_search"
    renamed: ClassVar[dict[str, str]] = {"lora_r": "lora_rank", "lm_model": "model", "hutchinson": "hutchinson_probes",
                                         "randopt_test": "n_eval"}

    eval_batch: int = param(32, low=1, high=65536)
    """task-A sequences in the searched loss"""
    sigma_min: float = param(1e-3, low=1e-8, high=10.0)
    """smallest per-coordinate sigma of the grid"""
    sigma_max: float = param(1e-1, low=1e-8, high=10.0)
    """largest per-coordinate sigma of the grid"""
    n_sigmas: int = param(4, low=2, high=20)
    """sigmas in the (log-spaced) grid"""
    n_grid: int = param(256, low=2, high=1 << 20)
    """antithetic pairs per grid sigma (F1/F2 diagnostic and best-of-N curves)"""
    n_max: int = param(1024, low=2, high=1 << 20)
    """antithetic pairs of the long search at the largest local-linear sigma"""
    hutchinson_probes: int = param(16, low=2, high=4096)
    """Hutchinson probes for tr H"""
    k: int = param(16, low=1, high=512)
    """dimension of the subspaces compared in C6"""
    lora_rank: int = param(4, low=1, high=64)
    """LoRA rank of the synthetic model's adapter space"""
    c6_n: int = param(128, low=4, high=1 << 20)
    """candidates (antithetic pairs) per subspace search"""
    c6_seeds: int = param(3, low=1, high=50)
    """search seeds for the C6 spreads"""
    c6_sigma: float = param(0.0, low=0.0, high=10.0)
    """full-space sigma fixing the C6 norm r = sigma sqrt(D); 0 = the largest grid sigma in the local-linear regime"""
    model: str = param(models.SMOLLM2, choices=LM_MODELS)
    """pretrained LM searched in its LoRA space"""
    lm_task: str = param("plural", choices=textdata.TASKS)
    """text task of the LM's loss (lls.textdata.TASKS)"""
    lm_examples: int = param(4, low=1, high=1024)
    """examples in the LM's evaluation batch"""
    lm_sigma_min: float = param(1e-3, low=1e-8, high=10.0)
    """smallest sigma of the LM's grid"""
    lm_sigma_max: float = param(3e-2, low=1e-8, high=10.0)
    """largest sigma of the LM's grid"""
    lm_n_sigmas: int = param(3, low=2, high=20)
    """sigmas in the LM's grid"""
    lm_pairs: int = param(8, low=2, high=4096)
    """antithetic pairs per sigma of the LM's F1/F2 diagnostic"""
    lm_n: int = param(128, low=2, high=1 << 20)
    """antithetic pairs of the LM's best-of-N search"""
    lm_vmap: int = param(4, low=1, high=64)
    """LM perturbations per batched (vmap) pass; 1 = in place"""
    randopt_n: int = param(512, low=2, high=1 << 20)
    """RandOpt candidates"""
    randopt_k: int = param(15, low=1, high=1024)
    """RandOpt ensemble size (top K)"""
    n_eval: int = param(512, low=1, high=1 << 20)
    """task-A test sequences on which RandOpt's members and vote are evaluated (was randopt_test)"""
    vmap_batch: int = param(1, low=1, high=1024)
    """perturbations per batched (vmap) pass in the synthetic searches; 1 = in place"""
    lowrank_max_rank: int = param(16, low=1, high=1024)
    """largest rank of the low-rank noise compared with Gaussian noise (ranks 1, 4, 16, ... up to it)"""
    law_draws: int = param(8192, low=64, high=1 << 22)
    """Monte-Carlo draws of the low-rank first-order signal g^T eps per rank"""
    lowrank_n: int = param(256, low=4, high=1 << 20)
    """antithetic pairs per search in the low-rank against Gaussian comparison"""
    lowrank_seeds: int = param(5, low=2, high=50)
    """search seeds of that comparison (one search per seed and noise)"""
    lowrank_population: int = param(32, low=1, high=4096)
    """low-rank candidates evaluated per batched forward pass"""

    def rules(self) -> list[tuple[bool, str]]:
        return [
            (self.sigma_min < self.sigma_max,
             f"sigma_min ({self.sigma_min}) must be below sigma_max ({self.sigma_max})"),
            (self.lm_sigma_min < self.lm_sigma_max,
             f"lm_sigma_min ({self.lm_sigma_min}) must be below lm_sigma_max ({self.lm_sigma_max})"),
            (self.randopt_k <= self.randopt_n,
             f"randopt_k ({self.randopt_k}) cannot exceed randopt_n ({self.randopt_n})"),
        ]


def chapter2(cfg: Config) -> chapter2_config.Config:
    """Chapter 2's configuration for ``cfg``'s preset: its tasks, model, training and forgetting run."""
    return chapter2_config.PRESETS[cfg.preset]


PRESETS = presets(
    Config,
    smoke={"eval_batch": 16, "n_sigmas": 3, "n_grid": 16, "n_max": 32, "hutchinson_probes": 4, "k": 4,
           "lora_rank": 2, "c6_n": 32, "c6_seeds": 2, "model": "tiny-llama", "lm_n_sigmas": 2, "lm_pairs": 4,
           "lm_n": 8, "lm_vmap": 2, "randopt_n": 16, "randopt_k": 3, "n_eval": 64, "vmap_batch": 4, "lowrank_max_rank": 4,
           "law_draws": 512, "lowrank_n": 16, "lowrank_seeds": 2, "lowrank_population": 8},
    cpu={},
    paper={"eval_batch": 256, "n_sigmas": 7, "n_grid": 1024, "n_max": 4096, "hutchinson_probes": 64, "k": 32,
           "lora_rank": 8, "c6_n": 1024, "c6_seeds": 5, "model": "qwen2.5-0.5b", "lm_examples": 16,
           "lm_n_sigmas": 5, "lm_pairs": 32, "lm_n": 512, "lm_vmap": 1, "randopt_n": 2048, "randopt_k": 50,
           "n_eval": 2048, "lowrank_max_rank": 64, "law_draws": 32768, "lowrank_n": 1024, "lowrank_seeds": 10},
)
