"""LoRA adapters through peft, flattened structurally into one parameter vector.

The adapter of a peft model is a set of :class:`peft.tuners.lora.LoraLayer` modules, each with a
down-projection ``A`` (r, in) and an up-projection ``B`` (out, r). Here they are found by module
type (never by matching ``"lora_"`` in parameter names), ordered by module name in *natural*
order (``layers.2`` before ``layers.10``, so the order is the model's and the adapter state
dict's), ``A`` before ``B`` within a module. :func:`adapter_space` turns that list into a
:class:`lls.params.ParamSpace`, whose vectors (length D = sum of r*(in+out) over the adapted
modules) are what chapter 3 trains, records and projects.

The same adapter seen as an *effective weight change* is ``dW = scaling * B @ A`` per adapted
module (:func:`delta_weights`, length D_W = sum of in*out); :func:`delta_gram` gives inner
products of such weight changes from the low-rank factors, without ever forming them.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers.pytorch_utils import Conv1D

from lls import subspace


def add_lora(model: torch.nn.Module, r: int = 8, alpha: int = 16, targets: Sequence[str] | None = None,
             dropout: float = 0.0) -> PeftModel:
    """Wrap ``model`` (in place) with a fresh LoRA adapter named ``"default"``; return the PeftModel.

    ``targets`` are module-name suffixes (default :func:`lls.layers.lora_target_modules`: GPT-2's
    ``c_attn``, Llama/Qwen2/OLMo's ``q_proj``/``v_proj``). GPT-2's ``Conv1D`` layers store their
    weight transposed; ``fan_in_fan_out`` is set from the module type. ``A`` is initialised
    from torch's global generator (seed it before), ``B`` is zero, so ``dW = 0`` at the start.
    Only the adapter requires gradients afterwards.
    """
    if targets is None:
        from lls.layers import lora_target_modules

        targets = lora_target_modules(model)
    targets = list(targets)
    matched = [m for n, m in model.named_modules() if n.split(".")[-1] in targets]
    if not matched:
        raise ValueError(f"no module of {type(model).__name__} is named one of {targets}")
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=dropout,
                        fan_in_fan_out=isinstance(matched[0], Conv1D), bias="none",
                        task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # transformers 5 deprecation noise from inside peft
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def lora_layers(peft_model: torch.nn.Module) -> list[tuple[str, LoraLayer]]:
    """The adapted modules ``(name, module)``, found by type, in natural order of their names."""
    found = [(n, m) for n, m in peft_model.named_modules() if isinstance(m, LoraLayer)]
    if not found:
        raise ValueError(f"{type(peft_model).__name__} holds no LoRA layer; wrap it with add_lora first")
    return sorted(found, key=lambda item: _natural_key(item[0]))


def _adapter(peft_model: torch.nn.Module) -> str:
    names = getattr(peft_model, "active_adapters", None) or ["default"]
    if len(names) != 1:
        raise ValueError(f"expected exactly one active adapter, found {names}")
    return names[0]


def adapter_parameter_names(peft_model: torch.nn.Module) -> list[str]:
    """Names (as in ``named_parameters``) of the adapter's A and B matrices, in flattening order.

    Raises ``ValueError`` for adapters this module does not flatten (embedding LoRA, DoRA,
    LoRA biases): their extra parameters would silently fall out of the vector otherwise.
    """
    adapter = _adapter(peft_model)
    names = []
    for name, layer in lora_layers(peft_model):
        if adapter not in layer.lora_A:
            raise ValueError(f"LoRA layer {name} has no linear adapter {adapter!r} "
                             "(embedding LoRA is not supported)")
        if layer.use_dora.get(adapter) or layer.lora_A[adapter].bias is not None \
                or layer.lora_B[adapter].bias is not None:
            raise ValueError(f"LoRA layer {name} uses DoRA or a LoRA bias, which are not supported")
        names += [f"{name}.lora_A.{adapter}.weight", f"{name}.lora_B.{adapter}.weight"]
    return names


def adapter_space(peft_model: torch.nn.Module):
    """A :class:`lls.params.ParamSpace` over the adapter only (A then B of each module, in order)."""
    from lls.params import ParamSpace

    return ParamSpace(peft_model, adapter_parameter_names(peft_model))


def _factors(peft_model: torch.nn.Module, vec: torch.Tensor):
    """Yield ``(A (r,in), B (out,r), scaling, fan_in_fan_out)`` per module, as views of ``vec``."""
    adapter = _adapter(peft_model)
    offset = 0
    for _, layer in lora_layers(peft_model):
        factors = []
        for part in (layer.lora_A[adapter].weight, layer.lora_B[adapter].weight):
            factors.append(vec[..., offset:offset + part.numel()].reshape(*vec.shape[:-1], *part.shape))
            offset += part.numel()
        yield factors[0], factors[1], layer.scaling[adapter], layer.fan_in_fan_out
    if offset != vec.shape[-1]:
        raise ValueError(f"adapter vector has length {vec.shape[-1]}, the adapter has {offset} parameters")


def delta_weights(peft_model: torch.nn.Module, vec: torch.Tensor) -> torch.Tensor:
    """Flattened effective weight change of adapter vector ``vec`` (D,): (D_W,), differentiable.

    Per adapted module (same order as the adapter vector) ``scaling * B @ A``, transposed for
    GPT-2's Conv1D, i.e. exactly what peft adds to the base weight when it merges the adapter.
    """
    parts = []
    for a, b, scaling, fan_in_fan_out in _factors(peft_model, vec):
        dw = scaling * (b @ a)
        parts.append((dw.T if fan_in_fan_out else dw).reshape(-1))
    return torch.cat(parts)


def delta_dim(peft_model: torch.nn.Module) -> int:
    """D_W: the length of :func:`delta_weights`'s vectors (sum of in*out over adapted modules)."""
    adapter = _adapter(peft_model)
    return sum(layer.lora_A[adapter].in_features * layer.lora_B[adapter].out_features
               for _, layer in lora_layers(peft_model))


def _lowrank_gram(terms) -> torch.Tensor:
    """Gram (n, n) of per-module products ``s * left_i @ right_i`` summed over modules, from the factors.

    ``terms`` yields ``(left (n, out, q), right (n, q, in), s)`` per module; entry (i, j) is
    ``s^2 * sum((L_i^T L_j) * (R_i R_j^T))``, O(n^2 q^2 (in+out)) per module, in float64.
    """
    gram = None
    for left, right, scaling in terms:
        n, q = right.shape[0], right.shape[1]
        rr = right.reshape(n * q, -1) @ right.reshape(n * q, -1).T                 # (n q, n q)
        ll = left.transpose(1, 2).reshape(n * q, -1) @ left.transpose(1, 2).reshape(n * q, -1).T
        part = scaling**2 * (rr * ll).reshape(n, q, n, q).sum(dim=(1, 3))
        gram = part if gram is None else gram + part
    return gram


def delta_gram(peft_model: torch.nn.Module, vecs: torch.Tensor) -> torch.Tensor:
    """Gram matrix (n, n) of the weight changes of adapter vectors ``vecs`` (n, D), in float64.

    Entry (i, j) is ``<delta_weights(vecs[i]), delta_weights(vecs[j])>``, computed per module as
    ``s^2 * sum((B_i^T B_j) * (A_i A_j^T))`` from the rank-r factors: O(n^2 r^2 (in+out)) time and
    no D_W-sized vector, so a hundred weight-change vectors of a 135M model cost seconds.
    """
    vecs = vecs.detach().to(torch.float64)
    return _lowrank_gram((b, a, scaling) for a, b, scaling, _ in _factors(peft_model, vecs))


def tangent_gram(peft_model: torch.nn.Module, points: torch.Tensor, tangents: torch.Tensor) -> torch.Tensor:
    """Gram (n, n) of weight-change *tangents*: the first-order change of dW at adapter point ``points[i]``
    along ``tangents[i]`` (both (n, D); ``points`` may be an expanded view), i.e. ``s (dB A + B dA) = s [dB, B] @ [A; dA]`` per module.

    A gradient of the adapter mapped this way is invariant to how the adapter is written
    (``A -> c A, B -> B / c`` changes adapter coordinates, not dW); float64 per module, from the factors only.
    """
    points, tangents = points.detach(), tangents.detach()
    return _lowrank_gram((torch.cat([db, b], dim=2).double(), torch.cat([a, da], dim=1).double(), scaling)
                         for (a, b, scaling, _), (da, db, _, _) in zip(_factors(peft_model, points),
                                                                       _factors(peft_model, tangents), strict=True))


def gram_overlap(gram: torch.Tensor, rows_u: list[int], rows_v: list[int], k: int) -> float:
    """:func:`lls.subspace.overlap` of the top-``k`` subspaces of two sets of vectors known only through
    their Gram matrix ``gram`` (N, N): the vectors indexed by ``rows_u`` and by ``rows_v``.

    The top-k right singular vectors of rows X are ``X^T W S^-1`` (W, S^2 from the Gram block), so
    the overlap is ``|C_u^T G_uv C_v|_F^2 / k`` with ``C = W S^-1``; nothing of length D is formed.
    """
    def coefficients(rows: list[int]) -> torch.Tensor:
        evals, evecs = torch.linalg.eigh(gram[rows][:, rows].to(torch.float64))
        evals, evecs = evals.flip(0)[:k], evecs.flip(1)[:, :k]
        return evecs / evals.clamp_min(evals[0] * 1e-12).sqrt()

    m = coefficients(rows_u).T @ gram[rows_u][:, rows_v].to(torch.float64) @ coefficients(rows_v)
    return float(m.pow(2).sum() / k)


def weight_change_captures(peft_model, recovered, theta_a: torch.Tensor, k_max: int) -> dict:
    """Prefix and task-vector capture of Delta_W = dW(theta_r) - dW(theta_f), from Gram matrices.

    ``recovered`` has ``start``, ``end`` (D,) and ``updates`` (>= k_max, D). States theta_0..theta_K
    of the recovery (start + cumulative updates), its end and theta_A are mapped to weight changes
    only through their inner products (:func:`lls.lora.delta_gram`). Returns ``prefix`` (k_max,)
    and ``task_vector`` (a fraction).
    """
    states = torch.cat([recovered.start[None], recovered.start + recovered.updates.cumsum(0),
                        recovered.end[None], theta_a[None]])
    m = delta_gram(peft_model, states)             # (K+3, K+3): <dW_i, dW_j>
    k, end, a = k_max, k_max + 1, k_max + 2
    diff = torch.zeros(k + 1, states.shape[0], dtype=torch.float64)   # rows: updates, then Delta_W
    idx = torch.arange(k)
    diff[idx, idx + 1], diff[idx, idx] = 1.0, -1.0
    diff[k, end], diff[k, 0] = 1.0, -1.0
    g = diff @ m @ diff.T                                 # Gram of [updates; Delta_W]
    norm2 = float(g[k, k])
    prefix = subspace.gram_prefix_capture(g[:k, :k], g[:k, k], norm2, range(1, k + 1))
    cross_a = float(diff[k] @ m[:, a])                    # <Delta_W, dW(theta_A)> (dW(theta_0) = 0)
    return {"prefix": prefix, "task_vector": cross_a**2 / (float(m[a, a]) * norm2)}
