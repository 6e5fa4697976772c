"""Chapter 1's data types: the specs its cached experiments take and the results they return.

A spec holds only the :class:`~lls.chapters.theory.config.Config` fields (same names) that one
experiment's result depends on, so changing any other parameter reuses the cached result;
``device`` is the resolved torch device. Results are plain arrays and numbers; the analysis
(:mod:`lls.chapters.theory.analysis`) and the figures read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lls import f1f2


@dataclass(frozen=True)
class Theorem1Spec:
    """What the dimension sweep depends on (fields as in :class:`Config`)."""

    seed: int
    t1_max_log10_dim: int
    t1_budget: float
    t1_min_draws: int
    t1_max_draws: int
    t1_n: int
    t1_sigma: float
    t1_curvature: float


@dataclass(frozen=True)
class Theorem1Row:
    """One dimension ``dim`` of the sweep (``||g|| = 1``, ``H = curvature I``).

    ``ns`` N = 1, 2, 4, ... up to ``draws``; ``first`` (len(ns),) the measured best-of-N
    first-order gain ``E[max_N(-g^T eps)] / sigma`` (unbiased U-statistic over all draws) and
    ``first_se`` its disjoint-groups standard error ``sd(max_N) / sqrt(draws // N)``;
    ``second``/``second_se`` the mean of ``eps^T H eps / 2`` (loss units); ``net`` the
    best-of-``t1_n`` total gain ``E[max_N -(g^T eps + eps^T H eps / 2)]`` and ``net_first`` its
    first-order part (loss units); ``g_spread`` the sample sd of ``g^T eps / sigma`` (theory 1).
    """

    dim: int
    draws: int
    ns: list[int]
    first: np.ndarray
    first_se: np.ndarray
    second: float
    second_se: float
    net: float
    net_first: float
    g_spread: float


@dataclass(frozen=True)
class MaxNormalSpec:
    """What the e_N check depends on."""

    seed: int
    en_trials: int


@dataclass(frozen=True)
class MaxNormalCheck:
    """``e_N`` for each N of ``ns``: ``exact`` (quadrature), ``simulated`` (mean of ``en_trials``
    brute-force maxima) with its standard error ``se``, and the asymptote ``sqrt(2 ln N)``; (len(ns),)."""

    ns: list[int]
    exact: np.ndarray
    simulated: np.ndarray
    se: np.ndarray
    asymptotic: np.ndarray


@dataclass(frozen=True)
class F1F2Spec:
    """What the F1/F2 diagnostic depends on (``device`` resolved)."""

    seed: int
    device: str
    model: str
    f1f2_blocks: int
    f1f2_seqs: int
    f1f2_seq_len: int
    sigma_min: float
    sigma_max: float
    n_sigmas: int
    f1f2_pairs: int
    hutchinson_probes: int


@dataclass(frozen=True)
class F1F2Run:
    """The F1/F2 diagnostic: ``search`` the odd/even parts over the sigma grid
    (:class:`lls.f1f2.F1F2Result`, losses in nats); ``grad_norm`` ``||g||`` by autograd;
    ``trace`` ``tr H`` by Hutchinson and ``trace_se`` its standard error; ``dim`` the number of
    searched parameters in ``n_tensors`` tensors."""

    search: f1f2.F1F2Result
    grad_norm: float
    trace: float
    trace_se: float
    dim: int
    n_tensors: int


@dataclass(frozen=True)
class Proposition1Spec:
    """What the subspace searches depend on."""

    seed: int
    p1_dim: int
    p1_n: int
    p1_trials: int


@dataclass(frozen=True)
class SubspaceRow:
    """One subspace: ``k`` its dimension, ``mass`` ``||U^T g||^2``, ``density`` ``mass / k``,
    ``gains`` (p1_trials,) the measured best-of-``p1_n`` gains at ``E||eps||^2 = 1``, and
    ``predicted`` Proposition 1's ``sqrt(density) e_N``."""

    name: str
    k: int
    mass: float
    density: float
    gains: np.ndarray
    predicted: float


@dataclass(frozen=True)
class Lemma1Spec:
    """What the Krylov check depends on."""

    seed: int
    l1_dim: int
    l1_steps: int
    l1_k_max: int
    l1_condition: float
    l1_focus: float
    adam_lr: float


FLOAT64_TOL = 1e-12
"""Relative residual below which a float64 update counts as dependent on the earlier ones (four
orders of magnitude above float64's rounding, as DROP_TOL = 1e-6 is for float32)."""


@dataclass(frozen=True)
class OptimizerRun:
    """One optimizer on the toy quadratic: ``residual`` (min(steps, k_max),) ``||(I - P_{s+1}) u_s||
    / ||u_s||`` against the HVP-built Krylov basis; ``prefix`` and ``krylov`` (k_max,) captures of
    the final displacement by the first k updates and by the first k Krylov vectors; the loss
    at the start and at the end. ``prefix`` drops an update as dependent at the book's float32
    rule (:data:`lls.subspace.DROP_TOL`), keeping ``kept`` of the first k_max; ``prefix_float64``
    and ``kept_float64`` are the same at the float64 tolerance :data:`FLOAT64_TOL`."""

    residual: np.ndarray
    prefix: np.ndarray
    krylov: np.ndarray
    loss_start: float
    loss_end: float
    kept: int
    prefix_float64: np.ndarray
    kept_float64: int


@dataclass(frozen=True)
class Lemma1Result:
    """GD (lr = 1 / largest eigenvalue) and Adam on the quadratic of dimension ``dim``; ``ks`` the
    basis sizes 1 .. k_max; ``gd_closed_form_error`` the relative deviation of GD's updates from
    ``-lr (I - lr H)^s g``."""

    dim: int
    ks: list[int]
    krylov_dim: int
    gd: OptimizerRun
    adam: OptimizerRun
    gd_closed_form_error: float


@dataclass(frozen=True)
class PushforwardSpec:
    """What the pushforward section depends on (``device`` resolved)."""

    seed: int
    device: str
    model: str
    pf_layer: int
    pf_n_steps: int
    pf_step_min: float
    pf_step_max: float
    pf_statements: int


@dataclass(frozen=True)
class PushforwardResult:
    """``layer`` the probed block and ``module`` its first linear map; ``one_layer_float32`` /
    ``one_layer_float64`` the relative error ``||(y' - y) - dW x|| / ||dW x||``; ``theta_norm``
    ``||theta||`` of all ``dim`` parameters; ``step_norms`` (pf_n_steps,) absolute step norms;
    ``rel_error`` and ``cosine`` (pf_n_steps,) of the measured mean last-token shift at the
    block against ``J dtheta`` (float64)."""

    layer: int
    module: str
    one_layer_float32: float
    one_layer_float64: float
    theta_norm: float
    step_norms: np.ndarray
    rel_error: np.ndarray
    cosine: np.ndarray
    dim: int
