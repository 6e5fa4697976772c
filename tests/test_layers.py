"""The layer map on all four families, plain and peft-wrapped."""

import pytest
import torch

from lls import layers, models
from lls.errors import ConfigError

FAMILIES = {"tiny-gpt2": "gpt2", "tiny-llama": "llama", "tiny-qwen2": "qwen2", "tiny-olmo": "olmo"}


@pytest.fixture(scope="module", params=list(FAMILIES))
def tiny(request):
    model, _ = models.load(request.param)
    return request.param, model


def test_family_and_blocks(tiny):
    name, model = tiny
    assert layers.family(model) == FAMILIES[name]
    template = layers.block_template(model)
    assert template == ("transformer.h.{}" if FAMILIES[name] == "gpt2" else "model.layers.{}")
    assert layers.num_layers(model) == 2
    for i, block in enumerate(layers.blocks(model)):
        assert model.get_submodule(template.format(i)) is block


def test_lora_targets_exist(tiny):
    name, model = tiny
    targets = layers.lora_target_modules(model)
    assert targets == (["c_attn"] if FAMILIES[name] == "gpt2" else ["q_proj", "v_proj"])
    leaf_names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Module)}
    assert set(targets) <= leaf_names
    targets.append("x")  # a fresh list each call
    assert "x" not in layers.lora_target_modules(model)


def test_peft_wrapped_model(tiny):
    import copy

    import peft

    name, model = tiny
    wrapped = peft.get_peft_model(copy.deepcopy(model),
                                  peft.LoraConfig(r=2, target_modules=layers.lora_target_modules(model)))
    assert layers.family(wrapped) == FAMILIES[name]
    template = layers.block_template(wrapped)
    assert template.startswith("base_model.model.")
    blocks = layers.blocks(wrapped)
    assert len(blocks) == layers.num_layers(wrapped) == 2
    for i, block in enumerate(blocks):
        assert wrapped.get_submodule(template.format(i)) is block


def test_unsupported_family():
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64, vocab_size=100))
    with pytest.raises(ConfigError, match="bert"):
        layers.family(bert)
