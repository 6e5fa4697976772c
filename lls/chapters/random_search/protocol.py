"""Chapter 4's experiments around chapter 2's theta_f, the only cached code of the chapter.

* :func:`synthetic_curves`: best-of-N curves over a sigma grid in the full weight space of
  chapter 2's synthetic transformer at theta_f (task A forgotten), with the F1/F2 diagnostic,
  the autograd gradient norm and a Hutchinson estimate of tr H (C5);
* :func:`lm_curves`: the same in the LoRA space of a pretrained LM on a small evaluation batch of
  a text task (C5 in a second, larger space);
* :func:`subspaces` and :func:`subspace_ranking`: best-of-N at one fixed perturbation norm inside
  several subspaces (full, LoRA, trajectory prefix, gradient top-k, Hessian top-k, gradient
  direction, random k), for ranking against signal density and mass (C6);
* :func:`randopt_synthetic`: beyond the paper, top-K selection of random perturbations with a
  majority-vote ensemble (RandOpt / "neural thickets", Gan et al. 2026) on task-A accuracy;
* :func:`lowrank_law` and :func:`lowrank_searches`: Theorem 1 under low-rank noise, the law of
  ``g^T eps`` checked by Monte Carlo over the rank, and best-of-N with low-rank against Gaussian
  noise of the same expected norm on the synthetic model's matrices (:mod:`.lowrank_noise`).

theta_f is chapter 2's own cached point (:func:`lls.chapters.synthetic.protocol.forgotten` with
chapter 2's :class:`~lls.chapters.synthetic.config.Training` for the same preset), never a copy;
the C6 trajectory prefix is the start of chapter 2's recovery phase (its ``lr``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from lls import subspace, theory
from lls.cache import cached
from lls.chapters.random_search.config import LOCAL_FRACTION, Config, chapter2
from lls.chapters.random_search.curves import Curves, claim_n, linear_sigma, search_curves, trace_estimate
from lls.chapters.random_search.lowrank_noise import (
    LawCheck,
    NoiseSearches,
    law_check,
    law_ns,
    matrix_gradients,
    matrix_space,
    noise_searches,
    ranks_up_to,
)
from lls.chapters.synthetic import protocol as chapter2_protocol
from lls.curvature import hessian_operator, lanczos_topk
from lls.grids import log_grid
from lls.params import ParamSpace, batch_gradients
from lls.protocols.forget_recover import recover
from lls.randopt import RandOptResult, randopt
from lls.search import Objective, SearchResult, best_of_n, sigma_for_norm
from lls.seeds import derive, generator
from lls.synthetic import answer_logits, batch_loss


@dataclass
class Setup:
    """The synthetic model at theta_f, its space, the task-A objective and its gradient there (D,),
    and chapter 2's exact-match accuracies per task at theta0 and theta_f."""

    space: ParamSpace
    objective: Objective
    grad: torch.Tensor
    task: str
    acc0: dict[str, float]
    acc_f: dict[str, float]


def setup(cfg: Config) -> Setup:
    """Chapter 2's model at chapter 2's cached theta_f (:func:`lls.chapters.synthetic.protocol.forgotten`,
    the same cache entry chapter 2 uses) with the searched objective (task-A loss on ``eval_batch``)."""
    training = chapter2(cfg).training()
    point = chapter2_protocol.forgotten(training, cfg.seed)
    space = chapter2_protocol.build(training, cfg.seed)
    space.set_(point.theta)
    if cfg.vmap_batch > 1:
        space.model.set_attn_implementation("eager")  # vmap has no batching rule for fused CPU attention
    gen = generator(cfg.seed, "search batch")
    batch = chapter2_protocol.task_family(training).batch(training.task, cfg.eval_batch, gen)
    grad = batch_gradients(space, batch_loss, [batch])[0]
    return Setup(space, Objective(space.model, batch_loss, batch), grad, training.task,
                 chapter2_protocol.pretrain(training, cfg.seed).accuracy, point.accuracy)


@cached
def synthetic_curves(cfg: Config) -> Curves:
    """The synthetic model's full space: :func:`search_curves` on the task-A loss at theta_f."""
    s = setup(cfg)
    curves = search_curves(f"synthetic, full (D={s.space.dim:,})", "synthetic", s.space, s.objective, s.grad,
                           log_grid(cfg.sigma_min, cfg.sigma_max, cfg.n_sigmas), cfg.n_grid, cfg.n_max,
                           cfg.seed, cfg.vmap_batch, cfg.hutchinson_probes)
    curves.extra.update(task=s.task, acc0=s.acc0, acc_f=s.acc_f)
    return curves


@cached
def lm_curves(cfg: Config) -> Curves:
    """The LM's LoRA space: :func:`search_curves` on a text task's answer loss (tr H: 2 probes only)."""
    from lls import evaluation, lora, models, textdata

    model, tokenizer = models.load(cfg.model, device=cfg.torch_device())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive(cfg.seed, "lm lora init"))
        peft_model = lora.add_lora(model)
    space = lora.adapter_space(peft_model)
    batch = textdata.encode(tokenizer, textdata.examples(cfg.lm_task, "train", cfg.lm_examples, cfg.seed))
    objective = Objective(peft_model, evaluation.answer_loss, batch)
    grad = batch_gradients(space, evaluation.answer_loss, [batch])[0]
    curves = search_curves(f"{cfg.model}, LoRA (D={space.dim:,})", "lm", space, objective, grad,
                           log_grid(cfg.lm_sigma_min, cfg.lm_sigma_max, cfg.lm_n_sigmas), cfg.lm_pairs,
                           cfg.lm_n, cfg.seed, cfg.lm_vmap, 2)
    curves.extra.update(evaluation.answer_metrics(peft_model, batch))
    return curves


def _subspace_curvature(space: ParamSpace, objective: Objective, basis: torch.Tensor) -> float:
    """``tr(U^T H U) / k`` for a basis (D, k), by k Hessian-vector products."""
    closure = space.loss_closure(objective.batch_loss, objective.batch)
    hess = hessian_operator(closure, space.get())
    return float(sum(float(u @ hess(u)) for u in basis.T)) / basis.shape[1]


def lora_space(cfg: Config, model: torch.nn.Module) -> tuple[torch.nn.Module, ParamSpace]:
    """A LoRA copy of the synthetic model (rank ``lora_rank``, A drawn from a named stream) and its adapter space."""
    from lls import lora

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive(cfg.seed, "synthetic lora init"))
        lora_model = lora.add_lora(copy.deepcopy(model), r=cfg.lora_rank, alpha=2 * cfg.lora_rank)
    return lora_model, lora.adapter_space(lora_model)


@dataclass
class Subspaces:
    """The C6 subspaces of the synthetic model at theta_f with their density inputs (no search yet).

    ``bases``: name -> (D, k) for the fixed subspaces; ``random``: one (D, k) per search seed;
    ``mass``/``curvature``: per name in ``names`` order (full, LoRA, fixed ones), the random
    subspace's per seed in ``random_mass``/``random_curvature``.
    """

    names: list[str]
    dims: list[int]
    bases: dict[str, torch.Tensor]
    mass: list[float]
    curvature: list[float]
    seeds: list[int]
    random: list[torch.Tensor]
    random_mass: list[float]
    random_curvature: list[float]


def _prefix_updates(cfg: Config, s: Setup) -> torch.Tensor:
    """The first ``k`` updates of chapter 2's recovery phase (its rate ``lr``) from theta_f, (k, D); the
    space is left at theta_f."""
    training = chapter2(cfg).training()
    theta_f = s.space.get()
    run = recover(s.space, batch_loss, chapter2_protocol.recovery_batches(training, cfg.seed),
                  training.phases(recover_steps=cfg.k, k_max=cfg.k), progress=False)
    s.space.set_(theta_f)
    return run.updates


@cached
def subspaces(cfg: Config) -> Subspaces:
    """Build the C6 subspaces: trajectory prefix (first k recovery updates from theta_f), top-k
    SVD of per-batch task-A gradients, top-k Hessian eigenvectors (Lanczos), the gradient
    direction, random k (one per seed); with their mass ``||U^T g||^2`` and curvature
    ``tr(U^T H U)/k``, and those of the full space (Hutchinson) and a LoRA space."""
    s = setup(cfg)
    space, g, k = s.space, s.grad, cfg.k
    updates = _prefix_updates(cfg, s)
    gen = generator(cfg.seed, "c6 probe batches")
    probe = [chapter2_protocol.task_family(chapter2(cfg).training()).batch(s.task, chapter2(cfg).grad_batch_size, gen)
             for _ in range(max(2 * k, 8))]
    _, eigvecs = lanczos_topk(hessian_operator(space.loss_closure(batch_loss, s.objective.batch), space.get()),
                              space.dim, k, max(3 * k, 24), generator(cfg.seed, "c6 lanczos start"))
    bases = {
        "trajectory prefix": subspace.orthonormal_basis(updates),
        "gradient top-k": subspace.top_k_basis(batch_gradients(space, batch_loss, probe), k),
        "Hessian top-k": eigvecs,
        "gradient direction": (g / g.norm())[:, None],
    }
    lora_model, adapters = lora_space(cfg, space.model)
    g_lora = batch_gradients(adapters, batch_loss, [s.objective.batch])[0]
    trace = synthetic_curves(cfg).trace
    trace_lora, _ = trace_estimate(adapters, Objective(lora_model, batch_loss, s.objective.batch), cfg.hutchinson_probes,
                           cfg.seed, "synthetic lora", "hutchinson")
    seeds = [derive(cfg.seed, "c6 search", j) for j in range(cfg.c6_seeds)]
    random = [subspace.random_basis(space.dim, k, generator(cfg.seed, "c6 random basis", j))
              for j in range(cfg.c6_seeds)]
    return Subspaces(
        names=["full", f"LoRA r={cfg.lora_rank}", *bases, "random k"],
        dims=[space.dim, adapters.dim, *(b.shape[1] for b in bases.values()), k], bases=bases,
        mass=[float(g @ g), float(g_lora @ g_lora), *(float((b.T @ g).norm() ** 2) for b in bases.values())],
        curvature=[trace / space.dim, trace_lora / adapters.dim,
                   *(_subspace_curvature(space, s.objective, b) for b in bases.values())],
        seeds=seeds, random=random, random_mass=[float((b.T @ g).norm() ** 2) for b in random],
        random_curvature=[_subspace_curvature(space, s.objective, b) for b in random])


REGIMES = ("practical", "local")


def c6_norm(cfg: Config, regime: str, subs: Subspaces) -> float:
    """The expected perturbation norm r of the C6 searches.

    ``practical``: the full space's largest local-linear grid sigma (or ``c6_sigma``) times sqrt(D),
    where random search in the full space gains most while staying near-linear. ``local``:
    :data:`LOCAL_FRACTION` of the smallest optimal norm ``sqrt(density) e_N / |curvature|`` over the subspaces, so that
    every subspace is searched in its own local-linear regime (Proposition 1's assumption).
    """
    if regime == "practical":
        sigma = cfg.c6_sigma if cfg.c6_sigma > 0 else linear_sigma(synthetic_curves(cfg).diag)
        return sigma * float(np.sqrt(subs.dims[0]))
    if regime != "local":
        raise ValueError(f"regime {regime!r} is not one of {REGIMES}")
    mass = np.array(subs.mass + [float(np.mean(subs.random_mass))])
    curv = np.abs(np.array(subs.curvature + [float(np.mean(subs.random_curvature))]))
    density = mass / np.array(subs.dims, dtype=float)
    optimal = np.sqrt(density) * theory.expected_max_normal(claim_n(cfg.c6_n)) / np.maximum(curv, 1e-12)
    return LOCAL_FRACTION * float(optimal.min())


@dataclass
class Ranking:
    """C6 at one norm: per subspace (S of them) its density and mass, per seed its best-of-N gains."""

    names: list[str]
    dims: list[int]
    density: np.ndarray          # (S,) ||U^T g||^2 / k (mean over seeds for the random subspace)
    mass: np.ndarray             # (S,) ||U^T g||^2 (mean over seeds for the random subspace)
    mass_seed: np.ndarray        # (seeds, S) ||U^T g||^2 of the subspace searched with each seed
    curvature: np.ndarray        # (S,) tr(U^T H U) / k, mean curvature along the subspace
    norm: float                  # r, the expected perturbation norm of every search
    n: int                       # N at which gains are read: claim_n of the candidates per search
    gain: np.ndarray             # (seeds, S) measured best-of-n loss decrease
    first_order: np.ndarray      # (seeds, S) E max of -F1 over n
    searches: list[list[SearchResult]]  # [seed][space]
    seeds: list[int]


@cached
def subspace_ranking(cfg: Config, regime: str = "practical") -> Ranking:
    """``c6_n`` antithetic pairs at the norm :func:`c6_norm` of ``regime`` in each subspace, for each
    search seed (C6). Gains are read at N = :func:`claim_n` from the unbiased best-of-N estimate."""
    s, subs = setup(cfg), subspaces(cfg)
    space = s.space
    lora_model, adapters = lora_space(cfg, space.model)
    lora_obj = Objective(lora_model, batch_loss, s.objective.batch)
    r, n = c6_norm(cfg, regime, subs), claim_n(cfg.c6_n)
    gains, firsts, searches = [], [], []
    for seed, rand in zip(subs.seeds, subs.random, strict=True):
        jobs = [(space, s.objective, None, space.dim), (adapters, lora_obj, None, adapters.dim),
                *((space, s.objective, b, b.shape[1]) for b in subs.bases.values()),
                (space, s.objective, rand, cfg.k)]
        row = [best_of_n(sp, obj, cfg.c6_n, sigma_for_norm(r, dim), seed=seed, basis=basis,
                         batch_size=cfg.vmap_batch if sp is space else 1)
               for sp, obj, basis, dim in jobs]
        searches.append(row)
        gains.append([float(res.gain_curve([n])[0]) for res in row])
        firsts.append([float(res.first_order_curve([n])[0]) for res in row])
    mass_seed = np.array([subs.mass + [m] for m in subs.random_mass])
    mass, dims = mass_seed.mean(axis=0), np.array(subs.dims, dtype=float)
    return Ranking(names=subs.names, dims=subs.dims, density=mass / dims, mass=mass, mass_seed=mass_seed,
                   curvature=np.array(subs.curvature + [float(np.mean(subs.random_curvature))]), norm=r, n=n,
                   gain=np.array(gains), first_order=np.array(firsts), searches=searches, seeds=subs.seeds)


@cached
def randopt_synthetic(cfg: Config) -> tuple[RandOptResult, float]:
    """RandOpt at theta_f: select the top ``randopt_k`` of ``randopt_n`` perturbations by task-A loss
    on the search batch, vote on ``n_eval`` fresh task-A sequences. Sigma: the grid sigma whose
    best-of-``n_grid`` gain was largest. Returns the result and that sigma."""
    s = setup(cfg)
    curves = synthetic_curves(cfg)
    gains = [run.gain_curve([run.n])[0] for run in curves.diag.runs]
    sigma = float(curves.diag.sigmas[int(np.argmax(gains))])
    test = chapter2_protocol.task_family(chapter2(cfg).training()).batch(
        s.task, cfg.n_eval, generator(cfg.seed, "randopt test"))
    length = (test.shape[1] - 2) // 2
    model = s.space.model

    @torch.no_grad()
    def predict():
        return [tuple(row) for row in answer_logits(model, test).argmax(-1).tolist()]

    targets = [tuple(row) for row in test[:, -length:].tolist()]
    result = randopt(s.space, lambda: -s.objective(), predict, targets, cfg.randopt_n, cfg.randopt_k,
                     sigma, seed=derive(cfg.seed, "randopt"))
    return result, sigma


@cached
def lowrank_law(cfg: Config) -> LawCheck:
    """Theorem 1 under low-rank noise: ``law_draws`` Monte-Carlo draws of ``g^T eps`` per rank (1, 4, ...
    up to ``lowrank_max_rank``) with the gradient of the synthetic model's matrices at theta_f, against
    :mod:`lls.lowrank_law`'s variance, kurtosis and ``e~_N``."""
    s = setup(cfg)
    space = matrix_space(s.space)
    return law_check(matrix_gradients(space, s.objective), ranks_up_to(cfg.lowrank_max_rank), cfg.law_draws,
                     law_ns(cfg.law_draws), cfg.seed)


@cached
def lowrank_searches(cfg: Config) -> NoiseSearches:
    """Best-of-``lowrank_n`` on the synthetic model's matrices at theta_f with low-rank noise of each rank
    and with Gaussian noise, at the full space's largest local-linear grid sigma (same expected total
    norm), one search per seed and noise (``lowrank_seeds`` seeds)."""
    s = setup(cfg)
    space = matrix_space(s.space)
    norm = float(torch.sqrt(sum((g**2).sum() for g in matrix_gradients(space, s.objective))))
    seeds = [derive(cfg.seed, "low-rank search", j) for j in range(cfg.lowrank_seeds)]
    return noise_searches(space, s.objective, linear_sigma(synthetic_curves(cfg).diag), cfg.lowrank_n,
                          ranks_up_to(cfg.lowrank_max_rank), seeds, norm, vmap_batch=cfg.vmap_batch,
                          population=cfg.lowrank_population)
