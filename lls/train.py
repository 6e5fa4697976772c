"""A training loop that records the trajectory it takes, within a stated memory budget.

:func:`train` optimises the parameters of a :class:`lls.params.ParamSpace` in place and returns
a :class:`Trajectory`: every update of the first ``record_first`` steps (the *trajectory prefix*
of chapters 2 and 3), parameter checkpoints every ``checkpoint_every`` steps, the gradient at
chosen steps, and the loss of every step. It never keeps every D-vector of a long run: the
memory it holds is ``(record_first + #checkpoints + #gradient_steps + 2) * D * 4`` bytes, which
:attr:`Trajectory.nbytes` reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from lls.params import BatchLoss, ParamSpace

OPTIMIZERS = ("adam", "sgd")


@dataclass
class Trajectory:
    """What one training run recorded. All vectors are float32 of length D.

    ``start``/``end``: theta before the first and after the last step; ``updates`` ``(K, D)``:
    ``theta_{t+1} - theta_t`` for t < K (K = ``record_first``, capped at the number of steps);
    ``gradients[t]``: the gradient used at step t (at theta_t, on step t's batch);
    ``checkpoints[t]``: theta_t (after t steps) for t = 0, c, 2c, ... and the last step;
    ``losses[t]``: the training loss at step t (before its update).
    """

    start: torch.Tensor
    end: torch.Tensor
    updates: torch.Tensor
    gradients: dict[int, torch.Tensor] = field(default_factory=dict)
    checkpoints: dict[int, torch.Tensor] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)

    def displacement(self) -> torch.Tensor:
        """``end - start``, shape ``(D,)``."""
        return self.end - self.start

    @property
    def nbytes(self) -> int:
        """Bytes held by the recorded vectors (the run's memory budget)."""
        tensors = [self.start, self.end, self.updates, *self.gradients.values(), *self.checkpoints.values()]
        return sum(t.numel() * t.element_size() for t in tensors)


def _batch_source(batches: Iterable[Any] | Callable[[int], Any]) -> Callable[[int], Any]:
    if callable(batches):
        return batches
    iterator: Iterator[Any] = iter(batches)
    return lambda step: next(iterator)


def make_optimizer(params: list[torch.nn.Parameter], name: str, lr: float) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` or plain ``torch.optim.SGD`` (no momentum) with learning rate ``lr``."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"optimizer {name!r} is not one of {OPTIMIZERS}")


def _steps(steps: int, progress: bool) -> Iterable[int]:
    """``range(steps)``, with a progress bar when ``progress``."""
    if not progress:
        return range(steps)
    from tqdm.auto import tqdm

    return tqdm(range(steps), desc="train", leave=False)


def _set_grads(params: list[torch.nn.Parameter], grads: tuple[torch.Tensor | None, ...]) -> None:
    """Put ``grads`` in ``.grad`` (zeros for parameters the loss does not reach)."""
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.zeros_like(p) if g is None else g


def train(
    space: ParamSpace,
    batch_loss: BatchLoss,
    batches: Iterable[Any] | Callable[[int], Any],
    steps: int,
    *,
    optimizer: str = "adam",
    lr: float,
    record_first: int = 0,
    checkpoint_every: int | None = None,
    gradient_steps: Iterable[int] = (),
    progress: bool = True,
    lr_factor: Callable[[int], float] | None = None,
) -> Trajectory:
    """Train ``space.model`` in place for ``steps`` steps on ``batch_loss(model, batch)``.

    ``batches`` is an iterable of batches or a function ``step -> batch``. Only the space's
    parameters move (a fresh optimizer of kind ``optimizer``); the model's train/eval mode is
    left as it is. ``lr_factor(step)``, if given, multiplies ``lr`` at each step (a schedule).
    See :class:`Trajectory` for what is recorded.
    """
    if steps < 0 or record_first < 0:
        raise ValueError("steps and record_first must be >= 0")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError("checkpoint_every must be >= 1 or None")
    params = space.params()
    opt = make_optimizer(params, optimizer, lr)
    batch_at = _batch_source(batches)
    gradient_steps = set(int(s) for s in gradient_steps)
    record = min(record_first, steps)
    start = space.get()
    traj = Trajectory(start=start, end=start, updates=torch.zeros(record, space.dim))
    if checkpoint_every is not None:
        traj.checkpoints[0] = start.clone()
    before = start
    for step in _steps(steps, progress):
        loss = batch_loss(space.model, batch_at(step))
        _set_grads(params, torch.autograd.grad(loss, params, allow_unused=True))
        if step in gradient_steps:
            traj.gradients[step] = space.grad()
        traj.losses.append(float(loss.detach()))
        if lr_factor is not None:
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor(step)
        opt.step()
        due = checkpoint_every is not None and (step + 1) % checkpoint_every == 0
        if step < record or due:
            after = space.get()
            if step < record:
                traj.updates[step] = after - before
                before = after
            if due:
                traj.checkpoints[step + 1] = after
    for p in params:
        p.grad = None
    traj.end = space.get()
    if checkpoint_every is not None:
        traj.checkpoints[steps] = traj.end.clone()
    return traj
