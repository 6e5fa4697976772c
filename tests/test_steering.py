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


def test_steering_metrics_baseline_and_shift(tiny):
    from lls import evaluation

    model, tokenizer = tiny
    text = "The river ran past the old mill and into the town, where the bakers were at work."
    base = steering.steering_metrics(model, tokenizer, STATEMENTS, text)
    scores = evaluation.statement_scores(model, tokenizer, STATEMENTS)
    labels = torch.tensor([s.label for s in STATEMENTS])
    assert base["margin"] == pytest.approx(scores.mean().item(), rel=1e-5)
    assert base["accuracy"] == pytest.approx(((scores > 0) == labels).float().mean().item())
    assert base["perplexity"] == pytest.approx(evaluation.perplexity(model, tokenizer, text))
    zero = steering.steering_metrics(model, tokenizer, STATEMENTS, text, 0, torch.zeros(model.config.hidden_size), 5.0)
    assert zero == base
    moved = steering.steering_metrics(model, tokenizer, STATEMENTS, text, 0,
                                      torch.randn(model.config.hidden_size), 20.0)
    assert moved["perplexity"] != base["perplexity"]
    assert moved["margin"] != base["margin"]


# --- the chapter package: parameters, layer grid, Table 6, the summary and the verdict rules ---------


def _cfg(**values):
    from lls.presets import resolve

    return resolve("05_steering", "smoke", **values)


@pytest.mark.parametrize("bad", [{"models": "no-such-model"}, {"models": "synthetic-gpt2"}, {"models": " , "},
                                 {"scales": "1,x"}, {"scales": "-1,0,1"}, {"scales": ""}, {"data": "wiki"},
                                 {"n_seeds": 0}, {"layer": -2}])
def test_config_rejects_bad_values(bad):
    from lls.errors import ConfigError

    with pytest.raises(ConfigError):
        _cfg(**bad)


def test_config_presets_old_spelling_and_scales():
    from lls.chapters import steering as ch
    from lls.errors import ConfigError

    assert _cfg().n_eval == 16 and ch.PRESETS["cpu"].n_eval == 100 and ch.PRESETS["paper"].n_eval == 500
    assert ch.PRESETS["cpu"] == ch.Config(preset="cpu")
    with pytest.raises(ConfigError, match="'n_test' is now called 'n_eval'"):
        _cfg(n_test=8)
    assert _cfg(scales="2,-1").scale_list() == [-1.0, 2.0]
    assert _cfg(models="tiny-qwen2, tiny-olmo").validate()


def test_grid_spec_leaves_the_alignment_spec_alone():
    from lls.chapters import steering as ch

    base = ch.AlignmentSpec.of(_cfg())
    assert ch.AlignmentSpec.of(_cfg(scales="-2,2", grid_layers=5, n_eval=4, side_tokens=9, layer=0)) == base
    assert ch.AlignmentSpec.of(_cfg(step_norm=0.5)) != base
    assert ch.GridSpec.of(_cfg(scales="4,-2")).scales == (-2.0, 4.0)
    assert base.seeds == [0, 1] and ch.AlignmentSpec.of(_cfg(seed=5, n_seeds=3)).seeds == [5, 6, 7]


def test_grid_layers_hold_the_steering_layer():
    from lls.chapters import steering as ch

    assert ch.grid_layer_ids(30, 4, 15) == [1, 10, 15, 28]
    assert ch.grid_layer_ids(30, 3, 4) == [4, 14, 28]
    assert ch.grid_layer_ids(2, 9, 1) == [0, 1]


def _grid(step_gain, caa_gain, random_gain):
    import numpy as np

    from lls.chapters import steering as ch

    base = {"accuracy": 0.5, "margin": 0.0, "signed_margin": 0.0, "perplexity": 10.0}
    acc = np.full((4, 1, 2), 0.5)
    acc[:, 0, 1] = 0.5 + np.array([caa_gain, step_gain, 0.0, random_gain]) / 100
    margin = np.zeros((4, 1, 2))
    margin[:, 0, 0], margin[:, 0, 1] = -1.0, 1.0
    ppl = np.full((4, 1, 2), 11.0)
    return ch.SteeringGrid(model="m", layers=[3], scales=[-1.0, 1.0], vectors=ch.VECTORS, layer=3,
                           baseline=base, accuracy=acc, margin=margin, signed_margin=margin.copy(),
                           perplexity=ppl, norms=np.ones(1), n_eval=100, side_tokens=64)


def _alignment(cos=0.0, shuffled=0.05, seeds=(0, 1), layers=4):
    import numpy as np

    from lls.chapters import steering as ch

    z = np.zeros((len(seeds), layers))
    return ch.Alignment(model="m", seeds=list(seeds), cos_full=z + cos, cos_full_pred=z, cos_contrast=z, cos_lora=z,
                        cos_lora_pred=z, cos_shuffled=z + shuffled, caa_split=z, pred_error_full=z,
                        pred_error_lora=z, null_q95=np.full(layers, 0.1), loss_full=z[:, :2], loss_lora=z[:, :2],
                        caa=z, shift_full=z, shift_lora=z, d_model=layers, dim_full=10, dim_lora=2)


def _summary(cos=0.0, shuffled=0.05, gains=(0.0, 0.0, 0.0)):
    """A one-model ModelSummary: cosine ``cos`` with CAA, step/CAA/random best gains ``gains``."""
    from lls.chapters import steering as ch

    return ch.summarize_model(_alignment(cos, shuffled), _grid(*gains))


def test_gain_side_cost_and_table6_pick_each_vectors_best_scale():
    import numpy as np

    from lls.chapters import steering as ch

    grid = _grid(4.0, 6.0, 1.0)
    np.testing.assert_allclose(ch.gain(grid)[:, 0, 1], [6.0, 4.0, 0.0, 1.0])
    np.testing.assert_allclose(ch.side_cost(grid), 10.0)
    rows = {r["vector"]: r for r in ch.table6(grid)}
    assert rows["CAA"]["scale"] == 1.0 and rows["CAA"]["target_gain"] == pytest.approx(6.0)
    assert rows["step (all params)"]["side_cost"] == pytest.approx(10.0)
    assert rows["random"]["lean"] == pytest.approx(1.0) and rows["random"]["margin_gain"] == pytest.approx(1.0)
    assert np.isnan(ch.response_similarity(grid, "random"))  # two points only
    assert "| m | CAA | 3 | +1 | +6.0 |" in ch.table6_markdown(list(rows.values()), {"m": grid.baseline})
    report = ch.scale_report(grid, 3, "CAA").splitlines()
    assert report == ["scale    -1: accuracy gain  +0.0 pts, perplexity  +10.0 %",
                      "scale    +1: accuracy gain  +6.0 pts, perplexity  +10.0 %"]
    assert ch.scale_report(grid, 7, "CAA") == "block 7 is not in the grid [3]"


def test_response_similarity_of_alike_and_opposite_leans():
    import numpy as np

    from lls.chapters import steering as ch

    grid = _grid(0, 0, 0)
    grid.margin = np.zeros((4, 2, 3))
    grid.margin[0] = [[1, 2, 3], [4, 5, 7]]
    grid.margin[1] = 2 * grid.margin[0]
    grid.margin[3] = -grid.margin[0]
    grid.margin[2, 0, 0] = np.nan
    assert ch.response_similarity(grid, "step (all params)") == pytest.approx(1.0)
    assert ch.response_similarity(grid, "random") == pytest.approx(-1.0)
    assert np.isnan(ch.response_similarity(grid, "step (LoRA)"))  # constant (zero) lean


def test_summary_judges_the_first_model_and_keeps_every_reported_number():
    from lls.chapters import steering as ch

    results = ch.Results(found={"a": _alignment(0.5), "b": _alignment(-0.5)},
                         grids={"a": _grid(4.0, 6.0, 1.0), "b": _grid(0, 0, 0)})
    results.grids["b"].model = "b"
    summary = ch.summarize(results)
    assert summary.claim_model == "a" and summary.judged is summary.models["a"]
    s = summary.judged
    assert (s.cos_step, s.cos_step_sd, s.null_q95, s.cos_shuffled_max) == (pytest.approx(0.5), 0.0, 0.1, 0.05)
    assert s.layer == 3 and s.n_layers == 4 and s.seeds == [0, 1] and s.n_eval == 100
    assert set(s.similarity) == {"step (all params)", "step (LoRA)", "random"}
    assert summary.table6_markdown.count("(unsteered)") == 2
    extra = summary.extra()
    assert sorted(extra) == ["a/cos_full_by_layer", "a/table6", "b/cos_full_by_layer", "b/table6"]
    assert extra["a/cos_full_by_layer"] == pytest.approx([0.5] * 4)
    assert [c.id for c in ch.claims(summary, _cfg())] == ["C8", "C9"]
    assert ch.claims(summary, _cfg())[0].value == pytest.approx(0.5)


def test_c9_verdicts():
    from lls.chapters import steering as ch

    assert ch.c9_verdict(_summary(gains=(4.0, 6.0, 1.0))) == "reproduced"
    assert ch.c9_verdict(_summary(gains=(3.0, 6.0, 1.0))) == "reproduced"  # exactly half of CAA's
    assert ch.c9_verdict(_summary(gains=(2.0, 6.0, 1.0))) == "partly"  # below half of CAA's
    assert ch.c9_verdict(_summary(gains=(4.0, 1.0, 2.0))) == "partly"  # CAA does not beat random
    assert ch.c9_verdict(_summary(gains=(1.0, 6.0, 2.0))) == "not reproduced"
    assert ch.c9_verdict(_summary(gains=(2.0, 6.0, 2.0))) == "not reproduced"  # a tie does not beat random
    claim = ch.c9_claim(_summary(gains=(4.0, 6.0, 1.0)), "smoke")
    assert claim.value == pytest.approx(4.0) and claim.paper == 1.2 and claim.paper_unit is None
    assert "CAA +6.0 pts" in claim.note and "Paper: OLMo BoolQ +1.2" in claim.note


def test_c8_verdicts():
    from lls.chapters import steering as ch
    from lls.claims import REGISTRY, threshold

    assert ch.c8_verdict(_summary(0.5)) == "reproduced"
    edge = ch.c8_bar()
    assert edge == REGISTRY["C8"].paper - threshold("C8", "tolerance")
    assert ch.c8_verdict(_summary(edge)) == "reproduced"
    assert ch.c8_verdict(_summary(edge - 1e-9)) == "partly"
    assert ch.c8_verdict(_summary(0.9)) == "reproduced"  # above the paper's value counts
    assert ch.c8_verdict(_summary(0.3)) == "partly"
    assert ch.c8_verdict(_summary(0.3, shuffled=0.4)) == "not reproduced"  # below the shuffled-label null
    assert ch.c8_verdict(_summary(0.08)) == "not reproduced"  # below the random-direction null (0.1)
    assert ch.c8_verdict(_summary(0.5, shuffled=-0.6)) == "not reproduced"  # |shuffled| counts
    assert ch.c8_verdict(_summary(-0.6)) == "not reproduced"
    claim = ch.c8_claim(_summary(0.5), "smoke")
    assert (claim.value, claim.spread, claim.seeds, claim.paper) == (pytest.approx(0.5), 0.0, [0, 1], 0.58)


def test_explorer_figure_has_one_slider_step_per_block_and_valid_json():
    import json

    import numpy as np

    from lls.chapters import steering as ch

    grid = _grid(4.0, 6.0, 1.0)
    grid.accuracy[3, 0, 0] = np.nan  # not measured
    fig = ch.explorer_figure(grid)
    assert [step["label"] for step in fig.layout.sliders[0].steps] == ["3"]
    assert len(fig.data) == 2 * len(ch.VECTORS)
    assert list(fig.data[0].y) == [0.0, pytest.approx(6.0)] and fig.data[3].y[0] is None
    text = json.dumps(fig.to_plotly_json(), default=list, allow_nan=False)
    assert "NaN" not in text
    assert len(ch.cosine_figure(_alignment(layers=3), layer=1).data) == 8



def test_every_figure_has_a_caption_built_from_its_inputs():
    import numpy as np

    from lls.chapters import steering as ch

    grid = _grid(4.0, 6.0, 1.0)
    for name in ("accuracy", "margin", "signed_margin", "perplexity"):  # a second block, without LoRA and random
        values = np.concatenate([getattr(grid, name)] * 2, axis=1)
        values[2:, 0] = np.nan
        setattr(grid, name, values)
    grid.layers, grid.norms = [1, 3], np.ones(2)
    explorer = ch.explorer_figure(grid).layout.meta["caption"]
    cosine = ch.cosine_figure(_alignment(layers=3), layer=1).layout.meta["caption"]
    assert all(c.strip() and "<" not in c for c in (explorer, cosine))
    assert "100 held-out statements" in explorer and '"step (LoRA)" and "random" are measured' in explorer
    assert "only block" not in ch.explorer_figure(_grid(4.0, 6.0, 1.0)).layout.meta["caption"]  # one block
    assert "mean over 2 data splits" in cosine and "3 blocks of m" in cosine

def test_split_halves_keep_true_and_false_twins_together():
    from lls import textdata
    from lls.chapters import steering as ch

    train = textdata.statements("train")
    groups = ch.fact_groups(train)
    assert sum(len(g) for g in groups) == len(train)
    assert all(len(g) == 2 and g[0].label and not g[1].label and g[0].topic == g[1].topic for g in groups)
    first, second = ch.split_halves(train, seed=3)
    assert sorted(s.text for s in first + second) == sorted(s.text for s in train)
    subjects = lambda half: {s.text.rsplit(" ", 1)[0] for s in half}  # noqa: E731
    assert not subjects(first) & subjects(second)  # no fact on both sides
    assert abs(len(first) - len(second)) <= 2 * len(textdata.STATEMENT_TOPICS)
    assert first != ch.split_halves(train, seed=4)[0]
    assert first == ch.split_halves(train, seed=3)[0]
    lone = [textdata.Statement("Is the sky blue?", True, "boolq"), textdata.Statement("Is ice hot?", False, "boolq")]
    assert ch.fact_groups(lone) == [lone]  # common prefix "Is " pairs them: harmless, both kept


def test_protocol_smoke_run(isolated):
    import numpy as np

    from lls.chapters import steering as ch
    from lls.errors import ConfigError

    cfg = _cfg(models="tiny-llama", n_seeds=1, n_null=20, n_eval=8, side_tokens=16)
    results = ch.run(cfg)
    found, grid = results.found["tiny-llama"], results.grids["tiny-llama"]
    assert found.cos_full.shape == found.cos_lora.shape == (1, 2) and found.caa.shape == (2, 64)
    assert np.all(np.abs(found.cos_full) <= 1) and found.pred_error_full.max() < 0.05
    assert found.loss_full[0, 1] < found.loss_full[0, 0]  # a descent step
    assert grid.layer == 1 and grid.layers == [0, 1] and grid.n_eval == 8
    measured = np.isfinite(grid.accuracy)
    assert measured[:2].all() and measured[2:, 1].all() and not measured[2:, 0].any()
    summary = ch.summarize(results)
    assert [c.verdict for c in ch.claims(summary, cfg)] == [ch.c8_verdict(summary.judged),
                                                            ch.c9_verdict(summary.judged)]
    assert ch.run(cfg).found["tiny-llama"].cos_full.tolist() == found.cos_full.tolist()  # cached, same
    with pytest.raises(ConfigError, match="Layer 5 does not exist"):
        ch.steering_grid(ch.GridSpec.of(_cfg(models="tiny-llama", n_seeds=1, n_null=20, layer=5)), "tiny-llama")
