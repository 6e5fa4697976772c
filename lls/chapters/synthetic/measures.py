"""Chapter 2's measurements at theta_f and along recovery (uncached helpers of :mod:`.protocol`).

Vectors are float32 tensors of length ``D``; stacks of vectors ``(n, D)`` hold one vector per row
(the conventions of :mod:`lls.subspace`). Captures are fractions of ``‖Δ‖²``; ranks dimensions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from lls import subspace
from lls.chapters.synthetic.config import SGD_LRS, SGD_MATCH, Config
from lls.params import ParamSpace, batch_gradients
from lls.protocols.forget_recover import recover
from lls.synthetic import batch_loss, exact_match

STRUCTURED_BASELINES = ("shuffled targets", "other tasks", "centred")
"""C1's baselines with the gradients' own structure, each ``n_grad_batches`` rows at theta_f: task-A
batches whose answers are permuted across the batch's sequences; batches of the other tasks; the
task-A batch gradients minus their mean."""


def unstructured_like(rows: Tensor, generator: torch.Generator) -> Tensor:
    """Gaussian rows with the same norms as ``rows`` (n, D) (the no-structure baseline for spectra)."""
    gauss = torch.randn(rows.shape, generator=generator)
    return gauss * (rows.norm(dim=1, keepdim=True) / gauss.norm(dim=1, keepdim=True))


def rank_curve(rows: Tensor, ns: list[int]) -> np.ndarray:
    """Effective rank (90 % energy) of the first ``n`` rows of ``rows`` (n_max, D), for each n in ``ns``."""
    return np.array([subspace.effective_rank(rows[:n]) for n in ns])


def shuffled_targets(batch: Tensor, length: int, generator: torch.Generator) -> Tensor:
    """``batch`` (B, 2L+2) with its answer rows (the last ``length`` tokens) permuted across sequences,
    so that inputs and targets no longer match."""
    out = batch.clone()
    out[:, -length:] = batch[torch.randperm(len(batch), generator=generator), -length:]
    return out


def structured_baselines(space: ParamSpace, probe: list[Tensor], other: list[Tensor], grads: Tensor, length: int,
                         generator: torch.Generator) -> dict[str, Tensor]:
    """:data:`STRUCTURED_BASELINES` at the space's point, each (n, D): gradients of the ``probe``
    batches with shuffled targets, of the ``other`` tasks' batches, and the centred ``grads`` (n, D)."""
    shuffled = [shuffled_targets(b, length, generator) for b in probe]
    return {"shuffled targets": batch_gradients(space, batch_loss, shuffled),
            "other tasks": batch_gradients(space, batch_loss, other),
            "centred": grads - grads.mean(0, keepdim=True)}


def prefix_parts(updates: Tensor, delta: Tensor) -> dict[str, float]:
    """The prefix's own share and what its span holds of the rest: ``‖Σ_{s<k} u_s‖² / ‖Δ‖²`` ("share")
    and the capture of the remaining displacement ``Δ - Σ_{s<k} u_s = θ_r - θ_k`` by the span of the
    ``k`` updates ``updates`` (k, D) ("remaining capture")."""
    moved = updates.sum(0)
    rest = delta - moved
    share = float(moved.pow(2).sum() / delta.pow(2).sum())
    rest_capture = subspace.capture(subspace.orthonormal_basis(updates), rest) if rest.norm() > 0 else 1.0
    return {"share": share, "remaining capture": rest_capture}


def capture_by_horizon(updates: Tensor, checkpoints: dict[int, Tensor], fraction: float) -> dict[int, tuple[int, float]]:
    """C4 at ``k`` a fixed ``fraction`` of the horizon ``T``: for T = steps/4, steps/2 and steps (the
    checkpoints nearest), the capture of ``θ_T - θ_f`` by the first ``k = round(fraction * T)`` updates
    (at least 1, at most those recorded); ``{T: (k, capture)}``."""
    steps = sorted(checkpoints)
    out = {}
    for target in (steps[-1] / 4, steps[-1] / 2, steps[-1]):
        T = min(steps[1:], key=lambda s: abs(s - target))
        k = int(min(max(round(fraction * T), 1), len(updates)))
        out[T] = (k, float(subspace.prefix_capture(updates, checkpoints[T] - checkpoints[0], [k])[0]))
    return out


def captures(bases: dict[str, Tensor], fixed: dict[str, Tensor], delta: Tensor, updates: Tensor,
             ks: list[int]) -> dict[str, np.ndarray]:
    """Capture of ``delta`` (D,) for each k in ``ks`` by the trajectory prefix ``updates`` (K, D), by the
    first k columns of every static basis of ``bases`` (name -> (D, r); ``nan`` where r < k), and by
    the whole span of every basis of ``fixed`` (the same at every k, e.g. one task vector)."""
    return {"trajectory prefix": subspace.prefix_capture(updates, delta, ks),
            **{name: subspace.capture_curve(basis, delta, ks) for name, basis in bases.items()},
            **{name: np.full(len(ks), subspace.capture(basis, delta)) for name, basis in fixed.items()}}


def sgd_arm(cfg: Config, space: ParamSpace, batches: Callable[[int], Tensor], test: Tensor, adam_accuracy: float,
            bases: dict[str, Tensor], fixed: dict[str, Tensor], ks: list[int]) -> dict:
    """The recovery again from the space's point (theta_f), with plain SGD at the rate chosen by the rule
    of :data:`SGD_LRS`: the smallest rate whose task-A accuracy on ``test`` after ``recover_steps``
    is at least ``adam_accuracy - SGD_MATCH`` (else the most accurate rate). Returns the rate, the
    accuracy of every rate tried, the captures of the chosen run's Δ by its prefix and by ``bases``,
    and its :func:`prefix_parts`. The space ends back at theta_f."""
    theta_f = space.get()
    phases = dataclasses.replace(cfg.training().phases(cfg.recover_steps, cfg.k_max), optimizer="sgd")
    tried, runs = {}, {}
    for lr in SGD_LRS:
        space.set_(theta_f)
        runs[lr] = recover(space, batch_loss, batches, dataclasses.replace(phases, lr=lr), progress=False)
        space.set_(runs[lr].end)
        tried[lr] = exact_match(space.model, test)
        if tried[lr] >= adam_accuracy - SGD_MATCH:
            break
    lr = next((r for r in tried if tried[r] >= adam_accuracy - SGD_MATCH), max(tried, key=tried.get))
    run = runs[lr]
    space.set_(theta_f)
    delta = run.displacement()
    return {"lr": lr, "tried": tried, "accuracy": tried[lr], "capture": captures(bases, fixed, delta, run.updates, ks),
            **prefix_parts(run.updates, delta)}


def chosen_rate_rule() -> str:
    """The SGD arm's rate rule in words (for notes and prose)."""
    return (f"the smallest of {', '.join(f'{r:g}' for r in SGD_LRS)} whose task-A accuracy after the recovery is at "
            f"least Adam's minus {SGD_MATCH:g} (else the most accurate)")

