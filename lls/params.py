"""Parameter spaces: a fixed, ordered set of a model's parameters seen as one flat vector.

A :class:`ParamSpace` flattens the chosen parameters of a model into a vector theta of length
``D`` (float32, in the parameters' order), copies such a vector back into the model, and turns
a batch loss into a pure function ``theta -> loss`` through :func:`torch.func.functional_call`,
which is what Hessian-vector products (:mod:`lls.curvature`) need. The same class serves the
full model (chapter 2) and LoRA adapters (chapter 3, :func:`lls.lora.adapter_space`).

Batch losses are written once, as ``batch_loss(call, batch) -> scalar`` where ``call(*args,
**kwargs)`` runs the model: either the model itself (training, :func:`batch_gradients`) or a
functional call with the parameters taken from a vector (:meth:`ParamSpace.loss_closure`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

BatchLoss = Callable[[Callable[..., Any], Any], torch.Tensor]


class ParamSpace:
    """An ordered list of ``model``'s parameters, flattened to one vector of length :attr:`dim`.

    ``names`` are names from ``model.named_parameters()``; ``None`` takes every parameter with
    ``requires_grad`` in ``named_parameters`` order (tied weights appear once).
    """

    def __init__(self, model: nn.Module, names: Sequence[str] | None = None):
        named = dict(model.named_parameters())
        if names is None:
            names = [n for n, p in named.items() if p.requires_grad]
        missing = [n for n in names if n not in named]
        if missing:
            raise KeyError(f"{missing} are not parameters of {type(model).__name__}")
        if len(set(names)) != len(names):
            raise ValueError("parameter names must be distinct")
        self.model = model
        self.names: list[str] = list(names)
        self._params: list[nn.Parameter] = [named[n] for n in self.names]
        self.shapes: list[torch.Size] = [p.shape for p in self._params]
        self.sizes: list[int] = [math.prod(s) for s in self.shapes]
        self.dim: int = sum(self.sizes)

    def __repr__(self) -> str:
        return f"ParamSpace({len(self.names)} tensors, D={self.dim})"

    def params(self) -> list[nn.Parameter]:
        """The parameters themselves, in order (e.g. for an optimizer)."""
        return list(self._params)

    def get(self) -> torch.Tensor:
        """A detached float32 copy of the current parameters, shape ``(D,)``."""
        return torch.cat([p.detach().reshape(-1).float() for p in self._params])

    def grad(self) -> torch.Tensor:
        """The parameters' ``.grad`` flattened to ``(D,)`` float32 (zeros where ``.grad`` is None)."""
        return torch.cat([
            torch.zeros(n) if p.grad is None else p.grad.detach().reshape(-1).float()
            for p, n in zip(self._params, self.sizes, strict=True)
        ])

    def _check(self, vec: torch.Tensor) -> None:
        if vec.shape != (self.dim,):
            raise ValueError(f"expected a vector of shape ({self.dim},), got {tuple(vec.shape)}")

    @torch.no_grad()
    def set_(self, vec: torch.Tensor) -> None:
        """Copy ``vec`` (``(D,)``) into the model's parameters in place."""
        self._check(vec)
        for p, piece in zip(self._params, vec.split(self.sizes), strict=True):
            p.copy_(piece.view(p.shape))

    def to_dict(self, vec: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: view of vec}`` with each parameter's shape (differentiable through ``vec``)."""
        self._check(vec)
        pieces = vec.split(self.sizes)
        return {n: piece.view(s) for n, piece, s in zip(self.names, pieces, self.shapes, strict=True)}

    def loss_closure(self, batch_loss: BatchLoss, batch: Any) -> Callable[[torch.Tensor], torch.Tensor]:
        """``theta -> batch_loss(call, batch)`` with this space's parameters taken from ``theta``.

        ``call(*args, **kwargs)`` is ``functional_call(model, to_dict(theta), args, kwargs)``;
        parameters outside the space keep their current values. The result is a pure function
        of ``theta`` (``(D,)``), usable under :mod:`torch.func` transforms (grad, jvp, vmap).
        """
        model = self.model

        def loss(theta: torch.Tensor) -> torch.Tensor:
            params = self.to_dict(theta)

            def call(*args, **kwargs):
                return functional_call(model, params, args, kwargs, strict=False)

            return batch_loss(call, batch)

        return loss


def batch_gradients(space: ParamSpace, batch_loss: BatchLoss, batches: Iterable[Any]) -> torch.Tensor:
    """One gradient of ``batch_loss(model, batch)`` per batch at the current parameters: ``(n, D)``.

    Gradients are taken with :func:`torch.autograd.grad` with respect to the space's parameters
    only, so no ``.grad`` of the model is touched. Rows are float32. A loop, not
    ``torch.func.vmap``: on the book's small models (batches of a few sequences) vmapping the
    functional gradient over stacked batches was measured no faster (64 batches of 16 sequences
    of the chapter-2 GPT-2: 0.70 s vmapped against 0.66 s looped, one CPU thread) and it needs
    batches of equal shapes.
    """
    params = space.params()
    rows = []
    for batch in batches:
        loss = batch_loss(space.model, batch)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        rows.append(torch.cat([
            p.new_zeros(n, dtype=torch.float32) if g is None else g.reshape(-1).float()
            for p, g, n in zip(params, grads, space.sizes, strict=True)
        ]))
    if not rows:
        return torch.zeros(0, space.dim)
    return torch.stack(rows)
