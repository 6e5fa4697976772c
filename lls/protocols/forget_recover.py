"""The forget -> recover protocol of chapters 2, 3 and 4, written once.

From a point where task A is known, train on other data until A is *forgotten* (theta_f), take
whatever must be measured *before* recovery (static bases, gradients at theta_f), then train on
A again, *recovering* it (theta_r). The recovery displacement is ``Delta = theta_r - theta_f``.
Chapter 2 runs it in the full weight space of a synthetic transformer, chapter 3 in a LoRA
adapter's space, and chapter 4 searches around chapter 2's theta_f.

The protocol itself holds no model, task or loss: a :class:`lls.params.ParamSpace`, a batch
loss and two batch sources come in, :class:`Trajectory` records come out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

from lls.params import BatchLoss, ParamSpace
from lls.train import Trajectory, train

Measured = TypeVar("Measured")
Batches = Iterable[Any] | Callable[[int], Any]


@dataclass(frozen=True)
class Phases:
    """How long and how fast each phase trains, and what the recovery records."""

    forget_steps: int
    """steps on the other data (theta -> theta_f)"""
    recover_steps: int
    """steps on task A (theta_f -> theta_r), T"""
    lr: float
    """learning rate of both phases"""
    record_first: int = 0
    """recovery updates kept (the trajectory prefix, at most ``recover_steps``)"""
    checkpoint_every: int | None = None
    """recovery steps between parameter checkpoints (drift); ``None`` = none"""
    optimizer: str = "adam"
    """``adam`` or ``sgd`` (a fresh optimizer per phase)"""


def forget(space: ParamSpace, batch_loss: BatchLoss, batches: Batches, phases: Phases,
           progress: bool = True) -> Trajectory:
    """Train ``space`` in place on the other data for ``phases.forget_steps``; return the record."""
    return train(space, batch_loss, batches, phases.forget_steps, optimizer=phases.optimizer, lr=phases.lr,
                 progress=progress)


def recover(space: ParamSpace, batch_loss: BatchLoss, batches: Batches, phases: Phases,
            progress: bool = True) -> Trajectory:
    """Train ``space`` in place on task A for ``phases.recover_steps``, recording the prefix and checkpoints."""
    return train(space, batch_loss, batches, phases.recover_steps, optimizer=phases.optimizer, lr=phases.lr,
                 record_first=phases.record_first, checkpoint_every=phases.checkpoint_every, progress=progress)


@dataclass
class ForgetRecoverRun(Generic[Measured]):
    """One pass of the protocol. Vectors are float32 of length D.

    ``forgetting``/``recovery``: the two phases' records; ``before_recovery``: what the caller
    measured at theta_f before the first recovery step.
    """

    forgetting: Trajectory
    recovery: Trajectory
    before_recovery: Measured

    @property
    def theta_f(self) -> torch.Tensor:
        """The forgotten point, (D,)."""
        return self.recovery.start

    def displacement(self) -> torch.Tensor:
        """``Delta = theta_r - theta_f``, (D,)."""
        return self.recovery.displacement()


def forget_then_recover(space: ParamSpace, batch_loss: BatchLoss, *, forget_data: Batches, recover_data: Batches,
                        phases: Phases, before_recovery: Callable[[ParamSpace], Measured] = lambda space: None,
                        progress: bool = True) -> ForgetRecoverRun[Measured]:
    """Forget, call ``before_recovery(space)`` at theta_f, recover; ``space`` ends at theta_r.

    ``before_recovery`` may move the parameters (e.g. to take gradients elsewhere); they are put
    back at theta_f before recovery starts, so nothing it does leaks into the recovery.
    """
    forgetting = forget(space, batch_loss, forget_data, phases, progress)
    measured = before_recovery(space)
    space.set_(forgetting.end)
    recovery = recover(space, batch_loss, recover_data, phases, progress)
    return ForgetRecoverRun(forgetting, recovery, measured)
