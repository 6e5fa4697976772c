"""Random parameter search with seed-regenerated Gaussian perturbations.

The perturbation number ``i`` of a search with seed ``seed`` is drawn from its own generator,
seeded from ``(seed, i)``, one parameter tensor at a time: it is *regenerated* whenever it is
needed and never stored. The engine perturbs the model in place, evaluates, and restores the
parameters from one saved copy, so a search over ``N`` perturbations holds about three copies of
the searched parameters (the parameters, the saved copy, one noise buffer), never ``N`` models
nor an ``N x D`` array; on leaving it checks that every parameter is equal, bit for bit, to
what it was before.

Three kinds of search space, one code path: a :class:`lls.params.ParamSpace` over all
parameters, over LoRA adapters only (:func:`lls.lora.adapter_space`), and any subspace of a
space given by an orthonormal basis ``U`` of shape ``(D, k)``, where ``eps = U z``.

Perturbation law: without a basis ``eps ~ N(0, sigma^2 I_D)``; with a basis ``z ~ N(0,
sigma^2 I_k)`` so ``E||eps||^2 = sigma^2 k``. To compare spaces at a fixed expected norm ``r``
(Proposition 1), pass ``sigma = r / sqrt(k)`` (:func:`sigma_for_norm`).

Evaluation is either a plain ``eval_loss() -> float`` (the model as it is now, perturbed in
place) or an :class:`Objective`, which can also evaluate several perturbations in one batched
pass through :func:`torch.func.functional_call` under :func:`torch.vmap`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.special import gammaln
from torch.func import functional_call
from tqdm.auto import tqdm

from lls.params import BatchLoss, ParamSpace


def stream_seed(seed: int, i: int) -> int:
    """The 63-bit generator seed of perturbation ``i`` of a search with seed ``seed``."""
    state = np.random.SeedSequence([int(seed), int(i)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & (2**63 - 1))


def sigma_for_norm(norm: float, k: int) -> float:
    """Per-coordinate sigma that gives a perturbation of expected squared norm ``norm**2`` in ``k`` dims."""
    return float(norm) / float(np.sqrt(k))


def _check_basis(space: ParamSpace, basis: torch.Tensor | None) -> None:
    if basis is not None and (basis.ndim != 2 or basis.shape[0] != space.dim):
        raise ValueError(f"basis must have shape (D={space.dim}, k), got {tuple(basis.shape)}")


def _draw(space: ParamSpace, seed: int, i: int, basis: torch.Tensor | None,
          out: Sequence[torch.Tensor]) -> None:
    """Fill ``out`` (one buffer per parameter) with the unit-sigma perturbation ``i``, tensor by tensor."""
    params = space.params()
    device = params[0].device
    gen = torch.Generator(device=device).manual_seed(stream_seed(seed, i))
    if basis is None:
        for buf in out:
            torch.randn(buf.shape, generator=gen, dtype=buf.dtype, device=device, out=buf)
        return
    z = torch.randn(basis.shape[1], generator=gen, dtype=basis.dtype, device=device)
    start = 0
    for buf in out:
        n = buf.numel()
        buf.copy_((basis[start:start + n] @ z).view(buf.shape))
        start += n


def perturbation(space: ParamSpace, seed: int, i: int, sigma: float,
                 basis: torch.Tensor | None = None) -> torch.Tensor:
    """Perturbation ``i`` of seed ``seed`` as one flat float32 vector ``(D,)`` (tests, small ``D``).

    The same numbers the engine adds to the model: ``sigma * n``, ``n ~ N(0, I_D)``, or
    ``basis @ (sigma * z)``, ``z ~ N(0, I_k)``, when a basis ``(D, k)`` is given.
    """
    _check_basis(space, basis)
    bufs = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in space.params()]
    _draw(space, seed, i, basis, bufs)
    return torch.cat([b.reshape(-1).float() for b in bufs]) * sigma


class Perturber:
    """Context manager that perturbs ``space``'s parameters in place and restores them exactly.

    ``apply(i, sign)`` sets the parameters to ``theta0 + sign * sigma * eps_i`` (computed from the
    saved copy, so errors never accumulate); ``restore()`` copies ``theta0`` back. On exit the
    parameters are restored and compared bit for bit with the saved copy; a mismatch raises
    :class:`RuntimeError`. ``stacked(pairs)`` returns the perturbed parameters of several
    ``(i, sign)`` pairs stacked along a new first axis, for a batched evaluation.
    """

    def __init__(self, space: ParamSpace, seed: int, sigma: float, basis: torch.Tensor | None = None):
        _check_basis(space, basis)
        self.space, self.seed, self.sigma, self.basis = space, int(seed), float(sigma), basis
        self._params = space.params()
        self._saved: list[torch.Tensor] = []
        self._noise: list[torch.Tensor] = []
        self._drawn: int | None = None

    def __enter__(self) -> Perturber:
        self._saved = [p.detach().clone() for p in self._params]
        self._noise = [torch.empty_like(s) for s in self._saved]
        self._drawn = None
        return self

    def __exit__(self, *exc) -> None:
        self.restore()
        changed = [n for n, p, s in zip(self.space.names, self._params, self._saved, strict=True)
                   if not torch.equal(p.detach(), s)]
        self._saved, self._noise = [], []
        if changed:
            raise RuntimeError(f"parameters not restored exactly after the search: {changed[:5]}")

    @torch.no_grad()
    def apply(self, i: int, sign: int = 1) -> None:
        """Set the parameters to ``theta0 + sign * sigma * eps_i`` (``sign`` is +1 or -1)."""
        if sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, got {sign}")
        if self._drawn != i:
            _draw(self.space, self.seed, i, self.basis, self._noise)
            self._drawn = i
        for p, s, eps in zip(self._params, self._saved, self._noise, strict=True):
            torch.add(s, eps, alpha=sign * self.sigma, out=p.data)

    @torch.no_grad()
    def restore(self) -> None:
        """Copy the saved parameters back."""
        for p, s in zip(self._params, self._saved, strict=True):
            p.data.copy_(s)

    @torch.no_grad()
    def stacked(self, pairs: Sequence[tuple[int, int]]) -> dict[str, torch.Tensor]:
        """``{name: (B, *shape)}`` parameters ``theta0 + sign * sigma * eps_i`` for each ``(i, sign)``."""
        out = {n: torch.empty((len(pairs), *s.shape), dtype=s.dtype, device=s.device)
               for n, s in zip(self.space.names, self._saved, strict=True)}
        for b, (i, sign) in enumerate(pairs):
            if self._drawn != i:
                _draw(self.space, self.seed, i, self.basis, self._noise)
                self._drawn = i
            for n, s, eps in zip(self.space.names, self._saved, self._noise, strict=True):
                torch.add(s, eps, alpha=sign * self.sigma, out=out[n][b])
        return out


@dataclass(frozen=True)
class Objective:
    """A loss the engine evaluates in place (``objective()``) or batched (``objective.batched``).

    ``batch_loss(call, batch) -> scalar tensor`` as in :mod:`lls.params`, where ``call`` runs
    ``model``. Batched evaluation maps it with :func:`torch.vmap` over stacked parameters, using
    :func:`torch.func.functional_call` (parameters not in the stack keep their values).
    """

    model: torch.nn.Module
    batch_loss: BatchLoss
    batch: Any

    @torch.no_grad()
    def __call__(self) -> float:
        return float(self.batch_loss(self.model, self.batch))

    @torch.no_grad()
    def batched(self, stacked: dict[str, torch.Tensor]) -> np.ndarray:
        """Losses ``(B,)`` for parameters stacked as ``{name: (B, *shape)}``."""
        def one(params):
            def call(*args, **kwargs):
                return functional_call(self.model, params, args, kwargs, strict=False)
            return self.batch_loss(call, self.batch)

        return torch.vmap(one)(stacked).double().cpu().numpy()


def evaluate(space: ParamSpace, fn: Callable[[], Any], seed: int, pairs: Sequence[tuple[int, int]],
             sigma: float, *, basis: torch.Tensor | None = None, batch_size: int = 1,
             progress: bool = True, desc: str = "perturbations") -> list[Any]:
    """``fn()`` at ``theta0 + sign * sigma * eps_i`` for each ``(i, sign)`` in ``pairs``, in order.

    ``fn`` returns anything (a loss, predictions). With ``batch_size > 1`` ``fn`` must be an
    :class:`Objective` and chunks of ``batch_size`` pairs are evaluated in one vmapped pass.
    List pairs of the same ``i`` next to each other: each ``eps_i`` is drawn once per run of
    equal ``i``. The model's parameters are restored exactly afterwards (checked).
    """
    if batch_size > 1 and not isinstance(fn, Objective):
        raise TypeError("a batched evaluation (batch_size > 1) needs an lls.search.Objective")
    out: list[Any] = []
    bar = tqdm(total=len(pairs), desc=desc, disable=not progress, leave=False)
    with Perturber(space, seed, sigma, basis) as pert:
        if batch_size > 1:
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start:start + batch_size]
                out.extend(fn.batched(pert.stacked(chunk)).tolist())
                bar.update(len(chunk))
        else:
            for i, sign in pairs:
                pert.apply(i, sign)
                out.append(fn())
                bar.update(1)
    bar.close()
    return out


def expected_best(values: np.ndarray, ns: Sequence[int]) -> np.ndarray:
    """Unbiased estimate of ``E[max of n iid draws]`` for each ``n`` in ``ns`` from ``N >= n`` draws.

    With the sample sorted ascending, ``x_(1) <= ... <= x_(N)``, the estimate is
    ``sum_j C(j-1, n-1) / C(N, n) * x_(j)``: the average of the maximum over all ``n``-subsets.
    """
    x = np.sort(np.asarray(values, dtype=float))
    big_n = len(x)
    j = np.arange(1, big_n + 1)
    out = []
    for n in ns:
        if not 1 <= n <= big_n:
            raise ValueError(f"n={n} must lie in [1, {big_n}]")
        logw = np.full(big_n, -np.inf)
        ok = j >= n
        logw[ok] = (gammaln(j[ok]) - gammaln(n) - gammaln(j[ok] - n + 1)
                    - (gammaln(big_n + 1) - gammaln(n + 1) - gammaln(big_n - n + 1)))
        out.append(float(np.sum(np.exp(logw) * x)))
    return np.asarray(out)


@dataclass
class SearchResult:
    """Losses of one best-of-N search.

    ``base`` L(theta0); ``plus`` (N,) L(theta0 + eps_i); ``minus`` (N,) L(theta0 - eps_i) or
    ``None`` (no antithetic pairs); ``sigma`` the per-coordinate scale; ``dim`` the dimension of
    the searched space (``k`` for a subspace); ``seconds`` wall time of the evaluations.
    """

    base: float
    plus: np.ndarray
    minus: np.ndarray | None
    sigma: float
    seed: int
    dim: int
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.plus)

    @property
    def f1(self) -> np.ndarray:
        """Odd part ``[L(+eps) - L(-eps)] / 2`` (~ g^T eps), shape (N,)."""
        if self.minus is None:
            raise ValueError("F1 needs antithetic pairs")
        return (self.plus - self.minus) / 2

    @property
    def f2(self) -> np.ndarray:
        """Even part ``[L(+eps) + L(-eps)] / 2 - L(theta0)`` (~ eps^T H eps / 2), shape (N,)."""
        if self.minus is None:
            raise ValueError("F2 needs antithetic pairs")
        return (self.plus + self.minus) / 2 - self.base

    def gain_curve(self, ns: Sequence[int]) -> np.ndarray:
        """Expected best-of-n loss decrease ``L0 - E[min of n iid L(theta0 + eps)]`` for each n."""
        return expected_best(self.base - self.plus, ns)

    def first_order_curve(self, ns: Sequence[int]) -> np.ndarray:
        """Expected best-of-n first-order gain ``E[max of n (-F1)]`` (the part Theorem 1 predicts)."""
        return expected_best(-self.f1, ns)

    def best(self) -> tuple[int, int, float]:
        """``(i, sign, loss)`` of the lowest loss among all evaluated candidates."""
        cands = [(float(v), i, 1) for i, v in enumerate(self.plus)]
        if self.minus is not None:
            cands += [(float(v), i, -1) for i, v in enumerate(self.minus)]
        loss, i, sign = min(cands)
        return i, sign, loss


def _space_dim(space: ParamSpace, basis: torch.Tensor | None) -> int:
    return space.dim if basis is None else int(basis.shape[1])


def candidate_pairs(indices: Iterable[int], antithetic: bool = True) -> list[tuple[int, int]]:
    """The ``(i, sign)`` evaluations of candidates ``indices``, in :func:`best_of_n`'s order:
    ``(i, +1), (i, -1)`` for each ``i`` when ``antithetic``, else ``(i, +1)``."""
    signs = (1, -1) if antithetic else (1,)
    return [(i, s) for i in indices for s in signs]


def search_result(base: float, losses: Sequence[float], *, antithetic: bool, sigma: float, seed: int,
                  dim: int, seconds: float = 0.0) -> SearchResult:
    """A :class:`SearchResult` from the losses of ``candidate_pairs(range(N), antithetic)``, in that
    order (``2N`` losses when ``antithetic``, else ``N``)."""
    losses = np.asarray(losses, dtype=float)
    plus = losses[0::2] if antithetic else losses
    minus = losses[1::2] if antithetic else None
    return SearchResult(base=float(base), plus=plus, minus=minus, sigma=float(sigma), seed=int(seed),
                        dim=int(dim), seconds=seconds)


def best_of_n(space: ParamSpace, eval_loss: Callable[[], float], n: int, sigma: float, seed: int, *,
              basis: torch.Tensor | None = None, antithetic: bool = True, batch_size: int = 1,
              progress: bool = True) -> SearchResult:
    """Evaluate ``n`` seed-regenerated perturbations (and their negatives when ``antithetic``).

    ``eval_loss()`` is the loss of the model as it is now (an :class:`Objective` for
    ``batch_size > 1``). Returns a :class:`SearchResult`; the model is left exactly as it was.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    base = float(eval_loss())
    t0 = time.perf_counter()
    losses = evaluate(space, eval_loss, seed, candidate_pairs(range(n), antithetic), sigma, basis=basis,
                      batch_size=batch_size, progress=progress, desc=f"best-of-{n}, sigma={sigma:.3g}")
    return search_result(base, losses, antithetic=antithetic, sigma=sigma, seed=seed,
                         dim=_space_dim(space, basis), seconds=time.perf_counter() - t0)


@dataclass
class F1F2Result:
    """The F1/F2 diagnostic over a sigma grid.

    ``sigmas`` (S,); ``f1`` and ``f2`` (S, P) with P antithetic pairs per sigma; ``dim`` the
    searched dimension; ``runs`` the :class:`SearchResult` of each sigma (its best-of-P curves).
    In the local-linear regime F1 ~ N(0, sigma^2 ||g||^2) and mean F2 ~ sigma^2 tr(H) / 2
    (tr(U^T H U) in a subspace).
    """

    sigmas: np.ndarray
    f1: np.ndarray
    f2: np.ndarray
    base: float
    dim: int
    runs: list[SearchResult] = field(default_factory=list)

    @property
    def f1_spread(self) -> np.ndarray:
        """Standard deviation of F1 per sigma, (S,)."""
        return self.f1.std(axis=1, ddof=1)

    @property
    def f2_mean(self) -> np.ndarray:
        """Mean of F2 per sigma, (S,)."""
        return self.f2.mean(axis=1)

    @property
    def f2_sem(self) -> np.ndarray:
        """Standard error of the mean of F2 per sigma, (S,)."""
        return self.f2.std(axis=1, ddof=1) / np.sqrt(self.f2.shape[1])

    @property
    def odd_deviation(self) -> np.ndarray:
        """(S,) relative change of F1/sigma from the smallest sigma, ``||F1_s/s - F1_0/s_0|| / ||F1_0/s_0||``.

        The same eps_i are used at every sigma, so this is free of sampling noise: near 0 where the
        odd part is linear in sigma, large where third-order terms have grown into F1.
        """
        scaled = self.f1 / self.sigmas[:, None]
        i0 = int(np.argmin(self.sigmas))
        return np.linalg.norm(scaled - scaled[i0], axis=1) / np.linalg.norm(scaled[i0])

    def linear(self, margin: float = 1.0, odd_tol: float | None = None) -> np.ndarray:
        """Boolean (S,): sigmas where the F1 spread exceeds ``margin`` times ``|mean F2|`` and, if
        ``odd_tol`` is given, :attr:`odd_deviation` is at most ``odd_tol``."""
        ok = self.f1_spread > margin * np.abs(self.f2_mean)
        return ok if odd_tol is None else ok & (self.odd_deviation <= odd_tol)

    @property
    def grad_norm(self) -> np.ndarray:
        """Zeroth-order estimate of ||g|| (||U^T g|| in a subspace) per sigma: F1 spread / sigma."""
        return self.f1_spread / self.sigmas

    @property
    def trace(self) -> np.ndarray:
        """Zeroth-order estimate of tr(H) (tr(U^T H U) in a subspace) per sigma: 2 mean F2 / sigma^2."""
        return 2 * self.f2_mean / self.sigmas**2

    def sigma_star(self, n: int) -> float:
        """:func:`lls.theory.sigma_star` from the estimates at the smallest sigma (best-of-n optimum)."""
        from lls.theory import sigma_star

        return sigma_star(float(self.grad_norm[0]), float(self.trace[0]), n)


def f1_f2(space: ParamSpace, eval_loss: Callable[[], float], sigmas: Sequence[float], n_pairs: int,
          seed: int, *, basis: torch.Tensor | None = None, batch_size: int = 1,
          progress: bool = True) -> F1F2Result:
    """The F1/F2 diagnostic: ``n_pairs`` antithetic pairs at each sigma (the same eps_i for all sigmas).

    Returns per-sigma odd parts F1 = [L(+eps) - L(-eps)]/2 and even parts
    F2 = [L(+eps) + L(-eps)]/2 - L(theta0); see :class:`F1F2Result`.
    """
    if n_pairs < 2:
        raise ValueError(f"n_pairs must be >= 2 to estimate a spread, got {n_pairs}")
    runs = [best_of_n(space, eval_loss, n_pairs, s, seed, basis=basis, batch_size=batch_size,
                      progress=progress) for s in sigmas]
    return F1F2Result(sigmas=np.asarray(sigmas, dtype=float), f1=np.stack([r.f1 for r in runs]),
                      f2=np.stack([r.f2 for r in runs]), base=runs[0].base, dim=runs[0].dim,
                      runs=runs)


def majority_vote(predictions: Sequence[Sequence[Hashable]]) -> list[Hashable]:
    """Per-example majority over models: ``predictions[m][e]`` is model m's answer to example e.

    Ties go to the answer of the earliest model among the tied ones (models in rank order).
    """
    votes = []
    for answers in zip(*predictions, strict=True):
        counts = Counter(answers)
        top = max(counts.values())
        votes.append(next(a for a in answers if counts[a] == top))
    return votes


@dataclass
class RandOptResult:
    """Top-K perturbation selection with a majority-vote ensemble (RandOpt, "neural thickets").

    ``scores`` (N,) selection scores (higher is better) of ``theta0 + eps_i``; ``top`` the K
    selected indices, best first; ``base_accuracy`` the unperturbed model's test accuracy;
    ``member_accuracy`` (K,) each selected model's; ``ensemble_accuracy`` the vote's.
    """

    scores: np.ndarray
    top: list[int]
    base_accuracy: float
    member_accuracy: np.ndarray
    ensemble_accuracy: float


def randopt(space: ParamSpace, score: Callable[[], float], predict: Callable[[], Sequence[Hashable]],
            targets: Sequence[Hashable], n: int, k: int, sigma: float, seed: int, *,
            basis: torch.Tensor | None = None, progress: bool = True) -> RandOptResult:
    """Score ``n`` perturbations on a selection set, keep the top ``k``, vote on a test set.

    ``score()`` rates the current model on the selection set (higher is better, e.g. minus a
    loss); ``predict()`` returns its answers to the test examples, compared with ``targets``.
    The selected perturbations are regenerated from their seeds for the test predictions.
    """
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    scores = np.asarray(evaluate(space, score, seed, [(i, 1) for i in range(n)], sigma, basis=basis,
                                 progress=progress, desc="RandOpt selection"), dtype=float)
    top = [int(i) for i in np.argsort(-scores, kind="stable")[:k]]
    preds = evaluate(space, predict, seed, [(i, 1) for i in top], sigma, basis=basis,
                     progress=progress, desc="RandOpt top-k predictions")
    targets = list(targets)

    def accuracy(answers):
        return float(np.mean([a == t for a, t in zip(answers, targets, strict=True)]))

    return RandOptResult(scores=scores, top=top, base_accuracy=accuracy(predict()),
                         member_accuracy=np.asarray([accuracy(p) for p in preds]),
                         ensemble_accuracy=accuracy(majority_vote(preds)))
