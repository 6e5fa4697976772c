"""ParamSpace: flatten/unflatten, functional loss closures and per-batch gradients."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from lls.params import ParamSpace, batch_gradients


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=23, n_positions=16, n_embd=16, n_layer=2, n_head=2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg).eval()


def lm_loss(call, batch):
    return call(input_ids=batch, labels=batch).loss


def batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 23, (3, 8), generator=g) for _ in range(n)]


def test_flatten_unflatten_roundtrip_is_exact():
    model = tiny_gpt2()
    space = ParamSpace(model)
    assert space.dim == sum(p.numel() for p in model.parameters())  # tied lm_head counted once
    theta = space.get()
    assert theta.shape == (space.dim,) and theta.dtype == torch.float32
    new = theta + torch.randn(space.dim)
    space.set_(new)
    assert torch.equal(space.get(), new)
    views = space.to_dict(new)
    assert list(views) == space.names
    for name, p in model.named_parameters():
        assert torch.equal(views[name], p.detach())
    # the tied output matrix follows the embedding
    assert torch.equal(model.lm_head.weight, views["transformer.wte.weight"])
    with pytest.raises(ValueError):
        space.set_(torch.zeros(space.dim + 1))


def test_subset_names_and_unknown_name():
    model = tiny_gpt2()
    names = ["transformer.h.1.mlp.c_fc.weight", "transformer.ln_f.bias"]
    space = ParamSpace(model, names)
    assert space.names == names and space.dim == 16 * 64 + 16
    with pytest.raises(KeyError):
        ParamSpace(model, ["nope"])


def test_loss_closure_equals_module_loss():
    model = tiny_gpt2()
    space = ParamSpace(model)
    batch = batches(1)[0]
    closure = space.loss_closure(lm_loss, batch)
    with torch.no_grad():
        assert torch.allclose(closure(space.get()), lm_loss(model, batch), atol=1e-6)
        other = space.get() + 0.05 * torch.randn(space.dim)
        from_closure = closure(other)
        space.set_(other)
        assert torch.allclose(from_closure, lm_loss(model, batch), atol=1e-6)


def test_loss_closure_on_a_subset_keeps_the_rest_fixed():
    model = tiny_gpt2()
    space = ParamSpace(model, ["transformer.h.0.attn.c_attn.weight"])
    batch = batches(1)[0]
    closure = space.loss_closure(lm_loss, batch)
    full = ParamSpace(model)
    before = full.get()
    with torch.no_grad():
        value = closure(space.get() * 2)
    assert torch.equal(full.get(), before)  # the model was not touched
    space.set_(space.get() * 2)
    assert torch.allclose(value, lm_loss(model, batch), atol=1e-6)


def test_batch_gradients_match_autograd_and_torch_func():
    model = tiny_gpt2()
    space = ParamSpace(model)
    bs = batches(3)
    rows = batch_gradients(space, lm_loss, bs)
    assert rows.shape == (3, space.dim)
    for row, batch in zip(rows, bs, strict=True):
        model.zero_grad()
        lm_loss(model, batch).backward()
        assert torch.allclose(row, space.grad(), atol=1e-6)
        functional = torch.func.grad(space.loss_closure(lm_loss, batch))(space.get())
        assert torch.allclose(row, functional, atol=1e-5)
    assert not torch.allclose(rows[0], rows[1])
    model.zero_grad(set_to_none=True)
    assert torch.equal(space.grad(), torch.zeros(space.dim))
