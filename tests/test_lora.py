"""lls.lora: structural flattening of peft LoRA adapters and their effective weight changes."""

import copy

import pytest
import torch
from peft import get_peft_model_state_dict
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from lls import lora

TINY = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=32)


def tiny(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=64, bos_token_id=0, eos_token_id=0, n_embd=16, n_layer=3, n_head=2, n_positions=32))
    elif family == "llama":  # 12 layers: natural order (2 before 10) differs from string order
        model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=12, **TINY))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(num_hidden_layers=2, **TINY))
    return model.eval()


TARGETS = {"gpt2": ["c_attn"], "llama": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"]}


def flat(model) -> torch.Tensor:
    params = dict(model.named_parameters())
    return torch.cat([params[n].detach().reshape(-1) for n in lora.adapter_parameter_names(model)])


def wrapped(family: str, r: int = 4):
    model = lora.add_lora(tiny(family), r=r, alpha=8, targets=TARGETS[family])
    with torch.no_grad():  # B is zero at init; give it values so that dW != 0
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("family", ["gpt2", "llama", "qwen2"])
def test_order_matches_adapter_state_dict(family):
    model = wrapped(family)
    names = lora.adapter_parameter_names(model)
    state = list(get_peft_model_state_dict(model))
    assert [n.replace(".default", "") for n in names] == state
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(names) == sorted(trainable)


@pytest.mark.parametrize("family", ["gpt2", "llama", "qwen2"])
def test_flatten_unflatten_is_exact(family):
    model = wrapped(family)
    space = lora.adapter_space(model)
    params = dict(model.named_parameters())
    flat = space.get()
    assert flat.shape == (sum(params[n].numel() for n in lora.adapter_parameter_names(model)),)
    offset = 0  # the vector is the parameters, in order, back to back
    for name in lora.adapter_parameter_names(model):
        numel = params[name].numel()
        assert torch.equal(flat[offset:offset + numel], params[name].detach().reshape(-1))
        offset += numel
    vec = torch.randn_like(flat)
    space.set_(vec)
    assert torch.equal(space.get(), vec)
    space.set_(flat)
    assert torch.equal(space.get(), flat)


@pytest.mark.parametrize("family", ["gpt2", "llama", "qwen2"])
def test_delta_weights_match_peft_merge(family):
    model = wrapped(family)
    vec = flat(model)
    base = {n: m.base_layer.weight.detach().clone() for n, m in lora.lora_layers(model)}
    merged = copy.deepcopy(model).merge_and_unload()
    merged_weights = dict(merged.named_modules())
    expected = torch.cat([
        (merged_weights[n.removeprefix("base_model.model.")].weight.detach() - base[n]).reshape(-1)
        for n in base])
    got = lora.delta_weights(model, vec)
    assert got.shape == (lora.delta_dim(model),)
    assert torch.allclose(got, expected, atol=1e-5)
    assert got.abs().max() > 0.1


def test_delta_gram_matches_explicit_inner_products():
    model = wrapped("gpt2", r=3)
    vecs = torch.randn(5, flat(model).numel())
    dense = torch.stack([lora.delta_weights(model, v) for v in vecs.double()])
    assert torch.allclose(lora.delta_gram(model, vecs), dense @ dense.T, rtol=1e-9, atol=1e-9)


def test_zero_b_means_zero_weight_change():
    model = lora.add_lora(tiny("llama"), r=2, alpha=4, targets=["q_proj"])
    assert lora.delta_weights(model, flat(model)).abs().max() == 0


def test_errors_are_clear():
    with pytest.raises(ValueError, match="no module"):
        lora.add_lora(tiny("gpt2"), targets=["q_proj"])
    with pytest.raises(ValueError, match="no LoRA layer"):
        lora.lora_layers(tiny("gpt2"))
    model = wrapped("gpt2")
    with pytest.raises(ValueError, match="length"):
        lora.delta_weights(model, torch.zeros(flat(model).numel() + 1))


def test_default_targets_are_the_families_query_value_layers():
    model = lora.add_lora(tiny("qwen2"), r=2)
    assert {n.split(".")[-1] for n, _ in lora.lora_layers(model)} == {"q_proj", "v_proj"}
    model = lora.add_lora(tiny("gpt2"), r=2)
    assert all(layer.fan_in_fan_out for _, layer in lora.lora_layers(model))
    assert {n.split(".")[-1] for n, _ in lora.lora_layers(model)} == {"c_attn"}


def test_tangent_gram_and_gram_overlap_match_dense_weight_changes():
    from lls import models, subspace

    model, _ = models.load("tiny-llama")
    peft_model = lora.add_lora(model, r=2, alpha=4)
    dim = lora.adapter_space(peft_model).dim
    gen = torch.Generator().manual_seed(3)
    points, tangents = torch.randn(4, dim, generator=gen), torch.randn(4, dim, generator=gen)
    dense = []
    for p, t in zip(points.double(), tangents.double(), strict=True):   # directional derivative of dW
        _, jvp = torch.func.jvp(lambda v: lora.delta_weights(peft_model, v), (p,), (t,))
        dense.append(jvp)
    dense = torch.stack(dense)
    torch.testing.assert_close(lora.tangent_gram(peft_model, points, tangents), dense @ dense.T, rtol=1e-9, atol=1e-9)
    gram = dense @ dense.T
    want = subspace.overlap(subspace.top_k_basis(dense[:2], 1), subspace.top_k_basis(dense[2:], 1))
    assert lora.gram_overlap(gram, [0, 1], [2, 3], 1) == pytest.approx(want, rel=1e-6)
    assert lora.gram_overlap(gram, [0, 1], [0, 1], 2) == pytest.approx(1.0)
