"""Tests of chapter 5's package: parameters, data and splits, targets, nulls, rows, claims, figures,
and one tiny run of the whole protocol (every concept and both variants)."""

import json

import numpy as np
import pytest

from lls.chapters import steering as ch
from lls.chapters.steering.auc import validation_auroc
from lls.errors import ConfigError
from lls.textdata import Statement


def _cfg(**values):
    from lls.presets import resolve

    return resolve("05_steering", "smoke", **values)


@pytest.mark.parametrize("bad", [{"models": "no-such-model"}, {"models": "synthetic-gpt2"}, {"models": " , "},
                                 {"scales": "1,x"}, {"scales": "-1,1"}, {"scales": ""}, {"data": "wiki"},
                                 {"n_seeds": 0}, {"layer": -2}, {"concepts": "truth,colour"}, {"variants": "big"},
                                 {"n_null": 50}, {"statements": "/no/such/file.json"}, {"tuned_concepts": "colour"}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        _cfg(**bad)


def test_config_presets_and_old_spelling():
    assert ch.PRESETS["cpu"] == ch.Config(preset="cpu")
    assert ch.PRESETS["cpu"].n_random >= 20 and ch.PRESETS["cpu"].n_null >= 100
    assert ch.PRESETS["cpu"].concept_list() == list(ch.CONCEPTS) and ch.PRESETS["cpu"].variant_list() == ["untuned", "tuned"]
    with pytest.raises(ConfigError, match="'n_test' is now called 'n_eval'"):
        _cfg(n_test=8)
    assert _cfg(scales="8,2").scale_list() == [2.0, 8.0]
    cpu = ch.PRESETS["cpu"]  # the tuned variant's cuts for time: three concepts, one grid block
    assert cpu.tuned_concept_list() == ["truth", "plural", "past_tense"] and _cfg().tuned_concept_list() == list(ch.CONCEPTS)
    assert ch.GridSpec.of(cpu, "truth", "tuned").grid_layers == 1 < ch.GridSpec.of(cpu, "truth", "untuned").grid_layers


def test_grid_spec_leaves_the_alignment_spec_alone():
    base = ch.AlignmentSpec.of(_cfg(), "truth", "untuned")
    assert ch.AlignmentSpec.of(_cfg(scales="2,3", grid_layers=5, side_tokens=9, layer=0, n_random=7),
                               "truth", "untuned") == base
    assert ch.AlignmentSpec.of(_cfg(step_norm=0.5), "truth", "untuned") != base
    assert ch.AlignmentSpec.of(_cfg(), "plural", "untuned") != base
    assert base.seeds == [0, 1] and ch.AlignmentSpec.of(_cfg(seed=5, n_seeds=3), "truth", "tuned").seeds == [5, 6, 7]


def _write(tmp_path, items, raw=None):
    path = tmp_path / "s.json"
    path.write_text(raw if raw is not None else json.dumps(items, indent=1))
    return str(path)


GOOD = [{"text": f"Fact {i} is {'right' if t else 'wrong'}.", "label": t, "topic": f"topic{i % 2}", "fact": f"f{i}"}
        for i in range(12) for t in (True, False)]


def test_statements_file_loads_and_bad_files_say_which_field_and_line(tmp_path):
    loaded = ch.load_statements(_write(tmp_path, GOOD))
    assert len(loaded) == 24 and loaded[0] == Statement("Fact 0 is right.", True, "topic0", "f0")
    bad = [dict(GOOD[0]), {k: v for k, v in GOOD[1].items() if k != "fact"}]
    with pytest.raises(ConfigError, match=r"item 1 \(line 8\) has no field 'fact'"):
        ch.load_statements(_write(tmp_path, bad))
    with pytest.raises(ConfigError, match="'label' must be true or false"):
        ch.load_statements(_write(tmp_path, [dict(GOOD[0], label="yes")]))
    with pytest.raises(ConfigError, match="cannot read it as JSON"):
        ch.load_statements(_write(tmp_path, None, raw="[{"))
    with pytest.raises(ConfigError, match="both true and false"):
        ch.load_statements(_write(tmp_path, GOOD[::2]))
    with pytest.raises(ConfigError, match="has no field 'topic'"):  # raised by the config, before any work
        _cfg(statements=_write(tmp_path, [{"text": "x", "label": True}]))
    spec = ch.DataSpec.of(_cfg(statements=_write(tmp_path, GOOD)), "truth")
    assert spec.data.endswith("s.json") and len(spec.digest) == 64
    train, val, test = spec.splits()
    assert sorted(s.text for s in train + val + test) == sorted(s["text"] for s in GOOD)


def test_three_way_split_is_by_fact_stratified_and_fixed():
    statements = ch.concept_splits("truth", "statements", 0, 10_000, 0)
    train, val, test = (sorted(s.text for s in part) for part in statements)
    facts = [{(s.topic, s.fact) for s in part} for part in statements]
    assert not (facts[0] & facts[1] or facts[0] & facts[2] or facts[1] & facts[2])
    assert {s.topic for s in statements[2]} == {s.topic for s in statements[0]}
    assert len(statements[1]) == len(statements[2]) and sum(s.label for s in statements[2]) * 2 == len(statements[2])
    again = ch.concept_splits("truth", "statements", 0, 10_000, 0)
    assert [s.text for s in again[2]] == [s.text for s in statements[2]]
    capped = ch.concept_splits("truth", "statements", 0, 20, 0)[2]
    assert len(capped) == 20 and len({s.topic for s in capped}) == 5  # the cap keeps the topic mix and whole pairs


@pytest.mark.parametrize("concept", ["plural", "past_tense", "number_words"])
def test_word_concepts_are_twins_from_held_out_items(concept):
    from lls.chapters.steering.tuning import tuning_statements

    train, val, test = ch.concept_splits(concept, "statements", 40, 10, 0)
    for part in (train, val, test):
        groups = ch.fact_groups(part)
        assert all(len(g) == 2 and g[0].label and not g[1].label and g[0].text != g[1].text for g in groups)
    assert not {s.fact for s in train} & {s.fact for s in val + test}
    tuned = {s.fact.split(":")[0].split(" ")[-1] for s in tuning_statements(0) if s.topic == f"tune/{concept}"}
    assert tuned and not {s.fact for s in val + test} & tuned  # the tuning never saw a held-out item of the task


def test_tuning_topics_are_disjoint_from_every_evaluated_topic():
    from lls import textdata
    from lls.chapters.steering.tuning import TUNING_TASKS, relation_statements, relations, tuning_statements

    tuned = tuning_statements(0)
    evaluated = {s for c in ch.CONCEPTS for part in ch.concept_splits(c, "statements", 64, 40, 0) for s in part}
    assert {s.topic for s in evaluated} == set(textdata.STATEMENT_TOPICS) | set(ch.CONCEPTS) - {"truth"}
    kinds = {s.topic.removeprefix("tune/") for s in tuned}
    assert kinds == set(relations()) | set(TUNING_TASKS) and all(s.topic.startswith("tune/") for s in tuned)
    assert not set(relations()) & (set(textdata.STATEMENT_TOPICS) | set(textdata.TASKS) | set(ch.CONCEPTS))
    assert not {s.text for s in tuned} & {s.text for s in evaluated}
    facts = relation_statements(0)
    assert 2 * len(facts) <= len(tuned) <= 2 * len(facts) + 6  # as many word-task statements as relation ones
    for group in ch.fact_groups(facts):  # each fact true once and false once, the false object of the same relation
        assert [s.label for s in group] == [True, False] and group[0].text != group[1].text
        template, pairs = relations()[group[0].topic.removeprefix("tune/")]
        assert group[1].text in {template.format(x=group[0].fact.split("/", 1)[1], y=y) for _, y in pairs}


def test_split_halves_keep_true_and_false_twins_together():
    from lls import textdata

    train = textdata.statements("train")
    groups = ch.fact_groups(train)
    assert all(len(g) == 2 and g[0].label and not g[1].label and g[0].topic == g[1].topic for g in groups)
    first, second = ch.split_halves(train, seed=3)
    assert sorted(s.text for s in first + second) == sorted(s.text for s in train)
    assert not {(s.topic, s.fact) for s in first} & {(s.topic, s.fact) for s in second}
    assert first == ch.split_halves(train, seed=3)[0] != ch.split_halves(train, seed=4)[0]
    lone = [Statement("Is the sky blue?", True, "boolq"), Statement("Is ice hot?", False, "boolq")]
    assert ch.fact_groups(lone) == [lone]  # no facts named: the common-prefix rule


def test_grid_layers_hold_the_steering_layer():
    assert ch.grid_layer_ids(30, 4, 15) == [1, 10, 15, 28]
    assert ch.grid_layer_ids(2, 9, 1) == [0, 1]


def test_targets_choice_and_threshold_null():
    from lls.chapters.steering import targets

    ss = [Statement("a", True, "t", "1"), Statement("b", False, "t", "1"), Statement("c", True, "t", "2"),
          Statement("d", False, "t", "2")]
    numbers = {"score": np.array([1.0, 2.0, -1.0, -3.0]), "logprob": np.array([-1.0, -2.0, -5.0, -4.0])}
    np.testing.assert_allclose(targets.margins(numbers, ss, "question"), [1, -2, -1, 3])
    np.testing.assert_allclose(targets.margins(numbers, ss, "likelihood"), [1, -1])
    better = {"score": numbers["score"] + [0, -5, 3, 0], "logprob": numbers["logprob"]}
    assert targets.choose({"a": numbers, "b": better}, numbers, ss, "question") == "b"
    t = targets.best_threshold(np.array([0.5, 1.0, 2.0, 3.0]), np.array([False, False, True, True]))
    assert t == 1.0  # "True iff score > 1" gets all four
    assert targets.targets_of("truth", "untuned") == ("likelihood", "question")
    assert targets.targets_of("truth", "tuned")[0] == "question" and targets.targets_of("plural", "tuned") == ("likelihood",)


def test_auroc_interval_and_gate():
    assert ch.auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True])) == 1.0
    assert ch.auroc(np.array([1.0, 1.0]), np.array([True, False])) == 0.5
    rng = np.random.default_rng(0)
    labels = np.array([True, False] * 50)
    good = ch.auroc_interval(labels + rng.normal(0, 0.5, 100), labels, 0)
    assert good.low > 0.5 and good.n == 100
    tuned = ch.protocol.Tuning("m", np.zeros(1), [1.0], labels, labels * 0.0, labels + rng.normal(0, 0.5, 100),
                               ["validation"] * 100, ["tune/plural"], 10)
    assert ch.tuning_gate(tuned, 0) == ""
    tuned.after = rng.normal(size=100)
    assert "stops here" in ch.tuning_gate(tuned, 0) and ch.tuning_gate(tuned, 0, gate=0.0) == ""
    summary = ch.Summary([], [], {"m": ch.tuning_row(tuned)}, {}, "m")
    assert "not wholly above `tuning_gate` = 0.5" in ch.gate_sentence(summary, 0.5)
    assert "stops here" in ch.gate_sentence(summary, 0.5) and "gate is off" in ch.gate_sentence(summary, 0.0)
    shown = ch.summarize(ch.protocol.Results({}, {}, {"m": tuned}, {}), 3).tunings["m"].auroc["after validation"]
    assert shown == validation_auroc(tuned, 3) != validation_auroc(tuned, 0)  # the book shows what the gate read
    tuned.after = labels + rng.normal(0, 0.5, 100)
    summary = ch.Summary([], [], {"m": ch.tuning_row(tuned)}, {}, "m")
    assert "wholly above `tuning_gate` = 0.5" in ch.gate_sentence(summary, 0.5) and "is used" in ch.gate_sentence(summary, 0.5)


def _alignment(cos, shuffled, seeds=3, layers=4, ceiling=0.5):
    z = np.zeros((seeds, layers))
    rows = {k: z + 0.0 for k in ("cos_full_pred", "cos_lora", "cos_contrast", "delta_lora", "consistency",
                                 "pred_error_full")}
    rows.update(cos_full=z + cos, delta_full=z + cos + np.arange(seeds)[:, None] * 0.01, cos_shuffled=z + shuffled,
                delta_shuffled=z + shuffled, caa_split=z + ceiling, loss_full=np.zeros((seeds, 2)))
    first = {k: np.ones((layers, 8)) for k in ("caa", "shift_full", "shift_lora")}
    null = np.random.default_rng(0).normal(0, 0.1, (layers, 200))
    return ch.protocol.Alignment.build("m", "truth", "untuned", list(range(seeds)), rows, first, null, 10, 100)


def test_c8_rows_and_claims_carry_concept_variant_and_interval():
    rows = ch.c8_rows(_alignment(0.5, 0.0), 2)
    assert [r.shift for r in rows] == ["mean shift", "ΔCAA"]
    assert rows[0].of_ceiling == pytest.approx(1.0) and 0.1 < rows[0].null_bound < 0.3
    claims = [ch.c8_claim(r, "smoke") for r in rows]
    assert claims[1].verdict == "reproduced" and claims[1].n == 3 and claims[1].ci[0] >= ch.c8_bar()
    assert claims[0].ci == [0.5, 0.5]  # no spread over splits: a zero-width interval
    assert (claims[1].concept, claims[1].model_variant) == ("truth", "untuned")
    assert claims[0].model_variant == "untuned" and [c.reading for c in claims] == ["mean shift", "ΔCAA"]


def _grid(step_val, step_test, random_val, random_test, base_score, n=8):
    """A one-block grid on ``n`` balanced statements; unit gains are set through the answer scores."""
    ss = [Statement(f"s{i}", i % 2 == 0, "t", str(i // 2)) for i in range(n)]
    num = lambda score: {"score": np.asarray(score, float), "logprob": np.zeros(n), "perplexity": 10.0}  # noqa: E731
    val = {("CAA", 3, 4.0): num(step_val), ("step (all params)", 3, 4.0): num(step_val),
           ("random 0", 3, 4.0): num(random_val)}
    picked = {"CAA": (3, 4.0), "step (all params)": (3, 4.0), "random 0": (3, 4.0)}
    test = {"CAA": num(step_test), "step (all params)": num(step_test), "random 0": num(random_test)}
    return ch.SteeringGrid("m", "truth", "tuned", ("question", "likelihood"), 3, [3], [4.0], ss, ss, num(base_score),
                           num(base_score), val, picked, test, np.ones(1), 16)


def test_c9_row_picks_the_null_on_validation_and_counts_anti_steering():
    sign = np.array([1.0, -1.0] * 4)
    wrong = -sign  # every statement on the wrong side
    row = ch.c9_row(_grid(sign, sign, wrong, wrong, wrong), "question")
    assert row.step.mean == pytest.approx(100.0) and row.gains["CAA"] == pytest.approx(100.0)
    # saying True to all (a threshold shift) gains 50 points on validation, the random direction 0
    assert row.null == "threshold shift" and row.gains["threshold shift"] == pytest.approx(50.0)
    assert row.anti["step (all params)"] == 0.0 and row.anti["random 0"] == 0.0
    claim = ch.c9_claim(row, "smoke")
    assert (claim.verdict, claim.concept, claim.model_variant) == ("reproduced", "truth", "tuned")
    # unsteered scores all positive: "True iff score > 0" is at chance, a threshold shift is not
    leaning = np.array([3.0, 1.0] * 4)
    row = ch.c9_row(_grid(leaning, leaning, leaning, leaning, leaning), "question")
    assert row.null == "threshold shift" and row.gains["threshold shift"] == pytest.approx(50.0)
    assert ch.c9_claim(row, "smoke").verdict == "not reproduced"


def test_not_run_rows_say_why():
    summary = ch.Summary([], [], {}, {("m", "truth", "tuned"): "at chance"}, "m")
    from lls.chapters.steering.claims import not_run_claims

    rows = not_run_claims(summary, "m")
    assert {(c.id, c.model_variant, c.reading) for c in rows} == {
        ("C8", "tuned", "mean shift"), ("C8", "tuned", "ΔCAA"), ("C9", "tuned", "question"), ("C9", "tuned", "likelihood")}
    assert all(c.verdict == "not run" and c.note == "at chance" for c in rows)


def test_tuned_concepts_left_out_are_not_run_rows(isolated):
    cfg = _cfg(models="tiny-llama", n_seeds=2, n_random=2, concepts="truth,plural", tuned_concepts="plural")
    results = ch.run(cfg)
    assert set(results.grids) == {("tiny-llama", "truth", "untuned"), ("tiny-llama", "plural", "untuned"),
                                  ("tiny-llama", "plural", "tuned")}
    assert "tuned_concepts" in results.skipped[("tiny-llama", "truth", "tuned")]
    rows = [c for c in ch.claims(ch.summarize(results), cfg) if c.verdict == "not run"]
    assert rows and all(c.concept == "truth" and c.model_variant.startswith("tuned") for c in rows)
    assert {c.reading for c in rows} == {"mean shift", "ΔCAA", "question", "likelihood"}


def test_protocol_smoke_run_reaches_every_row(isolated):
    cfg = _cfg(models="tiny-llama", n_seeds=2, n_random=2)
    results = ch.run(cfg)
    assert set(results.grids) == {("tiny-llama", c, v) for c in ch.CONCEPTS for v in ("untuned", "tuned")}
    from lls.chapters.steering.splits import labelled_statements

    _, val, test = ch.three_way(labelled_statements("statements", 0), cfg.seed)
    gate_set = results.tunings["tiny-llama"].split  # the gate reads every validation statement, not n_eval
    assert gate_set.count("validation") == len(val) > cfg.n_eval and gate_set.count("test") == len(test)
    found = results.found[("tiny-llama", "truth", "tuned")]
    assert found.cos_full.shape == found.delta_full.shape == (2, 2) and found.null_cos.shape == (2, 100)
    assert np.all(np.abs(found.cos_full) <= 1) and found.pred_error_full.max() < 0.05
    assert np.isnan(results.found[("tiny-llama", "plural", "untuned")].cos_contrast).all()
    grid = results.grids[("tiny-llama", "truth", "untuned")]
    assert set(grid.test) == {"CAA", "step (all params)"} | {n for n in grid.test if n.startswith("random")}
    summary = ch.summarize(results)
    claims = ch.claims(summary, cfg)
    assert len(claims) == 2 * 4 * 2 + (2 + 1 + 1 + 1) * 2
    assert all(c.concept and c.model_variant and c.n for c in claims)
    assert json.dumps(ch.c8_figure(summary.c8).to_plotly_json(), default=list, allow_nan=False)
    for fig in (ch.c8_figure(summary.c8), ch.c9_figure(summary.c9), ch.explorer_figure(grid)):
        assert fig.layout.meta["caption"].strip() and "<" not in fig.layout.meta["caption"]
    explorer = ch.explorer_figure(grid)  # a block slider only when moving it changes the plot
    assert bool(explorer.layout.sliders) == ("no block slider" not in explorer.layout.meta["caption"])
    assert ch.run(cfg).found[("tiny-llama", "truth", "tuned")].cos_full.tolist() == found.cos_full.tolist()
    with pytest.raises(ConfigError, match="Layer 5 does not exist"):
        ch.steering_grid(ch.GridSpec.of(_cfg(models="tiny-llama", layer=5), "truth", "untuned"), "tiny-llama")
