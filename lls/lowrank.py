"""Low-rank population search: ``N`` candidates in one batched forward pass (EGGROLL-style).

Perturbation ``i`` of a search with seed ``seed`` and rank ``r`` moves every matrix (2-D
parameter) ``W_j`` of a :class:`lls.params.ParamSpace`, stored with shape ``(m, n)``, to

``W_j + sigma * A_ij B_ij^T / sqrt(r)``,  ``A_ij`` ``(m, r)``, ``B_ij`` ``(n, r)``, iid ``N(0, 1)``,

cut (``A^T`` first, then ``B^T``, matrices in the space's order) from one draw of the generator
:func:`lls.seeds.generator` ``(seed, i)``, so that every candidate and every matrix has its own
piece of a stream and a perturbation is regenerated, never stored (:func:`factors`). Parameters that are not
matrices (biases, norm gains) are **left unperturbed**. For ``nn.Linear`` the stored shape is
``(out, in)``; GPT-2's ``Conv1D`` stores its weight transposed, ``(in, out)``, and the
perturbation is defined on the stored matrix, so there ``A`` is ``(in, r)`` and ``B`` ``(out, r)``
(the law is the same either way).

No weight is written, so there is nothing to restore: forward hooks on the modules that use each
matrix add the perturbation's effect to their outputs, with ``s_b = sign_b sigma / sqrt(r)``
for candidate ``b`` and ``x`` the module's input:

* ``nn.Linear`` (``y = x W^T``): ``+ s_b (x B) A^T``;
* ``Conv1D`` (``y = x W``): ``+ s_b (x A) B^T``;
* ``nn.Embedding`` (``y = W[ids]``): ``+ s_b A[ids] B^T``.

A tied weight (GPT-2's ``wte`` and ``lm_head``, a tied Llama's ``embed_tokens`` and
``lm_head``) is one parameter: both modules are hooked with the same factors, as writing the
weight would do. A matrix of the space that no such module uses raises :class:`ValueError`.

**One pass for the population.** The objective's batch (``B`` examples) is tiled ``N`` times along
the batch axis, candidate-major (rows ``b B .. (b + 1) B - 1`` are candidate ``b``), the model
runs once with the hooks, and candidate ``b``'s loss is ``objective.batch_loss`` on its rows of
the output. Each hook computes its ``N`` low-rank terms with two batched products, ``(N, K, n) @
(N, n, r)`` then ``(N, K, r) @ (N, r, m)`` accumulated into the layer's fresh output in place
(for ``r = 1`` a product-and-sum and a fused multiply-add, which a CPU runs several times faster
than a one-column batched matmul), for ``K`` tokens per candidate: ``O(N K r (m + n))`` work against the
layer's ``O(N K m n)``, and ``N r (m + n)`` numbers of factors, never ``N`` weight matrices.

**Law.** An entry of ``A B^T / sqrt(r)`` is a sum of ``r`` products of independent standard
normals over ``sqrt(r)``: mean 0, variance 1, excess kurtosis ``6 / r``; entries are
uncorrelated but not independent (a row shares its row of ``A``). So ``E ||dW_j||_F^2 = sigma^2 m
n``, as for Gaussian noise of per-coordinate ``sigma``; the first-order signal ``g^T eps`` has the
Gaussian variance ``sigma^2 ||g||^2`` but heavier tails, see
:func:`lls.lowrank_law.lowrank_excess_kurtosis` and :func:`lls.lowrank_law.expected_max_lowrank`.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers.pytorch_utils import Conv1D

from lls.params import ParamSpace
from lls.search import Objective, SearchResult
from lls.seeds import generator

_KINDS: tuple[tuple[type[nn.Module], str], ...] = ((nn.Linear, "linear"), (Conv1D, "conv1d"),
                                                  (nn.Embedding, "embedding"))


def _kind(module: nn.Module) -> str | None:
    return next((kind for cls, kind in _KINDS if isinstance(module, cls)), None)


def matrix_uses(space: ParamSpace) -> dict[int, list[tuple[nn.Module, str]]]:
    """``{j: [(module, kind), ...]}`` for every matrix ``j`` of ``space``: the modules that use it.

    ``kind`` is ``"linear"``, ``"conv1d"`` or ``"embedding"``. Raises :class:`ValueError` when a
    matrix of the space is used by no such module (it could not be perturbed through hooks).
    """
    index = {id(p): j for j, p in enumerate(space.params()) if p.ndim == 2}
    uses: dict[int, list[tuple[nn.Module, str]]] = {j: [] for j in index.values()}
    for module in space.model.modules():
        kind = _kind(module)
        if kind is not None and id(module.weight) in index:
            uses[index[id(module.weight)]].append((module, kind))
    unused = [space.names[j] for j, found in uses.items() if not found]
    if unused:
        raise ValueError(f"no nn.Linear, Conv1D or nn.Embedding uses the matrices {unused[:5]}: "
                         f"lls.lowrank cannot perturb them; leave them out of the space")
    return uses


def _layout(space: ParamSpace, rank: int) -> tuple[list[int], list[int]]:
    """The space's matrices ``j`` in order and the sizes ``[r m_j, r n_j, ...]`` of their factors in a draw."""
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    params = space.params()
    matrices = [j for j, p in enumerate(params) if p.ndim == 2]
    return matrices, [n * rank for j in matrices for n in params[j].shape]


def _draws(space: ParamSpace, seed: int, ids: Sequence[int], rank: int) -> torch.Tensor:
    """``(len(ids), sum_j r (m_j + n_j))`` float32: row ``b`` is ONE draw of standard normals from the
    generator ``(seed, ids[b])`` (each distinct id drawn once), on the first matrix's device."""
    matrices, sizes = _layout(space, rank)
    device = space.params()[matrices[0]].device if matrices else torch.device("cpu")
    distinct = list(dict.fromkeys(ids))
    rows = torch.empty(len(distinct), sum(sizes), device=device)
    for row, i in zip(rows, distinct, strict=True):
        torch.randn(row.shape, generator=generator(seed, i, device=device), device=device, out=row)
    if len(distinct) == len(ids):
        return rows
    where = {i: k for k, i in enumerate(distinct)}
    return rows[[where[i] for i in ids]]


def _cut(space: ParamSpace, rows: torch.Tensor, rank: int) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """``{j: (A^T, B^T)}`` of every matrix: views ``(N, r, m)`` and ``(N, r, n)`` of ``rows`` (``(N, total)``),
    cut in the space's order, ``A^T`` then ``B^T`` per matrix (copied only to another dtype or device)."""
    matrices, sizes = _layout(space, rank)
    params, out, start = space.params(), {}, 0
    for k, j in enumerate(matrices):
        p, cut = params[j], []
        for size, side in zip(sizes[2 * k: 2 * k + 2], p.shape, strict=True):
            cut.append(rows[:, start:start + size].view(-1, rank, side).to(p.device, p.dtype))
            start += size
        out[j] = cut[0], cut[1]
    return out


def factors(space: ParamSpace, seed: int, i: int, rank: int) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """``{j: (A, B)}`` of perturbation ``i`` for every matrix ``j`` of ``space`` (stored shape ``(m, n)``):
    ``(m, r)`` and ``(n, r)`` standard normals, in the parameter's dtype and on its device.

    All of them come from ONE draw of ``sum_j r (m_j + n_j)`` normals from the generator ``(seed, i)``
    (on the first matrix's device), cut in the space's order, ``A^T`` (``r x m``, row-major) then
    ``B^T`` per matrix: disjoint pieces of one stream, so matrices and candidates get independent
    factors, and a candidate costs one generator and one ``randn`` call however many matrices the
    model has.
    """
    return {j: (a[0].T, b[0].T) for j, (a, b) in _cut(space, _draws(space, seed, [i], rank), rank).items()}


def perturbation(space: ParamSpace, seed: int, i: int, sigma: float, rank: int) -> torch.Tensor:
    """Perturbation ``i`` as one flat float32 vector ``(D,)`` in ``space``'s layout (tests, small ``D``):
    ``sigma * A B^T / sqrt(r)`` on each matrix, zeros on every other parameter."""
    pieces, drawn = [], factors(space, seed, i, rank)
    for j, shape in enumerate(space.shapes):
        if len(shape) == 2:
            a, b = drawn[j]
            pieces.append((a.float() @ b.float().T).reshape(-1) * (sigma / math.sqrt(rank)))
        else:
            pieces.append(torch.zeros(math.prod(shape)))
    return torch.cat(pieces)


def perturbed_dim(space: ParamSpace) -> int:
    """Number of coordinates a low-rank perturbation moves: the sizes of the space's matrices."""
    return sum(n for n, s in zip(space.sizes, space.shapes, strict=True) if len(s) == 2)


def _rows(out: Any, start: int, stop: int, total: int) -> Any:
    """Rows ``start:stop`` of every tensor in a model output whose first axis has ``total`` rows."""
    if torch.is_tensor(out):
        return out[start:stop] if out.ndim and out.shape[0] == total else out
    if isinstance(out, dict):  # transformers' ModelOutput is an ordered dict
        return type(out)(**{k: _rows(v, start, stop, total) for k, v in out.items()})
    if isinstance(out, (tuple, list)):
        return type(out)(_rows(v, start, stop, total) for v in out)
    return out


def _tiled_forward(model: nn.Module, n: int, args: tuple, kwargs: dict,
                   hooks: _Hooks | None) -> tuple[Any, int]:
    """The model on its inputs tiled ``n`` times along the batch axis; returns ``(output, B)``.

    Every tensor argument whose first axis has the first tensor argument's length ``B`` is
    repeated, candidate-major. ``hooks`` (if any) are on for this pass only. A ``labels`` argument
    is refused: the model's own loss would pool the candidates.
    """
    if "labels" in kwargs:
        raise ValueError("a population pass cannot use the model's own loss (labels=...): compute the "
                         "loss from the logits in batch_loss")
    tensors = [v for v in (*args, *kwargs.values()) if torch.is_tensor(v) and v.ndim]
    if not tensors:
        raise ValueError("the model call has no batched tensor argument to tile")
    rows = tensors[0].shape[0]

    def tile(v):
        if torch.is_tensor(v) and v.ndim and v.shape[0] == rows:
            return v.repeat(n, *([1] * (v.ndim - 1)))
        return v

    args, kwargs = tuple(map(tile, args)), {k: tile(v) for k, v in kwargs.items()}
    if hooks is None:
        return model(*args, **kwargs), rows
    hooks.install(n * rows)
    try:
        return model(*args, **kwargs), rows
    finally:
        hooks.remove()


def _replayed_losses(objective: Objective, n: int, hooks: _Hooks | None = None) -> list[float]:
    """``objective.batch_loss`` of each of ``n`` candidates from one tiled forward pass.

    Candidate 0's evaluation runs the tiled model at each of its model calls; candidates
    ``1 .. n-1`` replay those calls and see their own rows of the recorded outputs (so
    ``batch_loss`` must call the model the same way for every candidate, as it does for a fixed
    batch).
    """
    outputs: list[tuple[Any, int]] = []
    losses = []
    for b in range(n):
        calls = itertools.count()

        def call(*args, b=b, calls=calls, **kwargs):
            c = next(calls)
            if c == len(outputs):
                if b:
                    raise RuntimeError("batch_loss called the model more often for one candidate than for the first")
                outputs.append(_tiled_forward(objective.model, n, args, kwargs, hooks))
            out, rows = outputs[c]
            return _rows(out, b * rows, (b + 1) * rows, n * rows)

        losses.append(float(objective.batch_loss(call, objective.batch)))
    return losses


@torch.no_grad()
def tiled_losses(objective: Objective, n: int) -> np.ndarray:
    """The plain batched forward pass over the same tokens as a population of ``n``: the batch tiled
    ``n`` times, no perturbation. Returns ``(n,)`` copies of the base loss (up to rounding); the
    reference for a population's throughput."""
    return np.asarray(_replayed_losses(objective, n), dtype=float)


def _low(x: torch.Tensor, right_t: torch.Tensor) -> torch.Tensor:
    """``x @ right_t^T``: ``(N, K, n) x (N, r, n) -> (N, K, r)``; for ``r = 1`` a product and a sum
    (torch's batched matmul with one output column is several times slower on a CPU)."""
    if right_t.shape[1] == 1:
        return (x * right_t).sum(-1, keepdim=True)
    return x @ right_t.transpose(1, 2)


def _accumulate(out: torch.Tensor, low: torch.Tensor, left_t: torch.Tensor) -> None:
    """``out += low @ left_t`` in place: ``(N, K, m) += (N, K, r) x (N, r, m)``; for ``r = 1`` one
    fused multiply-add (an outer product through ``baddbmm`` is several times slower on a CPU)."""
    if left_t.shape[1] == 1:
        out.addcmul_(low, left_t)
    else:
        out.baddbmm_(low, left_t)


class _Hooks:
    """Forward hooks adding the low-rank terms of a population of ``(i, sign)`` pairs.

    Holds, for every matrix, the factors ``A^T`` ``(N, r, m)`` and ``B^T`` ``(N, r, n)`` of the
    population (views of one ``(N, total)`` draw, no copy) and the per-candidate scales ``s = sign
    sigma / sqrt(r)``; :meth:`install` puts the hooks on for a pass over ``total = N B`` rows,
    :meth:`remove` takes them off.
    """

    def __init__(self, space: ParamSpace, seed: int, pairs: Sequence[tuple[int, int]], sigma: float,
                 rank: int):
        self.uses = matrix_uses(space)
        self.n, self.total = len(pairs), 0
        self.factors = _cut(space, _draws(space, seed, [i for i, _ in pairs], rank), rank)
        self.scale = torch.tensor([s * sigma / math.sqrt(rank) for _, s in pairs]).view(-1, 1, 1)  # (N, 1, 1)
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    def install(self, total: int) -> None:
        self.total = total
        self.handles = [module.register_forward_hook(self._hook(j, kind))
                        for j, found in self.uses.items() for module, kind in found]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _hook(self, j: int, kind: str) -> Callable:
        a_t, b_t = self.factors[j]  # A^T (N, r, m), B^T (N, r, n)
        n, scale = self.n, self.scale.to(a_t.device, a_t.dtype)

        def hook(module, inputs, output):
            x = inputs[0]
            if kind == "embedding":
                shared = x.shape[0] != self.total  # ids shared by every row: GPT-2's position ids (1, T)
                if shared and x.shape[0] != 1:
                    raise RuntimeError(f"an embedding got ids of shape {tuple(x.shape)} in a pass over "
                                       f"{self.total} rows")
                ids = x.reshape(1, -1).expand(n, -1) if shared else x.reshape(n, -1)  # (N, K)
                low = a_t.gather(2, ids.unsqueeze(1).expand(-1, a_t.shape[1], -1)).transpose(1, 2) * scale  # (N, K, r)
                left_t = b_t
                if shared:
                    delta = torch.zeros(n, ids.shape[1], b_t.shape[2], dtype=output.dtype, device=output.device)
                    _accumulate(delta, low, left_t)
                    return output + delta.view(n, *output.shape[1:]).repeat_interleave(self.total // n, dim=0)
            else:
                right_t, left_t = (b_t, a_t) if kind == "linear" else (a_t, b_t)
                low = _low(x.reshape(n, -1, x.shape[-1]), right_t) * scale             # (N, K, r)
            out = output if output.is_contiguous() else output.contiguous()  # fresh (N K, out): add in place
            _accumulate(out.view(n, -1, out.shape[-1]), low, left_t)
            return out

        return hook


@torch.no_grad()
def population_losses(space: ParamSpace, objective: Objective, pairs: Sequence[tuple[int, int]], sigma: float,
                      seed: int, rank: int = 1) -> np.ndarray:
    """Losses ``(len(pairs),)`` of ``theta0 + sign * sigma * A_i B_i^T / sqrt(r)`` (on every matrix)
    for each ``(i, sign)`` in ``pairs``, in ONE forward pass over ``len(pairs)`` tiled copies of
    ``objective.batch``. The model's weights are never written."""
    return np.asarray(_replayed_losses(objective, len(pairs), _Hooks(space, seed, pairs, sigma, rank)),
                      dtype=float)


def evaluate(space: ParamSpace, objective: Objective, seed: int, pairs: Sequence[tuple[int, int]], sigma: float,
             *, rank: int = 1, batch_size: int | None = None, progress: bool = True,
             desc: str = "low-rank population") -> np.ndarray:
    """Losses ``(len(pairs),)`` of each ``(i, sign)`` in ``pairs``, ``batch_size`` candidates per pass
    (default: all in one pass; lower it when ``N`` tiled batches do not fit in memory)."""
    size = batch_size or max(len(pairs), 1)
    out = []
    bar = tqdm(total=len(pairs), desc=desc, disable=not progress, leave=False)
    for start in range(0, len(pairs), size):
        chunk = pairs[start:start + size]
        out.append(population_losses(space, objective, chunk, sigma, seed, rank))
        bar.update(len(chunk))
    bar.close()
    return np.concatenate(out) if out else np.zeros(0)


def best_of_n(space: ParamSpace, objective: Objective, n: int, sigma: float, seed: int, *, rank: int = 1,
              antithetic: bool = True, batch_size: int | None = None, progress: bool = True) -> SearchResult:
    """Best-of-``n`` with low-rank perturbations (and their negatives when ``antithetic``), evaluated
    as populations of ``batch_size`` candidates per forward pass (default: all ``n`` or ``2n``).

    Returns a :class:`lls.search.SearchResult` as :func:`lls.search.best_of_n` does: ``dim`` is the
    number of coordinates moved (:func:`perturbed_dim`, the space's matrices); ``extra`` holds the
    ``rank``. The model is never written.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    base = float(objective())
    signs = (1, -1) if antithetic else (1,)
    pairs = [(i, s) for i in range(n) for s in signs]
    t0 = time.perf_counter()
    losses = evaluate(space, objective, seed, pairs, sigma, rank=rank, batch_size=batch_size,
                      progress=progress, desc=f"low-rank best-of-{n}, r={rank}, sigma={sigma:.3g}")
    seconds = time.perf_counter() - t0
    return SearchResult(base=base, plus=losses[0::len(signs)], minus=losses[1::2] if antithetic else None,
                        sigma=float(sigma), seed=int(seed), dim=perturbed_dim(space), seconds=seconds,
                        extra={"rank": int(rank)})
