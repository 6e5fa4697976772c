"""One layer map across the model families the book uses: GPT-2, Llama, Qwen2 and OLMo.

Hooks (steering, activation recording) and LoRA need to know where a model keeps its
transformer blocks and which linear layers to adapt. Following the ``steering-vectors``
package, blocks are named by a template (``"transformer.h.{}"`` for GPT-2,
``"model.layers.{}"`` for the others), so every family shares one code path. All functions
accept a plain ``transformers`` model or a ``peft``-wrapped one; for a wrapped model the
template carries the wrapper's prefix (e.g. ``"base_model.model.model.layers.{}"``), so
``model.get_submodule(block_template(model).format(i))`` always works on the model passed.
"""

from __future__ import annotations

from torch import nn

from lls.errors import ConfigError

#: transformers ``config.model_type`` -> family name used throughout ``lls``.
MODEL_TYPES: dict[str, str] = {
    "gpt2": "gpt2",
    "llama": "llama",
    "qwen2": "qwen2",
    "olmo": "olmo",
    "olmo2": "olmo",
}

#: Path of the block list inside the bare (unwrapped) model, per family.
BLOCK_LISTS: dict[str, str] = {
    "gpt2": "transformer.h",
    "llama": "model.layers",
    "qwen2": "model.layers",
    "olmo": "model.layers",
}

#: Default LoRA target modules per family (the paper's choice: attention query/value).
LORA_TARGETS: dict[str, list[str]] = {
    "gpt2": ["c_attn"],
    "llama": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "olmo": ["q_proj", "v_proj"],
}


def base_model(model: nn.Module) -> nn.Module:
    """The underlying ``transformers`` model of a ``peft`` wrapper (or ``model`` itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def family(model: nn.Module) -> str:
    """``"gpt2"``, ``"llama"``, ``"qwen2"`` or ``"olmo"``; :class:`ConfigError` for other models."""
    config = getattr(base_model(model), "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in MODEL_TYPES:
        raise ConfigError(
            f"Model type {model_type!r} is not supported by lls; supported transformers model "
            f"types are {sorted(MODEL_TYPES)} (GPT-2, Llama, Qwen2, OLMo)."
        )
    return MODEL_TYPES[model_type]


def block_template(model: nn.Module) -> str:
    """Template of block names, ``template.format(i)`` = the i-th block's module path in ``model``."""
    inner = base_model(model)
    block_list = inner.get_submodule(BLOCK_LISTS[family(model)])
    for name, module in model.named_modules():
        if module is block_list:
            return name + ".{}"
    raise ConfigError("The model's block list was not found among its modules.")  # pragma: no cover


def blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of ``model``, in order (length :func:`num_layers`)."""
    return list(base_model(model).get_submodule(BLOCK_LISTS[family(model)]))


def num_layers(model: nn.Module) -> int:
    """Number of transformer blocks."""
    return len(blocks(model))


def lora_target_modules(model: nn.Module) -> list[str]:
    """Default LoRA target module names for ``model``'s family (a fresh list)."""
    return list(LORA_TARGETS[family(model)])


def resolve_layer(model: nn.Module, layer: int) -> int:
    """Block index ``layer``, or the middle block (``num_layers // 2``) for ``-1``."""
    n = num_layers(model)
    index = n // 2 if layer == -1 else layer
    if not 0 <= index < n:
        raise ConfigError(f"Layer {layer} does not exist: the model has blocks 0..{n - 1} (-1 = the middle one).")
    return index
