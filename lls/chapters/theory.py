"""Chapter 1: the geometry theory, stated and checked numerically.

Five checks, one per result of PAPER.md (all reconstructed from the abstract):

1. :func:`theorem1` Theorem 1: Monte-Carlo best-of-N first-order gains of Gaussian perturbations
   of a quadratic loss in dimension 10 .. 10^7 against ``sigma ||g|| e_N``, and where the mean
   second-order term ``sigma^2 tr H / 2`` takes over; :func:`max_normal_check` checks ``e_N``.
2. :func:`f1f2_diagnostic` F1/F2 on a real model's language-modelling loss, with ``sigma*`` from
   the closed form (``||g||`` by autograd, ``tr H`` by Hutchinson through HVPs) and measured.
3. :func:`proposition1` random search in subspaces of different signal mass and density.
4. :func:`lemma1` gradient descent (and Adam) on a quadratic against Krylov bases from HVPs.
5. :func:`pushforward` ``dy = dW x`` on one linear layer of a real transformer, and the
   first-order activation shift ``J dtheta`` of a whole-model gradient step against the actual one.

Closed forms live in :mod:`lls.theory`; the estimators in :mod:`lls.subspace`,
:mod:`lls.curvature` and :mod:`lls.search`.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from scipy import stats
from tqdm.auto import tqdm

from lls import curvature, layers, models, plots, search, steering, subspace, textdata, theory
from lls.cache import cached
from lls.errors import ConfigError
from lls.metrics import Claim
from lls.params import ParamSpace
from lls.presets import Config, Param


def _p(kind, doc, smoke, cpu, paper, **kw) -> Param:
    return Param(kind, doc, {"smoke": smoke, "cpu": cpu, "paper": paper}, **kw)


MODELS = ("tiny-llama", "tiny-gpt2", "tiny-qwen2", "smollm2-135m", "distilgpt2", "gpt2", "qwen2.5-0.5b")

PARAMS: dict[str, Param] = {
    # Theorem 1
    "t1_max_log10_dim": _p(int, "largest dimension D = 10^this (D runs over 10, 100, ...)", 5, 7, 7, low=1, high=9),
    "t1_budget": _p(float, "numbers drawn per dimension (draws = budget / D, clipped)", 2e7, 4e8, 2e9,
                    low=1e4, high=1e12),
    "t1_min_draws": _p(int, "fewest candidates drawn at any D", 32, 48, 256, low=2, high=10**6),
    "t1_max_draws": _p(int, "most candidates drawn at any D", 2048, 8192, 16384, low=2, high=10**7),
    "t1_n": _p(int, "N of best-of-N for the dimension sweep and the claim", 16, 16, 16, low=2, high=10**6),
    "t1_sigma": _p(float, "perturbation scale sigma per coordinate", 0.01, 0.01, 0.01, low=1e-8, high=10.0),
    "t1_curvature": _p(float, "Hessian = curvature * I (tr H = curvature * D)", 0.01, 0.01, 0.01,
                       low=0.0, high=1e3),
    "en_trials": _p(int, "brute-force trials per N for the e_N check", 2000, 20000, 100000, low=10, high=10**7),
    # F1/F2 on a real model
    "model": _p(str, "model of the F1/F2 and pushforward sections", "tiny-llama", "smollm2-135m",
                "qwen2.5-0.5b", choices=MODELS),
    "f1f2_blocks": _p(int, "the last this-many transformer blocks form the search space (0 = all parameters)",
                      0, 2, 0, low=0, high=1000),
    "f1f2_seqs": _p(int, "held-out text windows in the evaluation batch", 2, 2, 8, low=1, high=1024),
    "f1f2_seq_len": _p(int, "tokens per window", 16, 32, 64, low=4, high=4096),
    "sigma_min": _p(float, "smallest sigma of the grid", 1e-4, 1e-4, 1e-4, low=1e-9, high=10.0),
    "sigma_max": _p(float, "largest sigma of the grid", 3e-1, 1e-1, 1e-1, low=1e-9, high=10.0),
    "n_sigmas": _p(int, "log-spaced sigmas in the grid", 4, 7, 10, low=2, high=100),
    "f1f2_pairs": _p(int, "antithetic pairs per sigma", 3, 8, 32, low=2, high=10**5),
    "f1f2_n": _p(int, "N of best-of-N for sigma* (at most f1f2_pairs)", 2, 8, 16, low=2, high=10**5),
    "hutchinson_samples": _p(int, "Rademacher probes (HVPs) for tr H", 2, 6, 32, low=2, high=10**4),
    # Proposition 1
    "p1_dim": _p(int, "dimension of the constructed problem", 2000, 20000, 100000, low=1000, high=10**7),
    "p1_n": _p(int, "N of best-of-N", 16, 32, 32, low=2, high=10**5),
    "p1_trials": _p(int, "searches per subspace", 100, 300, 1000, low=2, high=10**6),
    # Lemma 1
    "l1_dim": _p(int, "dimension of the quadratic", 100, 300, 1000, low=20, high=5000),
    "l1_steps": _p(int, "optimisation steps", 60, 300, 1000, low=2, high=10**5),
    "l1_k_max": _p(int, "largest Krylov / prefix dimension k", 12, 30, 40, low=2, high=5000),
    "l1_condition": _p(float, "condition number of H (eigenvalues log-spaced in [1/this, 1])", 100.0, 300.0,
                       300.0, low=1.0, high=1e8),
    "l1_focus": _p(float, "share of ||g||^2 on three eigendirections", 0.95, 0.95, 0.95, low=0.0, high=1.0),
    "adam_lr": _p(float, "Adam learning rate on the quadratic", 0.05, 0.05, 0.05, low=1e-6, high=10.0),
    # Pushforward
    "pf_layer": _p(int, "block whose first linear layer / output is probed (-1 = the middle one)",
                   -1, -1, -1, low=-1, high=1000),
    "pf_n_steps": _p(int, "step sizes in the pushforward sweep", 4, 7, 9, low=3, high=50),
    "pf_step_min": _p(float, "smallest step norm, as a fraction of ||theta||", 1e-7, 1e-8, 1e-8, low=1e-12, high=1.0),
    "pf_step_max": _p(float, "largest step norm, as a fraction of ||theta||", 1e-2, 1e-2, 1e-2, low=1e-12, high=1.0),
    "pf_statements": _p(int, "labelled statements for the gradient step and the probe", 4, 8, 64,
                        low=2, high=10**4),
}


def check(cfg: Config) -> None:
    """Chapter-specific checks (raise :class:`ConfigError`); call right after ``start()``."""
    rules = [
        (cfg.t1_min_draws <= cfg.t1_max_draws,
         f"t1_min_draws ({cfg.t1_min_draws}) cannot exceed t1_max_draws ({cfg.t1_max_draws})"),
        (cfg.t1_n <= cfg.t1_min_draws,
         f"t1_n ({cfg.t1_n}) must be at most t1_min_draws ({cfg.t1_min_draws}): every D needs N draws"),
        (cfg.sigma_min < cfg.sigma_max, f"sigma_min ({cfg.sigma_min}) must be below sigma_max ({cfg.sigma_max})"),
        (cfg.pf_step_min < cfg.pf_step_max,
         f"pf_step_min ({cfg.pf_step_min}) must be below pf_step_max ({cfg.pf_step_max})"),
        (cfg.f1f2_n <= cfg.f1f2_pairs, f"f1f2_n ({cfg.f1f2_n}) cannot exceed f1f2_pairs ({cfg.f1f2_pairs})"),
        (cfg.l1_k_max <= min(cfg.l1_steps, cfg.l1_dim),
         f"l1_k_max ({cfg.l1_k_max}) cannot exceed l1_steps ({cfg.l1_steps}) or l1_dim ({cfg.l1_dim})"),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(message + ".")


def load_model(cfg: Config):
    """The chapter's model and tokenizer in float32 (raises ``MissingModelError`` at once offline)."""
    return models.load(cfg.model)


# --- 1. Theorem 1 --------------------------------------------------------------------------------


def dims(cfg: Config) -> list[int]:
    """The dimensions of the sweep: 10, 100, ..., 10^t1_max_log10_dim."""
    return [10**e for e in range(1, cfg.t1_max_log10_dim + 1)]


def n_draws(cfg: Config, dim: int) -> int:
    """Candidates drawn in dimension ``dim``: ``t1_budget / dim`` within [t1_min_draws, t1_max_draws]."""
    return int(min(max(cfg.t1_budget // dim, cfg.t1_min_draws), cfg.t1_max_draws))


def powers_of_two(top: int) -> list[int]:
    """1, 2, 4, ... up to ``top`` (and ``top`` itself)."""
    out = [2**j for j in range(int(math.log2(top)) + 1)]
    return out if out[-1] == top else [*out, top]


@cached
def theorem1(cfg: Config) -> dict:
    """Monte-Carlo of Theorem 1 for every D of the sweep (:func:`lls.theory.sample_quadratic`).

    Per D: ``ns`` (N = 1, 2, 4, ... up to the draws), ``first`` the measured best-of-N
    first-order gain ``E[max_N(-g^T eps)] / (sigma ||g||)`` (unbiased U-statistic over all
    draws, :func:`lls.search.expected_best`) with the disjoint-groups standard error
    ``sd(max_N) / sqrt(draws // N)``; ``second`` the mean of ``eps^T H eps / 2``; ``net`` the
    best-of-``t1_n`` total gain ``E[max_N -(g^T eps + eps^T H eps / 2)]``. ``||g|| = 1``.
    """
    out = {}
    for d in tqdm(dims(cfg), desc="Theorem 1: dimensions"):
        m = n_draws(cfg, d)
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + int(math.log10(d)))
        first, second = theory.sample_quadratic(d, m, cfg.t1_sigma, 1.0, cfg.t1_curvature, gen)
        ns = [n for n in powers_of_two(cfg.t1_max_draws) if n <= m]
        scaled = -first / cfg.t1_sigma
        out[d] = {
            "draws": m,
            "ns": ns,
            "first": search.expected_best(scaled, ns),
            "first_se": np.array([theory.sd_max_normal(n) / math.sqrt(m // n) for n in ns]),
            "second": float(second.mean()),
            "second_se": float(second.std(ddof=1) / math.sqrt(m)),
            "net": float(search.expected_best(-(first + second), [cfg.t1_n])[0]),
            "net_first": float(search.expected_best(-first, [cfg.t1_n])[0]),
            "g_spread": float(first.std(ddof=1) / cfg.t1_sigma),
        }
    return out


@cached
def max_normal_check(cfg: Config, ns: tuple[int, ...]) -> dict:
    """``e_N`` by quadrature against brute force (``en_trials`` maxima per N) and ``sqrt(2 ln N)``."""
    rng = np.random.default_rng(cfg.seed)
    exact = np.array([theory.expected_max_normal(n) for n in ns])
    simulated = theory.simulate_max_normal(ns, cfg.en_trials, rng)
    se = np.array([theory.sd_max_normal(n) for n in ns]) / math.sqrt(cfg.en_trials)
    return {"ns": list(ns), "exact": exact, "simulated": simulated, "se": se,
            "asymptotic": theory.asymptotic_max_normal(np.array(ns))}


def theorem1_summary(cfg: Config, t1: dict) -> dict:
    """The sweep's best-of-``t1_n`` gains as ratios to ``e_N``, pooled over D.

    ``ratio``/``se`` per D; ``pooled`` the precision-weighted mean ratio and ``pooled_se`` its
    standard error; ``chi2``/``p_value`` a test that all D share one ratio (dimension
    independence); ``max_z`` the largest ``|ratio - 1| / se``.
    """
    e_n = theory.expected_max_normal(cfg.t1_n)
    ratio = np.array([r["first"][r["ns"].index(cfg.t1_n)] / e_n for r in t1.values()])
    se = np.array([r["first_se"][r["ns"].index(cfg.t1_n)] / e_n for r in t1.values()])
    w = 1 / se**2
    pooled = float((w * ratio).sum() / w.sum())
    chi2 = float((((ratio - pooled) / se) ** 2).sum())
    return {"dims": list(t1), "ratio": ratio, "se": se, "pooled": pooled, "pooled_se": float(w.sum() ** -0.5),
            "chi2": chi2, "p_value": float(stats.chi2.sf(chi2, len(ratio) - 1)),
            "max_z": float(np.max(np.abs(ratio - 1) / se))}


def theorem1_claim(cfg: Config, t1: dict) -> Claim:
    """C5: the pooled best-of-N gain / (sigma ||g|| e_N) over D, and whether it depends on D."""
    s = theorem1_summary(cfg, t1)
    on_target = abs(s["pooled"] - 1) < 3 * s["pooled_se"]
    flat = s["p_value"] > 0.01
    verdict = "reproduced" if on_target and flat else ("partly" if on_target or flat else "not reproduced")
    note = (f"Monte-Carlo best-of-{cfg.t1_n} first-order gain / (σ‖g‖e_N) for D = 10 .. "
            f"{max(t1):.0e}, pooled over D (1 = Theorem 1); test that all D agree: chi2 = {s['chi2']:.1f} "
            f"on {len(t1) - 1} dof, p = {s['p_value']:.2f}; largest abs(z) against 1: {s['max_z']:.1f}")
    return Claim("C5", s["pooled"], 1.0, verdict, note, unit="× σ‖g‖e_N", spread=s["pooled_se"])


# --- 2. F1/F2 on a real model --------------------------------------------------------------------


def lm_loss(call, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) of token windows ``batch`` (n, T); a ``batch_loss``."""
    return call(input_ids=batch, labels=batch).loss


def text_batch(tokenizer, n_seqs: int, seq_len: int) -> torch.Tensor:
    """``(n_seqs, seq_len)`` consecutive windows of the book's held-out prose."""
    ids = tokenizer(textdata.held_out_text(), return_tensors="pt")["input_ids"][0]
    if ids.numel() < n_seqs * seq_len:
        raise ConfigError(f"the held-out text has {ids.numel()} tokens, fewer than f1f2_seqs * f1f2_seq_len "
                          f"= {n_seqs * seq_len}; lower one of them.")
    return ids[: n_seqs * seq_len].view(n_seqs, seq_len)


def search_space(model, n_blocks: int) -> ParamSpace:
    """All parameters (``n_blocks = 0``) or those of the last ``n_blocks`` transformer blocks."""
    if n_blocks == 0:
        return ParamSpace(model)
    template = layers.block_template(model)
    total = layers.num_layers(model)
    prefixes = tuple(template.format(i) + "." for i in range(max(total - n_blocks, 0), total))
    return ParamSpace(model, [n for n, _ in model.named_parameters() if n.startswith(prefixes)])


def sigma_grid(cfg: Config) -> np.ndarray:
    """``n_sigmas`` log-spaced sigmas from ``sigma_min`` to ``sigma_max``."""
    return np.geomspace(cfg.sigma_min, cfg.sigma_max, cfg.n_sigmas)


@cached
def f1f2_diagnostic(cfg: Config) -> dict:
    """F1/F2 over the sigma grid, ``||g||`` by autograd, ``tr H`` by Hutchinson (HVPs).

    Returns the :class:`lls.search.F1F2Result` arrays, the exact gradient norm, the Hutchinson
    trace and its standard error, the measured best-of-``f1f2_n`` gain per sigma (the ``+eps``
    candidates, :func:`lls.search.expected_best`) and the dimension of the space.
    """
    model, tokenizer = load_model(cfg)
    space = search_space(model, cfg.f1f2_blocks)
    batch = text_batch(tokenizer, cfg.f1f2_seqs, cfg.f1f2_seq_len)
    loss_fn = space.loss_closure(lm_loss, batch)
    theta = space.get()
    grad = torch.func.grad(loss_fn)(theta)
    gen = torch.Generator().manual_seed(cfg.seed)
    trace, trace_se = curvature.hutchinson_trace(curvature.hessian_operator(loss_fn, theta), space.dim,
                                                 cfg.hutchinson_samples, gen)
    objective = search.Objective(model, lm_loss, batch)
    result = search.f1_f2(space, objective, sigma_grid(cfg), cfg.f1f2_pairs, cfg.seed)
    gains = np.array([search.expected_best(-(f1 + f2), [cfg.f1f2_n])[0]
                      for f1, f2 in zip(result.f1, result.f2, strict=True)])
    return {"sigmas": result.sigmas, "f1": result.f1, "f2": result.f2, "base": result.base,
            "f1_spread": result.f1_spread, "f2_mean": result.f2_mean, "f2_sem": result.f2_sem,
            "linear": result.linear(), "zeroth_order_sigma_star": result.sigma_star(cfg.f1f2_n),
            "grad_norm": float(grad.norm()), "trace": trace, "trace_se": trace_se,
            "gains": gains, "dim": space.dim, "n_tensors": len(space.names)}


def linear_range(f: dict) -> tuple[float, float] | None:
    """The sigma range, from the smallest grid sigma up, where F1's spread exceeds |mean F2|."""
    if not f["linear"][0]:
        return None
    stop = int(np.argmin(f["linear"])) if not f["linear"].all() else len(f["linear"])
    return float(f["sigmas"][0]), float(f["sigmas"][stop - 1])


# --- 3. Proposition 1 ----------------------------------------------------------------------------


def density_problem(cfg: Config) -> theory.DensityProblem:
    """Three blocks (0.2 %, 3 %, 30 % of the coordinates, holding 15 %, 35 %, 45 % of ||g||^2)
    and five subspaces made of them, whose mass ranking is the reverse of their density ranking."""
    d = cfg.p1_dim
    return theory.DensityProblem(
        dim=d, sizes=(max(d // 500, 1), d * 3 // 100, d * 3 // 10), masses=(0.15, 0.35, 0.45),
        subspaces={"A": (0,), "B": (1,), "C": (2,), "B+C": (1, 2), "A+B+C": (0, 1, 2)})


@cached
def proposition1(cfg: Config) -> dict:
    """Measured best-of-``p1_n`` gains per subspace at fixed expected perturbation norm 1."""
    problem = density_problem(cfg)
    gains = theory.subspace_search_gains(problem, 1.0, cfg.p1_n, cfg.p1_trials,
                                         torch.Generator().manual_seed(cfg.seed))
    rows = []
    for name in problem.names():
        rows.append({"name": name, "k": problem.size(name), "mass": problem.mass(name),
                     "density": problem.density(name), "gain": float(gains[name].mean()),
                     "gain_se": float(gains[name].std(ddof=1) / math.sqrt(len(gains[name]))),
                     "predicted": theory.predicted_subspace_gain(problem, name, 1.0, cfg.p1_n)})
    gain = [r["gain"] for r in rows]
    return {"rows": rows,
            "rho_density": float(stats.spearmanr(gain, [r["density"] for r in rows])[0]),
            "rho_mass": float(stats.spearmanr(gain, [r["mass"] for r in rows])[0])}


# --- 4. Lemma 1 ----------------------------------------------------------------------------------


def krylov_toy(cfg: Config) -> theory.KrylovToy:
    """The quadratic of the chapter: ``l1_focus`` of ||g||^2 on three mid-spectrum eigendirections."""
    d = cfg.l1_dim
    return theory.KrylovToy.build(d, focus_dirs=(d // 8, d // 4, d // 2), focus=cfg.l1_focus,
                                  eig_low=1.0 / cfg.l1_condition, eig_high=1.0,
                                  generator=torch.Generator().manual_seed(cfg.seed))


def ks(cfg: Config) -> list[int]:
    """Basis sizes 1 .. l1_k_max."""
    return list(range(1, cfg.l1_k_max + 1))


@cached
def lemma1(cfg: Config) -> dict:
    """GD (lr = 1 / largest eigenvalue) and Adam on the toy quadratic against Krylov bases.

    Per optimizer: ``residual`` (||(I - P_{s+1}) u_s|| / ||u_s|| for s < k_max, the Krylov basis
    from HVPs via :func:`lls.curvature.krylov_basis`), ``prefix`` and ``krylov`` captures of the
    final displacement for k in :func:`ks`; plus the GD updates' deviation from the closed form.
    """
    toy = krylov_toy(cfg)
    theta0 = torch.zeros(cfg.l1_dim, dtype=torch.float64)
    basis = curvature.krylov_basis(curvature.hessian_operator(toy.loss, theta0), toy.g, cfg.l1_k_max)
    out = {"dim": cfg.l1_dim, "ks": ks(cfg), "krylov_dim": basis.shape[1]}
    for name, lr in (("gd", 1.0), ("adam", cfg.adam_lr)):
        updates = theory.optimizer_updates(toy.loss, cfg.l1_dim, "sgd" if name == "gd" else "adam", lr, cfg.l1_steps)
        displacement = updates.sum(0)
        out[name] = {
            "residual": theory.krylov_residuals(basis, updates),
            "prefix": subspace.prefix_capture(updates, displacement, ks(cfg)),
            "krylov": np.array([subspace.capture(basis[:, :k], displacement) for k in ks(cfg)]),
            "loss_start": float(toy.loss(theta0)), "loss_end": float(toy.loss(displacement)),
        }
        if name == "gd":
            closed = toy.gd_updates(lr, cfg.l1_steps)
            out["gd_closed_form_error"] = float((updates - closed).norm() / closed.norm())
    return out


# --- 5. Pushforward ------------------------------------------------------------------------------


def probe_layer(cfg: Config, model) -> int:
    """The block index of the pushforward section (``pf_layer``, or the middle block for -1)."""
    total = layers.num_layers(model)
    layer = total // 2 if cfg.pf_layer == -1 else cfg.pf_layer
    if layer >= total:
        raise ConfigError(f"pf_layer is {cfg.pf_layer} but {cfg.model} has {total} blocks (0 .. {total - 1}).")
    return layer


def first_linear(block: torch.nn.Module) -> tuple[str, torch.nn.Module]:
    """The first linear map of a block: ``nn.Linear`` (``y = x W^T``) or GPT-2's ``Conv1D`` (``y = x W``)."""
    for name, module in block.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            return name, module
    raise ConfigError("the probed block has no linear layer")


def linear_pushforward(module: torch.nn.Module, run, rel_size: float, generator: torch.Generator) -> float:
    """Relative error ``||(y' - y) - dW x|| / ||dW x||`` for a random ``dW`` on one linear map.

    ``run()`` does a forward pass of the whole model; a hook records the map's input ``x`` and
    output ``y`` before and after ``W += dW`` (``||dW|| = rel_size ||W||``); the weight is
    restored exactly afterwards.
    """
    seen = []
    handle = module.register_forward_hook(lambda _m, args, out: seen.append((args[0].detach(), out.detach())))
    weight = module.weight
    saved = weight.detach().clone()
    delta = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
    delta *= rel_size * saved.norm() / delta.norm()
    try:
        with torch.no_grad():
            run()
            weight.add_(delta)
            run()
    finally:
        handle.remove()
        with torch.no_grad():
            weight.copy_(saved)
    (x, y0), (_, y1) = seen
    predicted = x @ delta if type(module).__name__ == "Conv1D" else x @ delta.T
    return float(((y1 - y0) - predicted).norm() / predicted.norm())


@cached
def pushforward(cfg: Config) -> dict:
    """One-layer identity (float32 and float64) and the whole-model first-order activation shift.

    The whole-model part takes one normalised gradient step of the labelled true/false
    objective (:func:`lls.steering.gradient_step`) at several step norms and compares the
    measured mean last-token shift at the probed block with ``J dtheta``
    (:func:`lls.steering.activation_shift`), in float64.
    """
    model, tokenizer = load_model(cfg)
    layer = probe_layer(cfg, model)
    name, module = first_linear(layers.blocks(model)[layer])
    statements = textdata.statements("train")
    batch = steering.encode_statements(tokenizer, statements[: cfg.pf_statements])
    gen = torch.Generator().manual_seed(cfg.seed)

    def run():
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)

    one_layer = {"float32": linear_pushforward(module, run, 1e-2, gen)}
    model.to(torch.float64)
    one_layer["float64"] = linear_pushforward(module, run, 1e-2, gen)
    space = ParamSpace(model)
    theta_norm = float(space.get().double().norm())
    step_norms = theta_norm * np.geomspace(cfg.pf_step_min, cfg.pf_step_max, cfg.pf_n_steps)
    direction = steering.gradient_step(space, batch, 1.0).double()
    unit = steering.activation_shift(space, direction, batch).predicted[layer]  # J dtheta is linear in the step
    errors, cosines = [], []
    for s in tqdm(step_norms, desc="pushforward: step sizes"):
        measured = steering.activation_shift(space, float(s) * direction, batch, predict=False).measured[layer]
        predicted = float(s) * unit
        errors.append(float((measured - predicted).norm() / measured.norm()))
        cosines.append(float(steering.cosine(measured, predicted)))
    return {"layer": layer, "module": name, "one_layer": one_layer, "theta_norm": theta_norm,
            "step_norms": step_norms, "rel_error": np.array(errors), "cosine": np.array(cosines),
            "dim": space.dim}


def pushforward_summary(pf: dict, tol: float = 0.1) -> dict:
    """Where the whole-model first-order prediction holds: the largest step (fraction of
    ``||theta||``) whose relative error is below ``tol`` (log-interpolated on the grid; ``None``
    if none is), and the log-log slope of the error on its rising branch (past the smallest
    error, errors below 0.3; the minimum itself only if needed for two points): below that
    rounding of the measured shift dominates."""
    x = np.asarray(pf["step_norms"]) / pf["theta_norm"]
    err = np.asarray(pf["rel_error"])
    below = np.nonzero(err < tol)[0]
    if below.size == 0:
        linear_up_to = None
    elif below[-1] == len(x) - 1:
        linear_up_to = float(x[-1])
    else:
        j = below[-1]
        t = (math.log(tol) - math.log(err[j])) / (math.log(err[j + 1]) - math.log(err[j]))
        linear_up_to = float(math.exp(math.log(x[j]) + t * (math.log(x[j + 1]) - math.log(x[j]))))
    rising = (np.arange(len(err)) > np.argmin(err)) & (err < 0.3)
    fit = rising if rising.sum() >= 2 else rising | (np.arange(len(err)) == np.argmin(err))
    slope = float(np.polyfit(np.log(x[fit]), np.log(err[fit]), 1)[0]) if fit.sum() >= 2 else math.nan
    return {"linear_up_to": linear_up_to, "slope": slope, "tol": tol}



# --- claims --------------------------------------------------------------------------------------


def claims(cfg: Config, t1: dict, p1: dict, l1: dict) -> list[Claim]:
    """C5 (Theorem 1), C6 (Proposition 1), C7 (Lemma 1) from the chapter's results."""
    rows = sorted(p1["rows"], key=lambda r: -r["gain"])
    by_density = [r["name"] for r in sorted(p1["rows"], key=lambda r: -r["density"])]
    ranking_ok = [r["name"] for r in rows] == by_density
    c6 = Claim("C6", p1["rho_density"], None,
               "reproduced" if ranking_ok else ("partly" if p1["rho_density"] >= 0.8 else "not reproduced"),
               f"constructed problem, D = {cfg.p1_dim}, best-of-{cfg.p1_n} at fixed E‖ε‖²: Spearman rank "
               f"correlation of gain with density {p1['rho_density']:.2f}, with mass {p1['rho_mass']:.2f}; "
               f"measured order {' > '.join(r['name'] for r in rows)}", unit="Spearman rho")
    worst = float(np.max(l1["gd"]["residual"]))
    gap = float(np.max(np.abs(l1["gd"]["prefix"] - l1["gd"]["krylov"])))
    c7 = Claim("C7", worst, None, "reproduced" if worst < 1e-10 else "not reproduced",
               f"quadratic, D = {cfg.l1_dim}: largest residual of GD update s outside K_(s+1)(H, g) (HVP-built "
               f"basis) for s < {cfg.l1_k_max}; prefix vs Krylov capture of the final displacement differ by "
               f"at most {gap:.1e}; Adam's updates leave it (largest residual "
               f"{float(np.max(l1['adam']['residual'])):.2f})", unit="rel. residual")
    return [theorem1_claim(cfg, t1), c6, c7]


# --- figures -------------------------------------------------------------------------------------


def _vline(x: float, y0: float, y1: float, name: str, **line) -> go.Scatter:
    """A vertical line as a legend entry (plotly's add_vline misplaces its label on log axes)."""
    return go.Scatter(x=[x, x], y=[y0, y1], mode="lines", name=name, line={"dash": "dot", "color": "black", **line})


def fig_collapse(cfg: Config, t1: dict) -> go.Figure:
    """Best-of-N first-order gain / (sigma ||g||) against N, one curve per D, with e_N."""
    fig = go.Figure()
    logs = [math.log10(d) for d in t1]
    for d, r in t1.items():
        colour = px.colors.sample_colorscale("Viridis", (math.log10(d) - min(logs)) / max(max(logs) - min(logs), 1))[0]
        fig.add_trace(go.Scatter(x=r["ns"], y=r["first"], mode="markers+lines", name=f"D = {d:.0e}",
                                 line={"color": colour, "width": 1}, marker={"color": colour, "size": 7},
                                 error_y={"type": "data", "array": r["first_se"], "thickness": 1}))
    ns = sorted({n for r in t1.values() for n in r["ns"]})
    grid = np.unique(np.geomspace(1, max(ns), 60).round().astype(int))
    fig.add_trace(go.Scatter(x=grid, y=[theory.expected_max_normal(int(n)) for n in grid], mode="lines",
                             name="e_N (exact)", line={"color": "black", "width": 3}))
    fig.add_trace(go.Scatter(x=grid, y=theory.asymptotic_max_normal(grid), mode="lines",
                             name="sqrt(2 ln N)", line={"color": "black", "dash": "dash"}))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="none",
                             marker={"colorscale": "Viridis", "cmin": min(logs), "cmax": max(logs),
                                     "color": [min(logs)], "showscale": True,
                                     "colorbar": {"title": "log10 D"}}))
    fig.update_xaxes(type="log", title="N (candidates)")
    fig.update_yaxes(title="best-of-N first-order gain / (sigma ||g||)")
    fig.update_layout(title="Theorem 1: the best-of-N first-order gain does not depend on D",
                      height=480, legend={"x": 0.01, "y": 0.99})
    return fig


def fig_second_order(cfg: Config, t1: dict) -> go.Figure:
    """First-order best-of-N gain and mean second-order term against D (log-log), with the crossover."""
    d = np.array(list(t1), dtype=float)
    first = np.array([r["net_first"] for r in t1.values()])
    second = np.array([r["second"] for r in t1.values()])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=d, y=first, mode="markers", name=f"measured best-of-{cfg.t1_n} first-order gain",
                             marker={"size": 10}))
    fig.add_trace(go.Scatter(x=d, y=second, mode="markers", name="measured mean of eps^T H eps / 2",
                             marker={"size": 10, "symbol": "square"}))
    line = np.geomspace(d.min(), d.max(), 50)
    fig.add_trace(go.Scatter(x=line, y=[theory.first_order_gain(cfg.t1_sigma, 1.0, cfg.t1_n)] * len(line),
                             mode="lines", name="sigma ||g|| e_N"))
    fig.add_trace(go.Scatter(x=line, y=theory.second_order_mean(cfg.t1_sigma, cfg.t1_curvature * line),
                             mode="lines", name="sigma^2 tr H / 2"))
    cross = theory.crossover_dim(cfg.t1_sigma, 1.0, cfg.t1_n, cfg.t1_curvature)
    if d.min() <= cross <= d.max():
        fig.add_trace(_vline(cross, min(second.min(), first.min()), max(second.max(), first.max()),
                             f"crossover D = {cross:.3g}"))
    fig.update_xaxes(type="log", title="D")
    fig.update_yaxes(type="log", title="loss change")
    fig.update_layout(title="Where the shared second-order term takes over", height=440)
    return fig


def fig_f1f2(cfg: Config, f: dict) -> go.Figure:
    """F1 spread and mean F2 against sigma, with the closed forms and sigma* (closed form and measured)."""
    s = f["sigmas"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("odd and even parts", f"best-of-{cfg.f1f2_n} gain"))
    fig.add_trace(go.Scatter(x=s, y=f["f1_spread"], mode="markers", name="spread of F1 (odd)",
                             marker={"size": 9}), row=1, col=1)
    fig.add_trace(go.Scatter(x=s, y=np.abs(f["f2_mean"]), mode="markers", name="|mean F2| (even)",
                             marker={"size": 9, "symbol": "square"},
                             error_y={"type": "data", "array": f["f2_sem"]}), row=1, col=1)
    fig.add_trace(go.Scatter(x=s, y=s * f["grad_norm"], mode="lines", name="sigma ||g|| (autograd)"), row=1, col=1)
    fig.add_trace(go.Scatter(x=s, y=0.5 * s**2 * abs(f["trace"]), mode="lines",
                             name="sigma^2 |tr H| / 2 (Hutchinson)"), row=1, col=1)
    fig.add_trace(go.Scatter(x=s, y=f["gains"], mode="markers+lines", name="measured gain"), row=1, col=2)
    fine = np.geomspace(s[0], s[-1], 80)
    closed = theory.first_order_gain(fine, f["grad_norm"], cfg.f1f2_n) - theory.second_order_mean(fine, f["trace"])
    fig.add_trace(go.Scatter(x=fine, y=closed, mode="lines", name="sigma ||g|| e_N - sigma^2 tr H / 2"),
                  row=1, col=2)
    top = max(float(np.max(f["gains"])), float(np.max(closed)))
    star = theory.sigma_star(f["grad_norm"], f["trace"], cfg.f1f2_n)
    if math.isfinite(star):
        fig.add_trace(_vline(star, -1.5 * top, 1.5 * top, f"sigma* closed form = {star:.2g}"), row=1, col=2)
    fig.update_xaxes(type="log", title="sigma")
    fig.update_yaxes(type="log", row=1, col=1, title="loss change")
    fig.update_yaxes(title="loss decrease", range=[-1.5 * top, 1.5 * top], row=1, col=2)
    fig.update_layout(title=f"F1/F2 diagnostic on {cfg.model}", height=460)
    return fig


def fig_density(cfg: Config, p1: dict) -> go.Figure:
    """Measured subspace search gain against signal density (log-log), with Proposition 1's line."""
    rows = p1["rows"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[r["density"] for r in rows], y=[r["gain"] for r in rows], mode="markers+text",
                             text=[f"{r['name']} (mass {r['mass']:.2f})" for r in rows], textposition="top center",
                             error_y={"type": "data", "array": [r["gain_se"] for r in rows]},
                             marker={"size": 11}, name="measured"))
    dens = np.geomspace(min(r["density"] for r in rows), max(r["density"] for r in rows), 50)
    fig.add_trace(go.Scatter(x=dens, y=np.sqrt(dens) * theory.expected_max_normal(cfg.p1_n), mode="lines",
                             name="r sqrt(density) e_N"))
    fig.update_xaxes(type="log", title="signal density ||U^T g||^2 / k")
    fig.update_yaxes(type="log", title=f"best-of-{cfg.p1_n} gain (E||eps||^2 = 1)")
    fig.update_layout(title="Proposition 1: search gain follows density, not mass", height=460)
    return fig


def fig_krylov(cfg: Config, l1: dict) -> go.Figure:
    """Krylov residuals of the updates (left) and captures of the final displacement (right)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("update s outside K_(s+1)(H, g)",
                                                        "capture of the final displacement"))
    steps = np.arange(len(l1["gd"]["residual"]))
    for name, colour in (("gd", "royalblue"), ("adam", "darkorange")):
        r = l1[name]
        fig.add_trace(go.Scatter(x=steps, y=np.maximum(r["residual"], 1e-17), mode="markers+lines",
                                 name=f"{name.upper()} residual", line={"color": colour}), row=1, col=1)
        fig.add_trace(go.Scatter(x=l1["ks"], y=r["prefix"], mode="markers+lines", line={"color": colour},
                                 name=f"{name.upper()}: first k updates (prefix)"), row=1, col=2)
        fig.add_trace(go.Scatter(x=l1["ks"], y=r["krylov"], mode="lines", line={"color": colour, "dash": "dot"},
                                 name=f"{name.upper()}: Krylov basis from HVPs"), row=1, col=2)
    fig.add_trace(go.Scatter(x=l1["ks"], y=np.array(l1["ks"]) / l1["dim"], mode="lines",
                             line={"color": "grey"}, name="random k-dim subspace (k/D)"), row=1, col=2)
    fig.update_yaxes(type="log", title="relative residual", row=1, col=1)
    fig.update_xaxes(title="update s", row=1, col=1)
    fig.update_xaxes(title="k", row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], title="capture", row=1, col=2)
    fig.update_layout(title="Lemma 1: gradient descent stays in the Krylov space; Adam does not", height=460)
    return fig


def fig_pushforward(cfg: Config, pf: dict) -> go.Figure:
    """Relative error of the first-order activation shift against the step norm (log-log)."""
    fig = go.Figure()
    x = pf["step_norms"] / pf["theta_norm"]
    err = np.asarray(pf["rel_error"])
    fig.add_trace(go.Scatter(x=x, y=err, mode="markers+lines", name="||shift - J dtheta|| / ||shift||",
                             marker={"size": 9}))
    j = min(int(np.argmin(err)) + 1, len(x) - 1)  # anchor past the rounding floor
    fig.add_trace(go.Scatter(x=x, y=err[j] * x / x[j], mode="lines", line={"dash": "dot"},
                             name="slope 1 (second-order remainder)"))
    fig.add_hline(y=0.1, line_dash="dash", line_color="grey")
    fig.update_xaxes(type="log", title="step norm / ||theta||")
    fig.update_yaxes(type="log", title="relative error")
    fig.update_layout(title=f"Pushforward at block {pf['layer']} of {cfg.model} (float64)", height=420)
    return fig


def fig_sigma_explorer(cfg: Config, t1: dict) -> go.Figure:
    """Expected best-of-N gain against sigma (Theorem 1's closed form, log scale) with a slider over D.

    Uses the sweep's quadratic (``||g|| = 1``, ``H = curvature I``): the first-order gain does not
    move with D, the net gain ``sigma e_N - sigma^2 curvature D / 2`` peaks at ``sigma*`` and
    turns negative (off the log axis) at ``2 sigma*``. The measured best-of-N net gain at
    ``t1_sigma`` is marked for each D where it is positive.
    """
    sig = np.geomspace(1e-5, 1.0, 120)
    first = sig * theory.expected_max_normal(cfg.t1_n)

    def positive(values):
        return [float(v) if v > 0 else None for v in np.atleast_1d(values)]

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=sig, y=first, mode="lines", name="first order sigma ||g|| e_N",
                             line={"dash": "dash"}))
    fig.add_trace(go.Scatter(x=sig, y=first, mode="lines", name="net: sigma ||g|| e_N - sigma^2 tr H / 2",
                             line={"width": 3}))
    fig.add_trace(go.Scatter(x=[cfg.t1_sigma], y=[None], mode="markers", name="measured at sigma (MC)",
                             marker={"size": 12, "color": "black"}))
    fig.add_trace(go.Scatter(x=[cfg.t1_sigma], y=[None], mode="markers", name="sigma*",
                             marker={"size": 14, "symbol": "star", "color": "red"}))
    frames, labels = [], []
    for d, r in t1.items():
        trace = cfg.t1_curvature * d
        star = theory.sigma_star(1.0, trace, cfg.t1_n)
        net_star = theory.first_order_gain(star, 1.0, cfg.t1_n) - theory.second_order_mean(star, trace)
        frames.append([{"x": sig, "y": positive(first - theory.second_order_mean(sig, trace))},
                       {"x": [cfg.t1_sigma], "y": positive(r["net"])}, {"x": [star], "y": positive(net_star)}])
        labels.append(f"{d:.0e}")
    fig = plots.slider_figure(frames, labels, fig, [1, 2, 3], "D", active=len(labels) // 2)
    fig.update_xaxes(type="log", title="sigma")
    fig.update_yaxes(type="log", range=[-8, 0.5], title=f"expected best-of-{cfg.t1_n} loss decrease")
    fig.update_layout(title="Explore: the best sigma, and the best gain, shrink as D (and tr H) grows", height=460)
    return fig
