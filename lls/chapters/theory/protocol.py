"""Chapter 1's experiments: the only cached code of the chapter. Config -> result dataclasses.

Five checks, one per result of PAPER.md (all reconstructed from the abstract):

1. :func:`theorem1` Monte-Carlo best-of-N first-order gains of Gaussian perturbations of a
   quadratic loss in dimension 10 .. 10^7; :func:`max_normal_check` checks ``e_N`` itself.
2. :func:`f1f2` the F1/F2 diagnostic on a real model's language-modelling loss, with ``||g||``
   by autograd and ``tr H`` by Hutchinson through HVPs.
3. :func:`proposition1` random search in subspaces of different signal mass and density.
4. :func:`lemma1` gradient descent (and Adam) on a quadratic against Krylov bases from HVPs.
5. :func:`pushforward` ``dy = dW x`` on one linear layer of a real transformer, and the
   first-order activation shift ``J dtheta`` of a whole-model gradient step against the actual one.

Each public function takes the chapter's :class:`Config` and calls a cached function whose
argument is a small spec holding only the fields its result depends on, so changing any other
parameter reuses the cached result. Closed forms live in :mod:`lls.theory`; the estimators in
:mod:`lls.search`, :mod:`lls.curvature` and :mod:`lls.subspace`.
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import torch
from tqdm.auto import tqdm

from lls import curvature, grids, layers, models, search, seeds, steering, subspace, textdata, theory
from lls.cache import cached
from lls.chapters.theory.config import Config
from lls.chapters.theory.results import (
    FLOAT64_TOL,
    F1F2Run,
    F1F2Spec,
    Lemma1Result,
    Lemma1Spec,
    MaxNormalCheck,
    MaxNormalSpec,
    OptimizerRun,
    Proposition1Spec,
    PushforwardResult,
    PushforwardSpec,
    SubspaceRow,
    Theorem1Row,
    Theorem1Spec,
)
from lls.errors import ConfigError
from lls.f1f2 import f1_f2
from lls.params import ParamSpace

MAX_NORMAL_NS = (2, 4, 16, 64, 256, 1024)
"""The N at which e_N by quadrature is checked against brute force."""
PROBE_REL_SIZE = 1e-2
"""||dW|| / ||W|| of the random one-layer perturbation of the pushforward section."""


def _spec(cls: type, cfg: Config):
    """An instance of spec dataclass ``cls`` from ``cfg``: its fields are Config fields, and
    ``device`` (when present) is the resolved torch device."""
    return cls(**{f.name: cfg.torch_device() if f.name == "device" else getattr(cfg, f.name) for f in fields(cls)})


# --- 1. Theorem 1 (CPU only: lls.theory.sample_quadratic draws on CPU generators) ---------------




def dims(max_log10_dim: int) -> list[int]:
    """The dimensions of the sweep: 10, 100, ..., 10^max_log10_dim."""
    return [10**e for e in range(1, max_log10_dim + 1)]


def n_draws(spec: Theorem1Spec, dim: int) -> int:
    """Candidates drawn in dimension ``dim``: ``t1_budget / dim`` within [t1_min_draws, t1_max_draws]."""
    return int(min(max(spec.t1_budget // dim, spec.t1_min_draws), spec.t1_max_draws))


def theorem1(cfg: Config) -> list[Theorem1Row]:
    """The Monte-Carlo of Theorem 1, one :class:`Theorem1Row` per D of the sweep (cached)."""
    return _theorem1(_spec(Theorem1Spec, cfg))


@cached
def _theorem1(spec: Theorem1Spec) -> list[Theorem1Row]:
    rows = []
    for d in tqdm(dims(spec.t1_max_log10_dim), desc="Theorem 1: dimensions"):
        m = n_draws(spec, d)
        gen = seeds.generator(spec.seed, "theorem1 draws", d)
        first, second = theory.sample_quadratic(d, m, spec.t1_sigma, 1.0, spec.t1_curvature, gen)
        ns = [n for n in grids.powers_of_two(spec.t1_max_draws) if n <= m]
        rows.append(Theorem1Row(
            dim=d, draws=m, ns=ns, first=search.expected_best(-first / spec.t1_sigma, ns),
            first_se=np.array([theory.sd_max_normal(n) / math.sqrt(m // n) for n in ns]),
            second=float(second.mean()), second_se=float(second.std(ddof=1) / math.sqrt(m)),
            net=float(search.expected_best(-(first + second), [spec.t1_n])[0]),
            net_first=float(search.expected_best(-first, [spec.t1_n])[0]),
            g_spread=float(first.std(ddof=1) / spec.t1_sigma)))
    return rows




def max_normal_check(cfg: Config) -> MaxNormalCheck:
    """``e_N`` by quadrature against brute force at :data:`MAX_NORMAL_NS` (cached; CPU, NumPy)."""
    return _max_normal_check(_spec(MaxNormalSpec, cfg))


@cached
def _max_normal_check(spec: MaxNormalSpec) -> MaxNormalCheck:
    ns = MAX_NORMAL_NS
    exact = np.array([theory.expected_max_normal(n) for n in ns])
    simulated = theory.simulate_max_normal(ns, spec.en_trials, np.random.default_rng(spec.seed))
    se = np.array([theory.sd_max_normal(n) for n in ns]) / math.sqrt(spec.en_trials)
    return MaxNormalCheck(list(ns), exact, simulated, se, theory.asymptotic_max_normal(np.array(ns)))


# --- 2. F1/F2 on a real model ---------------------------------------------------------------------




def lm_loss(call, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) of token windows ``batch`` (n, T); a ``batch_loss``."""
    return call(input_ids=batch, labels=batch).loss


def text_batch(tokenizer, n_seqs: int, seq_len: int) -> torch.Tensor:
    """``(n_seqs, seq_len)`` consecutive windows of the book's held-out prose (token ids, CPU)."""
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


def f1f2(cfg: Config) -> F1F2Run:
    """F1/F2 over the sigma grid on ``cfg.model`` (on ``cfg.torch_device()``), ``||g||`` and ``tr H`` (cached)."""
    return _f1f2(_spec(F1F2Spec, cfg))


@cached
def _f1f2(spec: F1F2Spec) -> F1F2Run:
    model, tokenizer = models.load(spec.model, device=spec.device)
    space = search_space(model, spec.f1f2_blocks)
    batch = text_batch(tokenizer, spec.f1f2_seqs, spec.f1f2_seq_len).to(spec.device)
    loss_fn = space.loss_closure(lm_loss, batch)
    theta = space.get()
    grad = torch.func.grad(loss_fn)(theta)
    gen = torch.Generator(device=spec.device).manual_seed(spec.seed)
    trace, trace_se = curvature.hutchinson_trace(curvature.hessian_operator(loss_fn, theta), space.dim,
                                                 spec.hutchinson_probes, gen)
    sigmas = grids.log_grid(spec.sigma_min, spec.sigma_max, spec.n_sigmas)
    result = f1_f2(space, search.Objective(model, lm_loss, batch), sigmas, spec.f1f2_pairs, spec.seed)
    return F1F2Run(result, float(grad.norm()), trace, trace_se, space.dim, len(space.names))


# --- 3. Proposition 1 (CPU only: a float64 problem of at most 10^7 coordinates) ------------------




def density_problem(dim: int) -> theory.DensityProblem:
    """Three blocks (0.2 %, 3 %, 30 % of ``dim`` coordinates, holding 15 %, 35 %, 45 % of ||g||^2)
    and five subspaces made of them, whose mass ranking is nearly the reverse of their density ranking."""
    return theory.DensityProblem(
        dim=dim, sizes=(max(dim // 500, 1), dim * 3 // 100, dim * 3 // 10), masses=(0.15, 0.35, 0.45),
        subspaces={"A": (0,), "B": (1,), "C": (2,), "B+C": (1, 2), "A+B+C": (0, 1, 2)})


def proposition1(cfg: Config) -> list[SubspaceRow]:
    """Measured best-of-``p1_n`` gains per subspace at fixed expected perturbation norm 1 (cached)."""
    return _proposition1(_spec(Proposition1Spec, cfg))


@cached
def _proposition1(spec: Proposition1Spec) -> list[SubspaceRow]:
    problem = density_problem(spec.p1_dim)
    gains = theory.subspace_search_gains(problem, 1.0, spec.p1_n, spec.p1_trials,
                                         torch.Generator().manual_seed(spec.seed))
    return [SubspaceRow(name, problem.size(name), problem.mass(name), problem.density(name), gains[name],
                        theory.predicted_subspace_gain(problem, name, 1.0, spec.p1_n))
            for name in problem.names()]


# --- 4. Lemma 1 (CPU only: explicit float64 matrices, D <= 5000) --------------------------------





def lemma1(cfg: Config) -> Lemma1Result:
    """GD and Adam on the toy quadratic against Krylov bases built from HVPs (cached)."""
    return _lemma1(_spec(Lemma1Spec, cfg))


@cached
def _lemma1(spec: Lemma1Spec) -> Lemma1Result:
    d = spec.l1_dim
    toy = theory.KrylovToy.build(d, focus_dirs=(d // 8, d // 4, d // 2), focus=spec.l1_focus,
                                 eig_low=1.0 / spec.l1_condition, eig_high=1.0,
                                 generator=torch.Generator().manual_seed(spec.seed))
    theta0 = torch.zeros(d, dtype=torch.float64)
    basis = curvature.krylov_basis(curvature.hessian_operator(toy.loss, theta0), toy.g, spec.l1_k_max)
    ks = list(range(1, spec.l1_k_max + 1))
    runs = {}
    for name, lr in (("sgd", 1.0), ("adam", spec.adam_lr)):
        updates = theory.optimizer_updates(toy.loss, d, name, lr, spec.l1_steps)
        displacement = updates.sum(0)
        first = updates[:spec.l1_k_max]
        runs[name] = OptimizerRun(
            residual=theory.krylov_residuals(basis, updates),
            prefix=subspace.prefix_capture(updates, displacement, ks),
            krylov=np.array([subspace.capture(basis[:, :k], displacement) for k in ks]),
            loss_start=float(toy.loss(theta0)), loss_end=float(toy.loss(displacement)),
            kept=subspace.kept_rows(first), prefix_float64=subspace.prefix_capture(updates, displacement, ks,
                                                                                   tol=FLOAT64_TOL),
            kept_float64=subspace.kept_rows(first, FLOAT64_TOL))
        if name == "sgd":
            closed = toy.gd_updates(lr, spec.l1_steps)
            closed_error = float((updates - closed).norm() / closed.norm())
    return Lemma1Result(d, ks, basis.shape[1], runs["sgd"], runs["adam"], closed_error)


# --- 5. Pushforward ------------------------------------------------------------------------------




def first_linear(block: torch.nn.Module) -> tuple[str, torch.nn.Module]:
    """The first linear map of a block: ``nn.Linear`` (``y = x W^T``) or GPT-2's ``Conv1D`` (``y = x W``)."""
    for name, module in block.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            return name, module
    raise ConfigError("the probed block has no linear layer")


def linear_pushforward(module: torch.nn.Module, run, rel_size: float, generator: torch.Generator) -> float:
    """Relative error ``||(y' - y) - dW x|| / ||dW x||`` for a random ``dW`` on one linear map.

    ``run()`` does a forward pass of the whole model; a hook records the map's input ``x`` and
    output ``y`` before and after ``W += dW`` (``||dW|| = rel_size ||W||``, drawn from
    ``generator``, which must live on the weight's device); the weight is restored exactly.
    """
    seen = []
    handle = module.register_forward_hook(lambda _m, args, out: seen.append((args[0].detach(), out.detach())))
    weight = module.weight
    saved = weight.detach().clone()
    delta = torch.randn(weight.shape, generator=generator, dtype=weight.dtype, device=weight.device)
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


def pushforward(cfg: Config) -> PushforwardResult:
    """One-layer identity (float32, float64) and the whole-model first-order activation shift (cached).

    Runs on ``cfg.torch_device()``. The whole-model part takes one normalised gradient step of
    the labelled true/false objective (:func:`lls.steering.gradient_step`) at several step
    norms and compares the measured mean last-token shift at the probed block (``pf_layer``,
    -1 = the middle one, :func:`lls.layers.resolve_layer`) with ``J dtheta``
    (:func:`lls.steering.activation_shift`), in float64.
    """
    return _pushforward(_spec(PushforwardSpec, cfg))


@cached
def _pushforward(spec: PushforwardSpec) -> PushforwardResult:
    model, tokenizer = models.load(spec.model, device=spec.device)
    layer = layers.resolve_layer(model, spec.pf_layer)
    name, module = first_linear(layers.blocks(model)[layer])
    enc = steering.encode_statements(tokenizer, textdata.statements("train")[: spec.pf_statements])
    batch = steering.StatementBatch(*(t.to(spec.device) for t in (enc.input_ids, enc.attention_mask,
                                                                   enc.labels, enc.answer_ids)))
    gen = torch.Generator(device=spec.device).manual_seed(spec.seed)

    def run():
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)

    float32 = linear_pushforward(module, run, PROBE_REL_SIZE, gen)
    model.to(torch.float64)
    float64 = linear_pushforward(module, run, PROBE_REL_SIZE, gen)
    space = ParamSpace(model)
    theta_norm = float(space.get().double().norm())
    step_norms = theta_norm * grids.log_grid(spec.pf_step_min, spec.pf_step_max, spec.pf_n_steps)
    direction = steering.gradient_step(space, batch, 1.0).double()
    unit = steering.activation_shift(space, direction, batch).predicted[layer]  # J dtheta is linear in the step
    errors, cosines = [], []
    for s in tqdm(step_norms, desc="pushforward: step sizes"):
        measured = steering.activation_shift(space, float(s) * direction, batch, predict=False).measured[layer]
        predicted = float(s) * unit
        errors.append(float((measured - predicted).norm() / measured.norm()))
        cosines.append(float(steering.cosine(measured, predicted)))
    return PushforwardResult(layer, name, float32, float64, theta_norm, step_norms, np.array(errors),
                             np.array(cosines), space.dim)
