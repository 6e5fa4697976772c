"""Chapter 1's parameters: one typed field per knob, its bounds, and the three presets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from lls.config import ChapterConfig, param, presets

MODELS = ("tiny-llama", "tiny-gpt2", "tiny-qwen2", "smollm2-135m", "distilgpt2", "gpt2", "qwen2.5-0.5b")
"""Models the F1/F2 and pushforward sections accept (lls.models registry names)."""


@dataclass(frozen=True)
class Config(ChapterConfig):
    """Chapter 1 (geometry theory). Class defaults are the ``cpu`` preset."""

    chapter: ClassVar[str] = "01_theory"
    renamed: ClassVar[Mapping[str, str]] = {"hutchinson_samples": "hutchinson_probes"}

    # Theorem 1
    t1_max_log10_dim: int = param(7, low=1, high=9)
    """largest dimension D = 10^this (D runs over 10, 100, ...)"""
    t1_budget: float = param(4e8, low=1e4, high=1e12)
    """numbers drawn per dimension (draws = budget / D, clipped)"""
    t1_min_draws: int = param(48, low=2, high=10**6)
    """fewest candidates drawn at any D"""
    t1_max_draws: int = param(8192, low=2, high=10**7)
    """most candidates drawn at any D"""
    t1_n: int = param(16, low=2, high=10**6)
    """N of best-of-N for the dimension sweep and the claim"""
    t1_sigma: float = param(0.01, low=1e-8, high=10.0)
    """perturbation scale sigma per coordinate"""
    t1_curvature: float = param(0.01, low=0.0, high=1e3)
    """Hessian = curvature * I (tr H = curvature * D)"""
    en_trials: int = param(20000, low=10, high=10**7)
    """brute-force trials per N for the e_N check"""
    # F1/F2 on a real model
    model: str = param("smollm2-135m", choices=MODELS)
    """model of the F1/F2 and pushforward sections"""
    f1f2_blocks: int = param(2, low=0, high=1000)
    """the last this-many transformer blocks form the search space (0 = all parameters)"""
    f1f2_seqs: int = param(2, low=1, high=1024)
    """held-out text windows in the evaluation batch"""
    f1f2_seq_len: int = param(32, low=4, high=4096)
    """tokens per window"""
    sigma_min: float = param(1e-4, low=1e-9, high=10.0)
    """smallest sigma of the grid"""
    sigma_max: float = param(1e-1, low=1e-9, high=10.0)
    """largest sigma of the grid"""
    n_sigmas: int = param(7, low=2, high=100)
    """log-spaced sigmas in the grid"""
    f1f2_pairs: int = param(8, low=2, high=10**5)
    """antithetic pairs per sigma"""
    f1f2_n: int = param(8, low=2, high=10**5)
    """N of best-of-N for sigma* (at most f1f2_pairs)"""
    hutchinson_probes: int = param(6, low=2, high=10**4)
    """Rademacher probes (HVPs) for tr H"""
    # Proposition 1
    p1_dim: int = param(20000, low=1000, high=10**7)
    """dimension of the constructed problem"""
    p1_n: int = param(32, low=2, high=10**5)
    """N of best-of-N"""
    p1_trials: int = param(300, low=2, high=10**6)
    """searches per subspace"""
    # Lemma 1
    l1_dim: int = param(300, low=20, high=5000)
    """dimension of the quadratic"""
    l1_steps: int = param(300, low=2, high=10**5)
    """optimisation steps"""
    l1_k_max: int = param(30, low=2, high=5000)
    """largest Krylov / prefix dimension k"""
    l1_condition: float = param(300.0, low=1.0, high=1e8)
    """condition number of H (eigenvalues log-spaced in [1/this, 1])"""
    l1_focus: float = param(0.95, low=0.0, high=1.0)
    """share of ||g||^2 on three eigendirections"""
    adam_lr: float = param(0.05, low=1e-6, high=10.0)
    """Adam learning rate on the quadratic"""
    # Pushforward
    pf_layer: int = param(-1, low=-1, high=1000)
    """block whose first linear layer / output is probed (-1 = the middle one)"""
    pf_n_steps: int = param(7, low=3, high=50)
    """step sizes in the pushforward sweep"""
    pf_step_min: float = param(1e-8, low=1e-12, high=1.0)
    """smallest step norm, as a fraction of ||theta||"""
    pf_step_max: float = param(1e-2, low=1e-12, high=1.0)
    """largest step norm, as a fraction of ||theta||"""
    pf_statements: int = param(8, low=2, high=10**4)
    """labelled statements for the gradient step and the probe"""

    def rules(self) -> list[tuple[bool, str]]:
        """Cross-field rules that need no model (checked before anything runs)."""
        return [
            (self.t1_min_draws <= self.t1_max_draws,
             f"t1_min_draws ({self.t1_min_draws}) cannot exceed t1_max_draws ({self.t1_max_draws})"),
            (self.t1_n <= self.t1_min_draws,
             f"t1_n ({self.t1_n}) must be at most t1_min_draws ({self.t1_min_draws}): every D needs N draws"),
            (self.sigma_min < self.sigma_max,
             f"sigma_min ({self.sigma_min}) must be below sigma_max ({self.sigma_max})"),
            (self.pf_step_min < self.pf_step_max,
             f"pf_step_min ({self.pf_step_min}) must be below pf_step_max ({self.pf_step_max})"),
            (self.f1f2_n <= self.f1f2_pairs,
             f"f1f2_n ({self.f1f2_n}) cannot exceed f1f2_pairs ({self.f1f2_pairs})"),
            (self.l1_k_max <= min(self.l1_steps, self.l1_dim),
             f"l1_k_max ({self.l1_k_max}) cannot exceed l1_steps ({self.l1_steps}) or l1_dim ({self.l1_dim})"),
        ]


PRESETS = presets(
    Config,
    smoke=dict(t1_max_log10_dim=5, t1_budget=2e7, t1_min_draws=32, t1_max_draws=2048, en_trials=2000,
               model="tiny-llama", f1f2_blocks=0, f1f2_seq_len=16, sigma_max=3e-1, n_sigmas=4, f1f2_pairs=3,
               f1f2_n=2, hutchinson_probes=2, p1_dim=2000, p1_n=16, p1_trials=100, l1_dim=100, l1_steps=60,
               l1_k_max=12, l1_condition=100.0, pf_n_steps=4, pf_step_min=1e-7, pf_statements=4),
    cpu={},
    paper=dict(t1_budget=2e9, t1_min_draws=256, t1_max_draws=16384, en_trials=100000, model="qwen2.5-0.5b",
               f1f2_blocks=0, f1f2_seqs=8, f1f2_seq_len=64, n_sigmas=10, f1f2_pairs=32, f1f2_n=16,
               hutchinson_probes=32, p1_dim=100000, p1_trials=1000, l1_dim=1000, l1_steps=1000, l1_k_max=40,
               pf_n_steps=9, pf_statements=64),
)
"""One validated Config per preset (smoke: seconds on tiny models; cpu: SmolLM2 on 2 cores; paper: hub)."""
