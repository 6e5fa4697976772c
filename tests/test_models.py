"""Every loader path offline: tiny random families, synthetic GPT-2, hub path from a local
folder, the offline error, the SmolLM2 cache check, and (slow) the real SmolLM2 conversion."""

import json
import time

import pytest
import torch

from lls import layers, models, packaged
from lls.errors import ConfigError, MissingModelError

TINY = ["tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-olmo"]


@pytest.mark.parametrize("name", TINY)
def test_tiny_models(name):
    model, tokenizer = models.load(name)
    assert not model.training
    assert tokenizer.pad_token is not None and model.config.pad_token_id == tokenizer.pad_token_id
    assert model.config.vocab_size == len(tokenizer) == 50257
    assert layers.num_layers(model) == 2
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    batch = tokenizer(["The cat sat.", "Hi"], return_tensors="pt", padding=True)
    logits = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], 50257) and torch.isfinite(logits).all()


def test_tiny_build_takes_seconds():
    models.load("tiny-olmo")  # imports and the tokenizer folder are one-off costs
    start = time.perf_counter()
    models.load("tiny-olmo")
    assert time.perf_counter() - start < 5  # well under a second on an idle machine


def test_tiny_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, _ = models.load("tiny-llama", seed=1)
    after = torch.rand(3)
    b, _ = models.load("tiny-llama", seed=1)
    c, _ = models.load("tiny-llama", seed=2)
    assert torch.equal(after, expected)
    wa, wb, wc = (m.model.layers[0].self_attn.q_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_dtype_and_overrides():
    model, _ = models.load("tiny-qwen2", dtype=torch.float64, num_hidden_layers=3)
    assert layers.num_layers(model) == 3
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_synthetic_gpt2():
    model, tokenizer = models.load("synthetic-gpt2", n_layer=3, n_embd=16, vocab_size=20)
    assert tokenizer is None and layers.family(model) == "gpt2" and layers.num_layers(model) == 3
    assert model(torch.randint(0, 20, (2, 5))).logits.shape == (2, 5, 20)
    with pytest.raises(ConfigError, match="n_lyer"):
        models.load("synthetic-gpt2", n_lyer=3)


def test_unknown_name():
    with pytest.raises(ConfigError, match="smollm2-135m"):
        models.load("gpt-5")


def test_registry_lists_all_names():
    assert set(models.MODEL_NAMES) >= {"smollm2-135m", "distilgpt2", "gpt2", "qwen2.5-0.5b", "olmo",
                                        "synthetic-gpt2", *TINY}


def test_hub_path_from_local_folder(tmp_path):
    """The hub code path (AutoConfig check, safetensors only) on a locally saved tiny model."""
    model, tokenizer = models.load("tiny-qwen2")
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    loaded, tok = models.load(str(tmp_path / "m"))
    assert layers.family(loaded) == "qwen2"
    ids = tok("hello", return_tensors="pt")["input_ids"]
    assert torch.allclose(loaded(ids).logits, model(ids).logits)


#: A CPU device map with one block offloaded to disk: accelerate dispatches it with hooks, the same
#: path as a checkpoint spread over several GPUs.
CPU_DISK_MAP = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}


@pytest.mark.parametrize("device_map", ["auto", CPU_DISK_MAP], ids=["auto", "cpu+disk"])
def test_device_map_passes_through_to_accelerate(tmp_path, device_map):
    """A checkpoint folder placed by accelerate gives the original logits and is not moved afterwards."""
    model, tokenizer = models.load("tiny-llama")
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    placed, tok = models.load(str(tmp_path / "m"), device_map=device_map, offload_folder=str(tmp_path / "off"))
    if device_map == "auto":  # no GPU here: accelerate puts everything on the CPU
        assert all(p.device.type == "cpu" for p in placed.parameters())
    else:
        assert placed.hf_device_map == CPU_DISK_MAP
        assert placed.model.layers[1].self_attn.q_proj.weight.device.type == "meta"  # offloaded, left so
    assert not placed.training
    ids = tok("hello there", return_tensors="pt")["input_ids"]
    assert torch.equal(placed(ids).logits, model(ids).logits)


def test_device_map_is_refused_where_it_cannot_apply():
    with pytest.raises(ConfigError, match="device_map"):
        models.load("tiny-llama", device_map="auto")
    with pytest.raises(ConfigError, match="device_map"):
        models.load("owner/model", device="cpu", device_map="auto")


def test_unsupported_architecture(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path / "bert")
    with pytest.raises(ConfigError, match="'bert'"):
        models.load(str(tmp_path / "bert"))


@pytest.mark.parametrize("name", ["qwen2.5-0.5b", "olmo"])
def test_offline_hub_model_fails_fast_and_clearly(name, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(MissingModelError) as info:
        models.load(name)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert models.HUB_MODELS[name] in message and str(tmp_path) in message
    assert f"hf download {models.HUB_MODELS[name]}" in message


def test_hub_reachable_is_bounded(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert models.hub_reachable() is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    start = time.perf_counter()
    models.hub_reachable(timeout=0.5)  # True or False, but never longer than the timeout
    assert time.perf_counter() - start < 1.5


def test_cached_copy_is_verified(tmp_path, capsys):
    """The SmolLM2 cache check on a stand-in folder: a right copy loads, a wrong one is refused."""
    model, tokenizer = models.load("tiny-llama")
    folder = tmp_path / "copy"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    probe = packaged.probe_logits(model, tokenizer).tolist()
    (folder / packaged.PROBE_FILE).write_text(json.dumps({"logits": probe}))
    assert packaged.verified(folder) is not None
    (folder / packaged.PROBE_FILE).write_text(json.dumps({"logits": [p + 0.1 for p in probe]}))
    assert packaged.verified(folder) is None
    assert "rebuilding" in capsys.readouterr().out
    (folder / "model.safetensors").write_bytes(b"truncated")
    assert packaged.verified(folder) is None


@pytest.mark.slow
def test_smollm2_real(tmp_path, monkeypatch):
    """The real path, cold: GGUF -> safetensors cache -> verified warm load (~30-80 s)."""
    monkeypatch.setenv("LLS_CACHE_DIR", str(tmp_path))
    model, tokenizer = models.load("smollm2-135m")
    assert (tmp_path / "models" / packaged.smollm2_dir().name / "model.safetensors").exists()
    assert layers.family(model) == "llama" and layers.num_layers(model) == 30
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tokenizer.pad_token is not None
    start = time.perf_counter()
    models.load("smollm2-135m")
    assert time.perf_counter() - start < 10  # about 1-2 s unloaded
    ids = tokenizer("The capital of France is", return_tensors="pt")
    assert tokenizer.decode(model(**ids).logits[0, -1].argmax()) == " Paris"
