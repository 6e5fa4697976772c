"""Tests of lls.steering on tiny random GPT-2, Llama, Qwen2 and OLMo models built locally."""

import functools

import pytest
import torch

from lls import layers, models, steering
from lls.params import ParamSpace

FAMILIES = ["tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-olmo"]


@functools.cache
def _model(name, dtype=torch.float32):
    depth = {"n_layer": 3} if name == "tiny-gpt2" else {"num_hidden_layers": 3}
    return models.load(name, dtype=dtype, **depth)


@pytest.fixture(params=FAMILIES)
def tiny(request):
    model, tokenizer = _model(request.param)
    return model, tokenizer


class _S:  # a stand-in for lls.textdata.Statement (text, label)
    def __init__(self, text, label):
        self.text, self.label = text, label


STATEMENTS = [_S("Paris is in France.", True), _S("The sun is cold.", False),
              _S("Water is wet and flows downhill.", True), _S("Two plus two is five.", False),
              _S("Fish live in water.", True), _S("Ice is hot.", False)]


def _batch(tokenizer):
    return steering.encode_statements(tokenizer, STATEMENTS)


def test_recorded_activation_equals_hidden_states(tiny):
    model, tokenizer = tiny
    batch = _batch(tokenizer)
    n = layers.num_layers(model)
    with steering.record_activations(model) as rec:
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    assert sorted(rec) == list(range(n))
    for i in range(n - 1):  # the last hidden_states entry is after the final norm in some families
        assert len(rec[i]) == 1
        torch.testing.assert_close(rec[i][0], out.hidden_states[i + 1])


def test_hooks_removed_after_exception(tiny):
    model, tokenizer = tiny
    block = layers.blocks(model)[1]
    before = len(block._forward_hooks)
    ids = _batch(tokenizer).input_ids
    with torch.no_grad():
        reference = model(input_ids=ids).logits
    with pytest.raises(RuntimeError, match="boom"):
        with steering.record_activations(model, [1]):
            assert len(block._forward_hooks) == before + 1
            raise RuntimeError("boom")
    assert len(block._forward_hooks) == before
    with pytest.raises(RuntimeError, match="boom"):
        with steering.add_vector(model, 1, torch.ones(model.config.hidden_size), 3.0):
            raise RuntimeError("boom")
    assert len(block._forward_hooks) == before
    with torch.no_grad():  # and the model computes exactly what it computed before any hook
        torch.testing.assert_close(model(input_ids=ids).logits, reference, rtol=0, atol=0)


def test_zero_vector_changes_no_logit_and_nonzero_does(tiny):
    model, tokenizer = tiny
    ids = _batch(tokenizer).input_ids
    d = model.config.hidden_size
    with torch.no_grad():
        base = model(input_ids=ids).logits
        with steering.add_vector(model, 0, torch.zeros(d), 10.0):
            zero = model(input_ids=ids).logits
        with steering.add_vector(model, 0, torch.ones(d), 1.0):
            moved = model(input_ids=ids).logits
    assert torch.equal(base, zero)
    assert not torch.allclose(base, moved)


def test_added_vector_appears_in_the_residual_stream(tiny):
    model, tokenizer = tiny
    ids = _batch(tokenizer).input_ids
    v = torch.randn(model.config.hidden_size)
    with torch.no_grad(), steering.record_activations(model, [1]) as plain:
        model(input_ids=ids)
    with torch.no_grad(), steering.add_vector(model, 1, v, 0.5), steering.record_activations(model, [1]) as rec:
        model(input_ids=ids)
    # the steering hook was registered first, so the recorder sees the shifted stream
    torch.testing.assert_close(rec[1][0] - plain[1][0], (0.5 * v).expand_as(plain[1][0]))


def test_last_token_left_and_right_padding():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert steering.last_token(hidden, right)[:, 0].tolist() == [1.0, 7.0]
    assert steering.last_token(hidden, left)[:, 0].tolist() == [3.0, 7.0]


def test_caa_matches_direct_computation(tiny):
    model, tokenizer = tiny
    batch = _batch(tokenizer)
    acts = steering.last_token_activations(model, batch, model)
    caa = steering.caa_vectors(acts, batch.labels)
    with torch.no_grad():
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    last = batch.attention_mask.sum(1) - 1  # right padding
    for layer in range(layers.num_layers(model) - 1):
        h = out.hidden_states[layer + 1][torch.arange(len(batch)), last]
        direct = h[[0, 2, 4]].mean(0) - h[[1, 3, 5]].mean(0)
        torch.testing.assert_close(caa[layer], direct)
    with pytest.raises(ValueError, match="both"):
        steering.caa_vectors(acts, torch.ones(len(batch), dtype=torch.bool))


def test_truth_loss_reads_the_answer_token_at_the_last_prompt_position(tiny):
    model, tokenizer = tiny
    batch = _batch(tokenizer)
    t, f = (tokenizer(a, add_special_tokens=False)["input_ids"][0] for a in (" True", " False"))
    assert batch.answer_ids.tolist() == [t, f]
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        last = logits[torch.arange(len(batch)), batch.attention_mask.sum(1) - 1]
        loss = steering.truth_loss(model, batch)
        flipped = steering.truth_loss(model, batch.with_labels(~batch.labels))
    target = torch.tensor([t if lab else f for lab in batch.labels.tolist()])
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(last, target))
    assert not torch.isclose(loss, flipped)
    pair = last[:, [t, f]]
    two_way = -torch.where(batch.labels, pair.log_softmax(-1)[:, 0], pair.log_softmax(-1)[:, 1]).mean()
    torch.testing.assert_close(steering.contrast_loss(model, batch), two_way)


@pytest.mark.parametrize("name", FAMILIES)
def test_pushforward_matches_measured_shift_for_small_step(name):
    model, tokenizer = _model(name, torch.float64)  # float64: the measured shift is a difference
    batch = _batch(tokenizer)
    space = ParamSpace(model)
    theta0 = space.get()
    delta = steering.gradient_step(space, batch, step_norm=1e-3)
    assert delta.norm().item() == pytest.approx(1e-3, rel=1e-4)
    shift = steering.activation_shift(space, delta, batch)
    assert torch.equal(space.get(), theta0)  # parameters restored
    n = layers.num_layers(model)
    assert shift.measured.shape == shift.predicted.shape == (n, model.config.hidden_size)
    err = (shift.measured - shift.predicted).norm(dim=-1) / shift.predicted.norm(dim=-1)
    assert err.max() < 0.02, err
    assert shift.loss_after < shift.loss_before  # a descent step
    # the error is second order: ten times the step, about ten times the relative error
    big = steering.activation_shift(space, delta * 10, batch)
    big_err = (big.measured - big.predicted).norm(dim=-1) / big.predicted.norm(dim=-1)
    assert (big_err / err).min() > 5, big_err / err


def test_pushforward_in_lora_space():
    from lls import lora

    model, tokenizer = models.load("tiny-llama", dtype=torch.float64)
    torch.manual_seed(0)
    peft_model = lora.add_lora(model, r=4, alpha=8)
    space = lora.adapter_space(peft_model)
    batch = _batch(tokenizer)
    delta = steering.gradient_step(space, batch, step_norm=1e-2)
    shift = steering.activation_shift(space, delta, batch)
    err = (shift.measured - shift.predicted).norm() / shift.predicted.norm()
    assert err < 0.02
    assert shift.predicted.norm() > 0


def test_steered_scores_baseline_and_shift(tiny):
    from lls import evaluation

    model, tokenizer = tiny
    text = "The river ran past the old mill and into the town, where the bakers were at work."
    base = steering.steered_scores(model, tokenizer, STATEMENTS, text)
    scores = evaluation.statement_scores(model, tokenizer, STATEMENTS)
    torch.testing.assert_close(torch.as_tensor(base["score"]), scores, rtol=1e-4, atol=1e-4)
    assert base["perplexity"] == pytest.approx(evaluation.perplexity(model, tokenizer, text))
    zero = steering.steered_scores(model, tokenizer, STATEMENTS, text, 0, torch.zeros(model.config.hidden_size), 5.0)
    assert (zero["score"] == base["score"]).all() and (zero["logprob"] == base["logprob"]).all()
    moved = steering.steered_scores(model, tokenizer, STATEMENTS, text, 0, torch.randn(model.config.hidden_size), 20.0)
    assert moved["perplexity"] != base["perplexity"] and (moved["score"] != base["score"]).any()


def test_text_logprob_inside_the_question_equals_the_bare_texts(tiny):
    model, tokenizer = tiny
    asked = steering.statement_numbers(model, tokenizer, STATEMENTS)["logprob"]
    bare = steering.statement_numbers(model, tokenizer, STATEMENTS, prompt="{text}")["logprob"]
    torch.testing.assert_close(asked, bare, rtol=1e-4, atol=1e-4)  # a causal model: the question comes after
    batch = steering.encode_statements(tokenizer, STATEMENTS[:1], prompt="{text}")
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids).logits[0, :-1].log_softmax(-1)
    direct = logits.gather(-1, batch.input_ids[0, 1:, None]).sum()
    torch.testing.assert_close(bare[0], direct, rtol=1e-4, atol=1e-4)


def test_likelihood_loss_and_delta_shift(tiny):
    model, tokenizer = tiny
    batch = steering.encode_statements(tokenizer, STATEMENTS, prompt="{text}")
    logp = steering.statement_numbers(model, tokenizer, STATEMENTS, prompt="{text}")["logprob"]
    sign = batch.labels.float() * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(steering.likelihood_loss(model, batch), -(logp * sign).mean(), rtol=1e-4, atol=1e-4)
    space = ParamSpace(model)
    delta = steering.gradient_step(space, batch, 1e-3, steering.likelihood_loss)
    shift = steering.activation_shift(space, delta, batch, predict=False, loss=steering.likelihood_loss)
    assert shift.loss_after < shift.loss_before and shift.delta.shape == shift.measured.shape
    alone = steering.activation_shift(space, delta, batch.with_labels(torch.ones(len(batch))), predict=False)
    assert alone.delta is None  # one label only: no ΔCAA
