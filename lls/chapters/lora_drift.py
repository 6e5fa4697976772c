"""Chapter 3, LoRA subspace drift: forget and recover a task in a pretrained LM's adapter space.

Protocol (reconstructed, see ``PAPER.md``): a fresh LoRA adapter (peft) on a pretrained causal
LM is trained on task A (theta_A), then on task B (theta_f: A is forgotten), then on A again
(theta_r). The *recovery displacement* is Delta = theta_r - theta_f, a vector of the adapter
space (D = the adapter's parameter count) and, through ``dW = scaling * B @ A``, of the space
of effective weight changes (D_W). One run (:func:`run`, cached) measures:

* C4: capture of Delta by the span of the first k recovery updates, k = 1..k_max;
* C2: capture of Delta by *static* bases computed at theta_f before any recovery step: top-k
  SVD of per-batch task-A gradients, the task-A adapter (theta_A - theta_0), top-k Hessian
  eigenvectors (Lanczos on Hessian-vector products), a random subspace, and (beyond the paper)
  the Krylov basis span{g, Hg, ..., H^(k-1) g} from Hessian-vector products;
* C3: the top-k gradient subspace at recovery checkpoints, their pairwise overlaps (mean
  squared cosine of the principal angles) and the capture of Delta by each checkpoint's basis.

All vectors are float32 torch tensors; bases are (D, k) with orthonormal columns; results are
numpy arrays in a :class:`RunResult`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from lls import curvature, lora, models, subspace, textdata
from lls.cache import cached
from lls.errors import ConfigError
from lls.evaluation import answer_loss as batch_loss
from lls.evaluation import answer_metrics
from lls.metrics import Claim, mean_spread
from lls.params import batch_gradients
from lls.presets import Config, Param
from lls.train import train

PAPER_CAPTURE = 0.77
"""The paper's C4 number: capture of the LoRA recovery displacement by the trajectory prefix."""

PARAMS: dict[str, Param] = {
    "models": Param(str, "comma-separated registry names of the pretrained models (lls.models)",
                    {"smoke": "tiny-llama", "cpu": "smollm2-135m", "paper": "distilgpt2,gpt2"}),
    "pairs": Param(int, "how many task pairs of lls.textdata.TASK_PAIRS to run (first ones)",
                   {"smoke": 2, "cpu": 2, "paper": 2}, low=1, high=2),
    "n_seeds": Param(int, "seeds per model and pair (seed, seed+1, ...)",
                     {"smoke": 1, "cpu": 3, "paper": 5}, low=1, high=20),
    "rank": Param(int, "LoRA rank r", {"smoke": 4, "cpu": 8, "paper": 8}, low=1, high=256),
    "alpha": Param(int, "LoRA alpha (scaling = alpha / r)", {"smoke": 8, "cpu": 16, "paper": 16},
                   low=1, high=1024),
    "lr": Param(float, "Adam learning rate of all three phases", {"smoke": 1e-2, "cpu": 1e-3, "paper": 1e-3},
                low=1e-6, high=1.0),
    "batch_size": Param(int, "examples per training batch", {"smoke": 4, "cpu": 8, "paper": 16},
                        low=1, high=512),
    "max_length": Param(int, "tokens per example (padded/truncated)", {"smoke": 24, "cpu": 32, "paper": 64},
                        low=8, high=1024),
    "steps_a": Param(int, "steps of the first training on task A", {"smoke": 6, "cpu": 20, "paper": 300},
                     low=1, high=100_000),
    "steps_b": Param(int, "steps of training on task B (forgetting A)", {"smoke": 6, "cpu": 20, "paper": 300},
                     low=1, high=100_000),
    "steps_recover": Param(int, "steps of recovery on task A (T)", {"smoke": 12, "cpu": 100, "paper": 400},
                           low=2, high=100_000),
    "k_max": Param(int, "largest prefix length k (at most steps_recover)", {"smoke": 12, "cpu": 100, "paper": 100},
                   low=1, high=10_000),
    "k_ref": Param(int, "prefix length at which C4 is read, fixed in advance", {"smoke": 5, "cpu": 10, "paper": 10},
                   low=1, high=10_000),
    "k_static": Param(int, "largest dimension of the static bases (gradient SVD, Hessian, Krylov, random)",
                      {"smoke": 3, "cpu": 8, "paper": 16}, low=1, high=1000),
    "n_grad": Param(int, "per-batch gradients for each gradient-SVD basis (>= k_static)",
                    {"smoke": 4, "cpu": 8, "paper": 32}, low=1, high=1000),
    "lanczos_iter": Param(int, "Lanczos iterations (Hessian-vector products) for the top-k eigenvectors",
                          {"smoke": 4, "cpu": 12, "paper": 40}, low=1, high=1000),
    "curvature_runs": Param(int, "runs (first ones) that compute the Hessian and Krylov bases",
                            {"smoke": 1, "cpu": 1, "paper": 100}, low=0, high=1000),
    "drift_every": Param(int, "recovery steps between the gradient bases compared for drift",
                         {"smoke": 4, "cpu": 20, "paper": 20}, low=1, high=10_000),
    "drift_k": Param(int, "dimension of the top-k gradient subspaces compared for drift",
                     {"smoke": 2, "cpu": 4, "paper": 8}, low=1, high=1000),
    "n_eval": Param(int, "test examples per task for the loss/accuracy table", {"smoke": 8, "cpu": 32, "paper": 256},
                    low=1, high=100_000),
}


def check(cfg: Config) -> None:
    """Chapter-specific checks, run right after :func:`lls.notebook.start`, before any heavy work.

    Raises :class:`ConfigError` for inconsistent parameters or an unknown model name, and
    :class:`lls.errors.MissingModelError` at once for a hub model that is neither cached nor
    reachable (every hub model is loaded once here, so a missing second model cannot fail the
    chapter after the first one's runs).
    """
    for name in model_names(cfg):
        if name not in models.MODEL_NAMES and "/" not in name:
            raise ConfigError(f"Unknown model {name!r} in models={cfg.models!r}; use names from "
                              f"{list(models.MODEL_NAMES)} separated by commas.")
    rules = [
        (cfg.k_max <= cfg.steps_recover, "k_max must be at most steps_recover"),
        (cfg.k_ref <= cfg.k_max, "k_ref must be at most k_max"),
        (cfg.k_static <= cfg.n_grad, "k_static must be at most n_grad (top-k of n gradients)"),
        (cfg.drift_k <= cfg.n_grad, "drift_k must be at most n_grad"),
        (cfg.k_static <= cfg.lanczos_iter, "k_static must be at most lanczos_iter"),
        (cfg.drift_every < cfg.steps_recover, "drift_every must be below steps_recover"),
        (cfg.pairs <= len(textdata.TASK_PAIRS), f"pairs must be at most {len(textdata.TASK_PAIRS)}"),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(f"{message} (got {dict(cfg.params)}).")
    for name in model_names(cfg):
        if name in models.HUB_MODELS or "/" in name:
            models.load(name)


def model_names(cfg: Config) -> list[str]:
    """The models of ``cfg.models``, in order."""
    return [m.strip() for m in cfg.models.split(",") if m.strip()]


def run_keys(cfg: Config) -> list[tuple[str, int, int]]:
    """Every run of the chapter as ``(model, pair index, seed)``."""
    return [(m, p, cfg.seed + s) for m in model_names(cfg) for p in range(cfg.pairs)
            for s in range(cfg.n_seeds)]


# --- data ---------------------------------------------------------------------------


class TaskBatches:
    """Encoded training examples of one task, served as batches ``step -> batch``.

    A pool of ``n_batches * batch_size`` examples is encoded once; batch ``s`` is slice
    ``s mod n_batches`` of a seeded shuffle, so steps cycle through the pool.
    """

    def __init__(self, tokenizer, task: str, batch_size: int, max_length: int, n_batches: int, seed: int,
                 device: str = "cpu"):
        data = textdata.encode(tokenizer, textdata.examples(task, "train", n_batches * batch_size, seed),
                               max_length)
        order = torch.randperm(n_batches * batch_size, generator=torch.Generator().manual_seed(seed))
        self.data = {k: v[order].to(device) for k, v in data.items()}
        self.batch_size, self.n_batches = batch_size, n_batches

    def __call__(self, step: int) -> dict:
        start = (step % self.n_batches) * self.batch_size
        return {k: v[start:start + self.batch_size] for k, v in self.data.items()}


def evaluate(model, tokenizer, task: str, n: int, max_length: int, device: str = "cpu") -> dict[str, float]:
    """Answer loss and accuracy of ``model`` on ``n`` test examples of ``task``."""
    batch = textdata.encode(tokenizer, textdata.examples(task, "test", n, 0), max_length)
    return answer_metrics(model, {k: v.to(device) for k, v in batch.items()})


def device() -> str:
    """``"cuda"`` when a GPU is visible (the ``paper`` preset expects one), else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


# --- measures --------------------------------------------------------------------------------


def gram_prefix_capture(gram: torch.Tensor, cross: torch.Tensor, norm2: float, ks) -> np.ndarray:
    """Capture of a vector v by the span of the first k of n rows, from inner products only.

    ``gram`` (n, n) = rows @ rows.T, ``cross`` (n,) = rows @ v, ``norm2`` = |v|^2. The capture
    is cross_k^T pinv(gram_k) cross_k / |v|^2 for the leading k x k block (numerically
    dependent rows add nothing). Used in weight-change space, where rows are never formed.
    """
    gram, cross = gram.to(torch.float64), cross.to(torch.float64)
    out = []
    for k in ks:
        evals, evecs = torch.linalg.eigh(gram[:k, :k])
        keep = evals > evals.max().clamp_min(0) * 1e-10
        coef = evecs[:, keep].T @ cross[:k]
        out.append(float((coef.pow(2) / evals[keep]).sum()) / norm2)
    return np.clip(np.asarray(out), 0.0, 1.0)


def basis_capture_curve(basis: torch.Tensor, v: torch.Tensor, ks) -> np.ndarray:
    """Capture of ``v`` by the first k columns of ``basis`` (D, r) for each k in ks (nan if k > r)."""
    share = (basis.T @ v.to(basis.dtype)).pow(2) / v.to(basis.dtype).pow(2).sum()
    cum = share.cumsum(0).numpy()
    return np.asarray([cum[k - 1] if k <= len(cum) else np.nan for k in ks])


def halving_lag(overlap: np.ndarray, steps) -> float | None:
    """Smallest lag (in steps) at which the mean overlap of bases that far apart is <= 1/2.

    ``overlap`` (S, S) between bases taken at ``steps`` (S,, evenly spaced). ``None`` if the
    overlap never halves within the recorded window.
    """
    steps = np.asarray(steps)
    for lag in range(1, len(steps)):
        if np.mean(np.diagonal(overlap, offset=lag)) <= 0.5:
            return float(steps[lag] - steps[0])
    return None


def undone(r: RunResult) -> float:
    """Fraction of task A's gain (drop of its test loss during A's training) that B's training undid.

    0: B left A's loss where A's training brought it; 1: back to the loss before any training.
    A counts as *forgotten* in a run when this is at least 1/2.
    """
    loss = {phase: r.evals[phase][r.pair[0]]["loss"] for phase in ("start", "after A", "after B")}
    gain = loss["start"] - loss["after A"]
    return (loss["after B"] - loss["after A"]) / gain if gain > 0 else float("nan")


def first_k_reaching(curve: np.ndarray, level: float) -> int | None:
    """Smallest k (curve[k-1] is the capture by k rows) with capture >= ``level``, else None."""
    hits = np.nonzero(np.asarray(curve) >= level)[0]
    return int(hits[0]) + 1 if len(hits) else None


# --- one run ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What one (model, pair, seed) run measured. ks run from 1; captures are fractions in [0, 1].

    ``prefix`` (k_max,) and ``prefix_dw`` (k_max,): capture of Delta (adapter space) and of
    Delta_W (weight-change space) by the first k recovery updates; ``static`` maps a basis name
    to its capture curve over k = 1..k_static (nan where a basis has fewer columns);
    ``task_vector``/``task_vector_dw``: capture by the 1-d span of theta_A - theta_0 (resp.
    dW(theta_A)); ``drift_steps`` (S,), ``overlap`` (S, S), ``drift_capture`` (S, n_grad):
    checkpoints of the recovery, overlaps of their top-``drift_k`` gradient subspaces, capture
    of Delta by their top-k gradient bases for k = 1..n_grad; ``evals``: task A/B answer loss and
    accuracy after each phase; ``losses``: training loss per step per phase; ``seconds``: wall
    time per phase; ``cpu_seconds``: CPU time of the whole run (all threads; robust to a busy machine).
    """

    model: str
    pair: tuple[str, str]
    seed: int
    dim: int
    dim_dw: int
    prefix: np.ndarray
    prefix_dw: np.ndarray
    static: dict[str, np.ndarray]
    task_vector: float
    task_vector_dw: float
    drift_steps: list[int]
    overlap: np.ndarray
    drift_capture: np.ndarray
    evals: dict[str, dict[str, float]]
    losses: dict[str, list[float]]
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0


@cached
def run(cfg: Config, model_name: str, pair: int, seed: int, with_curvature: bool) -> RunResult:
    """Forget-and-recover on ``TASK_PAIRS[pair]`` with a LoRA adapter of ``model_name``; measure."""
    clock, seconds, cpu_start = time.perf_counter(), {}, time.process_time()

    def lap(name):
        nonlocal clock
        seconds[name] = time.perf_counter() - clock
        clock = time.perf_counter()

    task_a, task_b = textdata.TASK_PAIRS[pair]
    dev = device()
    torch.manual_seed(seed)
    model, tok = models.load(model_name, device=dev)
    peft_model = lora.add_lora(model, r=cfg.rank, alpha=cfg.alpha)
    space = lora.adapter_space(peft_model)
    n_batches = max(cfg.steps_a, cfg.steps_b, cfg.steps_recover, cfg.n_grad)
    data_a = TaskBatches(tok, task_a, cfg.batch_size, cfg.max_length, n_batches, seed, dev)
    data_b = TaskBatches(tok, task_b, cfg.batch_size, cfg.max_length, n_batches, seed + 10_000, dev)

    def evals():
        return {t: evaluate(peft_model, tok, t, cfg.n_eval, cfg.max_length, dev) for t in (task_a, task_b)}

    results = {"start": evals()}
    theta_0 = space.get().cpu()
    trained_a = train(space, batch_loss, data_a, cfg.steps_a, lr=cfg.lr)
    results["after A"] = evals()
    trained_b = train(space, batch_loss, data_b, cfg.steps_b, lr=cfg.lr)
    results["after B"] = evals()
    theta_a, theta_f = trained_a.end.cpu(), trained_b.end
    lap("train A, B")

    # Static bases at theta_f, before any recovery step (fixed gradient batches: the last ones).
    grad_batches = [data_a(n_batches - 1 - i) for i in range(cfg.n_grad)]
    grads = batch_gradients(space, batch_loss, grad_batches).cpu()
    bases = {"gradient SVD": subspace.top_k_basis(grads, min(cfg.k_static, _rank(grads))),
             "random": subspace.random_basis(space.dim, cfg.k_static, torch.Generator().manual_seed(seed))}
    lap("gradient SVD")
    if with_curvature:
        loss_fn = space.loss_closure(batch_loss, _concat(grad_batches[:2]))
        matvec = curvature.hessian_operator(loss_fn, theta_f)
        _, eigvecs = curvature.lanczos_topk(matvec, space.dim, cfg.k_static, cfg.lanczos_iter,
                                            torch.Generator(dev).manual_seed(seed))
        bases["Hessian top-k"] = eigvecs.cpu()
        bases["Krylov (HVPs)"] = curvature.krylov_basis(matvec, grads.mean(0).to(dev), cfg.k_static).cpu()
        lap("Hessian, Krylov")

    recovered = train(space, batch_loss, data_a, cfg.steps_recover, lr=cfg.lr, record_first=cfg.k_max,
                      checkpoint_every=cfg.drift_every)
    results["after recovery"] = evals()
    for name in ("start", "end", "updates"):
        setattr(recovered, name, getattr(recovered, name).cpu())
    delta = recovered.displacement()
    lap("recovery")

    ks, ks_static = range(1, cfg.k_max + 1), range(1, cfg.k_static + 1)
    prefix = subspace.prefix_capture(recovered.updates, delta, ks)
    static = {name: basis_capture_curve(b, delta, ks_static) for name, b in bases.items()}
    task_vector = subspace.capture(subspace.orthonormal_basis((theta_a - theta_0)[None]), delta)

    # Drift: top-k gradient subspaces at recovery checkpoints, on the same gradient batches.
    drift_steps = sorted(recovered.checkpoints)
    drift_bases, drift_capture = [], []
    for step in drift_steps:
        space.set_(recovered.checkpoints[step])
        g = batch_gradients(space, batch_loss, grad_batches).cpu()
        full = subspace.top_k_basis(g, _rank(g))
        drift_bases.append(full[:, :cfg.drift_k])
        drift_capture.append(basis_capture_curve(full, delta, range(1, cfg.n_grad + 1)))
    space.set_(recovered.end)
    lap("drift")

    dw = _weight_change_captures(peft_model, recovered, theta_a, cfg.k_max)
    lap("weight-change space")
    return RunResult(
        model=model_name, pair=(task_a, task_b), seed=seed, dim=space.dim, dim_dw=lora.delta_dim(peft_model),
        prefix=prefix, prefix_dw=dw["prefix"], static=static, task_vector=task_vector,
        task_vector_dw=dw["task_vector"], drift_steps=drift_steps,
        overlap=subspace.overlap_matrix(drift_bases), drift_capture=np.asarray(drift_capture),
        evals=results, losses={"A": trained_a.losses, "B": trained_b.losses, "recovery": recovered.losses},
        seconds=seconds, cpu_seconds=time.process_time() - cpu_start)


def _rank(rows: torch.Tensor) -> int:
    """Numerical rank of a stack of gradients (rows), by :func:`lls.subspace.top_k_basis`'s rule."""
    sv = subspace.singular_values(rows)
    return int((sv > sv[0] * subspace.DROP_TOL).sum())


def _concat(batches: list[dict]) -> dict:
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


def _weight_change_captures(peft_model, recovered, theta_a: torch.Tensor, k_max: int) -> dict:
    """Prefix and task-vector capture of Delta_W = dW(theta_r) - dW(theta_f), from Gram matrices.

    States theta_0..theta_K of the recovery (start + cumulative updates), its end and theta_A
    are mapped to weight changes only through their inner products (:func:`lls.lora.delta_gram`).
    """
    states = torch.cat([recovered.start[None], recovered.start + recovered.updates.cumsum(0),
                        recovered.end[None], theta_a[None]])
    m = lora.delta_gram(peft_model, states)             # (K+3, K+3): <dW_i, dW_j>
    k, end, a = k_max, k_max + 1, k_max + 2
    diff = torch.zeros(k + 1, states.shape[0], dtype=torch.float64)   # rows: updates, then Delta_W
    idx = torch.arange(k)
    diff[idx, idx + 1], diff[idx, idx] = 1.0, -1.0
    diff[k, end], diff[k, 0] = 1.0, -1.0
    g = diff @ m @ diff.T                                 # Gram of [updates; Delta_W]
    norm2 = float(g[k, k])
    prefix = gram_prefix_capture(g[:k, :k], g[:k, k], norm2, range(1, k + 1))
    cross_a = float(diff[k] @ m[:, a])                    # <Delta_W, dW(theta_A)> (dW(theta_0) = 0)
    return {"prefix": prefix, "task_vector": cross_a**2 / (float(m[a, a]) * norm2)}


# --- the chapter's claims --------------------------------------------------------------------


RUN_INDEPENDENT = {"seed": 0, "models": "", "pairs": 1, "n_seeds": 1, "curvature_runs": 0, "k_ref": 1}
"""Parameters that select or summarise runs but do not change one: neutral values in run keys."""


def run_config(cfg: Config) -> Config:
    """``cfg`` with the :data:`RUN_INDEPENDENT` parameters neutralised: the key of one cached run."""
    return Config(cfg.chapter, cfg.preset, {**cfg.params, **RUN_INDEPENDENT})


def run_all(cfg: Config) -> list[RunResult]:
    """Every run of the chapter, each cached on its own: changing ``n_seeds``, ``pairs`` or ``k_ref``
    reuses the runs already done. Curvature bases for the first ``curvature_runs`` runs."""
    from tqdm.auto import tqdm

    keys = run_keys(cfg)
    return [run(run_config(cfg), m, p, s, i < cfg.curvature_runs) for i, (m, p, s) in enumerate(tqdm(keys, desc="runs"))]


def summary(cfg: Config, runs: list[RunResult]) -> dict:
    """Numbers of the chapter: means and spreads over runs at k_ref, halving lags, thresholds."""
    k = cfg.k_ref
    out = {"prefix_at_k_ref": mean_spread([r.prefix[k - 1] for r in runs]),
           "prefix_dw_at_k_ref": mean_spread([r.prefix_dw[k - 1] for r in runs]),
           "k_reaching_paper": [first_k_reaching(r.prefix, PAPER_CAPTURE) for r in runs],
           "k_reaching_paper_dw": [first_k_reaching(r.prefix_dw, PAPER_CAPTURE) for r in runs],
           "task_vector": mean_spread([r.task_vector for r in runs]),
           "task_vector_dw": mean_spread([r.task_vector_dw for r in runs]),
           "halving_lag": [halving_lag(r.overlap, r.drift_steps) for r in runs]}
    out["undone"] = [undone(r) for r in runs]
    out["forgotten"] = [u >= 0.5 for u in out["undone"]]
    kept = [r.prefix[k - 1] for r, f in zip(runs, out["forgotten"], strict=True) if f]
    out["prefix_at_k_ref_forgotten"] = mean_spread(kept) if kept else (None, None)
    out["task_a_loss"] = {phase: mean_spread([r.evals[phase][r.pair[0]]["loss"] for r in runs])[0]
                          for phase in runs[0].evals}
    groups = sorted({(r.model, r.pair) for r in runs})
    out["prefix_at_k_ref_by_pair"] = {
        f"{m}: {a} -> {b}": mean_spread([r.prefix[k - 1] for r in runs if (r.model, r.pair) == (m, (a, b))])
        for m, (a, b) in groups}
    ks = min(k, cfg.k_static)
    names = sorted({n for r in runs for n in r.static})
    out["static_at_k"] = ks
    out["static"] = {n: mean_spread(v) for n in names
                     if (v := [r.static[n][ks - 1] for r in runs if n in r.static and np.isfinite(r.static[n][ks - 1])])}
    out["prefix_at_static_k"] = mean_spread([r.prefix[ks - 1] for r in runs])
    return out


def claims(cfg: Config, runs: list[RunResult]) -> list[Claim]:
    """C2, C3, C4 from the runs, with the verdict rules stated in the chapter."""
    s, seeds = summary(cfg, runs), sorted({r.seed for r in runs})
    c4, c4_sd = s["prefix_at_k_ref"]
    verdict = "reproduced" if c4 >= PAPER_CAPTURE - 0.1 else "partly" if c4 >= 0.5 else "not reproduced"
    forgot = s["forgotten"]
    if verdict == "reproduced" and 2 * sum(forgot) < len(forgot):
        verdict = "partly"  # the protocol's premise (A forgotten, then recovered) failed in most runs
    reach = s["k_reaching_paper"]
    c4_claim = Claim("C4", c4, PAPER_CAPTURE, verdict, unit="fraction", spread=c4_sd, seeds=seeds,
                     note=f"capture of the LoRA recovery displacement by the first k={cfg.k_ref} of "
                          f"{cfg.steps_recover} recovery updates ({len(runs)} runs); 77 % first reached at "
                          f"k = {reach}; mean task-A test loss after A / after B / after recovery: "
                          + " / ".join(f"{s['task_a_loss'][p]:.2f}" for p in ("after A", "after B", "after recovery"))
                          + f"; A forgotten (B undid at least half of A's loss gain) in {sum(forgot)} of "
                            f"{len(forgot)} runs")
    ks = s["static_at_k"]
    paper_static = {n: v for n, v in s["static"].items() if n != "Krylov (HVPs)"}
    paper_static["task-A adapter"] = s["task_vector"]
    best_name = max(paper_static, key=lambda n: paper_static[n][0])
    best, best_sd = paper_static[best_name]
    prefix_ks = s["prefix_at_static_k"][0]
    c2_claim = Claim("C2", best, None, "reproduced" if best < prefix_ks / 2 else "not reproduced",
                     unit="fraction", spread=best_sd, seeds=seeds,
                     note=f"best static basis ({best_name}; of {', '.join(paper_static)}) captures "
                          f"{best:.2f} of the recovery displacement at k={ks}, the prefix {prefix_ks:.2f}; "
                          "rule: static misses if below half the prefix")
    lags = [lag for lag in s["halving_lag"]]
    finite = [lag for lag in lags if lag is not None]
    lag_mean, lag_sd = mean_spread(finite) if finite else (None, None)
    within = len(finite) == len(lags) and max(finite) <= 100
    c3_claim = Claim("C3", lag_mean, 100.0, "reproduced" if within else "partly" if finite else "not reproduced",
                     unit="steps", spread=lag_sd, seeds=seeds,
                     note=f"lag at which the overlap of top-{cfg.drift_k} adapter-gradient subspaces falls to "
                          f"1/2 (per run: {lags}; None = not within {cfg.steps_recover} steps)")
    return [c2_claim, c3_claim, c4_claim]


def extra_numbers(cfg: Config, runs: list[RunResult]) -> dict:
    """Further numbers for ``metrics.json``: weight-change space, each static basis, timings."""
    s = summary(cfg, runs)
    return {"prefix_dw_at_k_ref": s["prefix_dw_at_k_ref"][0], "k_reaching_paper": s["k_reaching_paper"],
            "k_reaching_paper_dw": s["k_reaching_paper_dw"], "task_vector_capture": s["task_vector"][0],
            "task_vector_capture_dw": s["task_vector_dw"][0], "static_k": s["static_at_k"],
            **{f"static_{n}": m for n, (m, _) in s["static"].items()},
            "prefix_at_static_k": s["prefix_at_static_k"][0], "adapter_dim": runs[0].dim,
            **{f"prefix_at_k_ref [{g}]": m for g, (m, _) in s["prefix_at_k_ref_by_pair"].items()},
            "weight_change_dim": runs[0].dim_dw,
            **{f"task_A_loss_{phase}": v for phase, v in s["task_a_loss"].items()},
            "fraction_of_A_gain_undone_by_B": s["undone"],
            "prefix_at_k_ref_where_A_forgotten": s["prefix_at_k_ref_forgotten"][0],
            "seconds_per_run": [round(sum(r.seconds.values()), 1) for r in runs],
            "cpu_seconds_per_run": [round(r.cpu_seconds, 1) for r in runs]}


# --- tables and figures ----------------------------------------------------------------------


def evals_table(runs: list[RunResult]) -> str:
    """Markdown table: task-A and task-B answer loss (accuracy) after each phase, per run."""
    rows = ["| model | pair (A, B) | seed | task | start | after A | after B | after recovery |",
            "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        for task in r.pair:
            cells = [f"{r.evals[p][task]['loss']:.2f} ({r.evals[p][task]['accuracy']:.0%})" for p in r.evals]
            rows.append(f"| {r.model} | {', '.join(r.pair)} | {r.seed} | {task} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _band(fig, x, curves: np.ndarray, name: str, color: str, dash: str | None = None) -> None:
    """Mean line of ``curves`` (runs, len(x)) with a min-max band."""
    import plotly.graph_objects as go

    lo, hi, mean = np.nanmin(curves, 0), np.nanmax(curves, 0), np.nanmean(curves, 0)
    x = list(x)
    fig.add_trace(go.Scatter(x=x + x[::-1], y=list(hi) + list(lo[::-1]), fill="toself", line={"width": 0},
                             fillcolor=color, opacity=0.2, showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=mean, mode="lines", name=name, line={"color": color, "dash": dash}))


def prefix_figure(cfg: Config, runs: list[RunResult]):
    """C4: capture of Delta by the first k recovery updates (mean, min-max band over runs)."""
    import plotly.graph_objects as go

    ks = list(range(1, cfg.k_max + 1))
    fig = go.Figure()
    _band(fig, ks, np.stack([r.prefix for r in runs]), "adapter space (A, B factors)", "royalblue")
    _band(fig, ks, np.stack([r.prefix_dw for r in runs]), "weight-change space (dW = s·B·A)", "darkorange", "dash")
    fig.add_hline(y=PAPER_CAPTURE, line_dash="dot", annotation_text=f"paper {PAPER_CAPTURE:.0%}")
    fig.add_vline(x=cfg.k_ref, line_dash="dot", line_color="grey", annotation_text=f"k_ref = {cfg.k_ref}")
    fig.update_layout(title=f"Trajectory-prefix capture of the recovery displacement ({len(runs)} runs)",
                      xaxis_title="k (first recovery updates)", yaxis_title="capture of Δ",
                      yaxis_range=[0, 1.02], height=420, legend={"orientation": "h", "y": -0.25})
    return fig


STATIC_COLORS = {"gradient SVD": "seagreen", "Hessian top-k": "firebrick", "Krylov (HVPs)": "purple",
                 "random": "grey"}


def static_figure(cfg: Config, runs: list[RunResult]):
    """C2: capture of Delta by the static bases (computed at theta_f) against the prefix, k <= k_static."""
    import plotly.graph_objects as go

    ks = list(range(1, cfg.k_static + 1))
    fig = go.Figure()
    _band(fig, ks, np.stack([r.prefix[:cfg.k_static] for r in runs]), "trajectory prefix", "royalblue")
    for name, color in STATIC_COLORS.items():
        curves = [r.static[name] for r in runs if name in r.static]
        if curves:
            _band(fig, ks, np.stack(curves), f"{name} ({len(curves)} runs)", color)
    fig.add_trace(go.Scatter(x=[1], y=[np.mean([r.task_vector for r in runs])], mode="markers",
                             marker={"size": 11, "symbol": "diamond", "color": "black"},
                             name="task-A adapter θ_A − θ_0 (1-d)"))
    fig.update_layout(title="Static bases, computed before recovery, against the trajectory prefix",
                      xaxis_title="k (basis dimension)", yaxis_title="capture of Δ", yaxis_range=[0, 1.02],
                      height=420, legend={"orientation": "h", "y": -0.25})
    return fig


def drift_figure(cfg: Config, r: RunResult):
    """C3: the drift explorer of one run (overlap heatmap, capture by each checkpoint's basis)."""
    from lls.plots import drift_explorer

    return drift_explorer(r.drift_steps, r.overlap, list(range(1, r.drift_capture.shape[1] + 1)),
                          r.drift_capture,
                          title=f"Drift of the top-{cfg.drift_k} adapter-gradient subspace during recovery "
                                f"({r.model}, {r.pair[0]}, seed {r.seed})",
                          capture_label="capture of Δ by the top-k gradient basis at that step")


def lag_figure(runs: list[RunResult]):
    """C3: mean overlap of gradient subspaces against the lag between their steps, per run."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for r in runs:
        lags = [s - r.drift_steps[0] for s in r.drift_steps]
        means = [float(np.mean(np.diagonal(r.overlap, offset=j))) for j in range(len(lags))]
        fig.add_trace(go.Scatter(x=lags, y=means, mode="lines+markers", name=f"{r.model} {r.pair[0]} s{r.seed}"))
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="half")
    fig.update_layout(title="Overlap of top-k gradient subspaces against the lag between them",
                      xaxis_title="lag (recovery steps)", yaxis_title="mean overlap", yaxis_range=[0, 1.02],
                      height=380)
    return fig
