"""Offline data: deterministic tasks with held-out splits, label masking, statements, prose."""

import time

import pytest

from lls import models, packaged, textdata
from lls.errors import ConfigError, MissingModelError


@pytest.fixture(scope="module")
def tokenizer():
    return packaged.gpt2_tokenizer()


def test_tasks_and_pairs():
    assert len(textdata.TASKS) >= 4
    assert len(textdata.TASK_PAIRS) >= 2
    flat = [t for pair in textdata.TASK_PAIRS for t in pair]
    assert len(set(flat)) == len(flat) and set(flat) <= set(textdata.TASKS)


@pytest.mark.parametrize("task", textdata.TASKS)
def test_examples_deterministic_and_held_out(task):
    a = textdata.examples(task, "train", 50, seed=3)
    assert a == textdata.examples(task, "train", 50, seed=3)
    assert a != textdata.examples(task, "train", 50, seed=4)
    assert all(isinstance(e, textdata.Example) and e.answer.startswith(" ") for e in a)
    train = {e.prompt for e in textdata.examples(task, "train", 3000, seed=0)}
    test = {e.prompt for e in textdata.examples(task, "test", 1000, seed=0)}
    assert train and test and not train & test
    assert len(test) >= 8


def test_examples_cover_the_split_before_repeating():
    pool = len(textdata._split_items("capital", "test"))
    drawn = textdata.examples("capital", "test", pool, seed=0)
    assert len({e.prompt for e in drawn}) == pool


def test_bad_task_or_split():
    with pytest.raises(ConfigError, match="plural"):
        textdata.examples("plurals", "train", 1)
    with pytest.raises(ConfigError, match="'test'"):
        textdata.examples("plural", "validation", 1)


def test_number_to_words():
    cases = {0: "zero", 7: "seven", 13: "thirteen", 40: "forty", 47: "forty-seven", 100: "one hundred",
             305: "three hundred five", 999: "nine hundred ninety-nine"}
    assert {n: textdata.number_to_words(n) for n in cases} == cases
    ex = textdata.examples("arithmetic", "train", 20)
    assert all(int(e.answer) == sum(map(int, e.prompt.rstrip(" =").split(" + "))) for e in ex)


def test_encode_masks_everything_but_the_answer(tokenizer):
    ex = textdata.examples("number_words", "train", 6, seed=1) + textdata.examples("plural", "test", 2)
    batch = textdata.encode(tokenizer, ex, max_length=32)
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    assert ids.shape == mask.shape == labels.shape and ids.shape[0] == len(ex)
    for i, e in enumerate(ex):
        answer = labels[i] != -100
        assert (labels[i][answer] == ids[i][answer]).all()
        assert tokenizer.decode(ids[i][answer]) == e.answer
        n = int(mask[i].sum())
        assert tokenizer.decode(ids[i][:n]) == e.prompt + e.answer
        assert (labels[i][n:] == -100).all() and (ids[i][n:] == tokenizer.pad_token_id).all()
        assert answer.nonzero().max() == n - 1  # the answer ends the row


def test_encode_truncates_the_prompt_not_the_answer(tokenizer):
    ex = [textdata.Example("word " * 40 + "end:", " forty-seven")]
    batch = textdata.encode(tokenizer, ex, max_length=10)
    assert batch["input_ids"].shape == (1, 10)
    assert tokenizer.decode(batch["input_ids"][0][batch["labels"][0] != -100]) == " forty-seven"
    with pytest.raises(ConfigError, match="max_length"):
        textdata.encode(tokenizer, ex, max_length=2)


def test_statements_balanced_split_by_fact():
    train, test = textdata.statements("train"), textdata.statements("test")
    assert len(train) + len(test) >= 400 and len(test) >= 100
    for split in (train, test):
        assert sum(s.label for s in split) * 2 == len(split)
        assert set(s.topic for s in split) == set(textdata.STATEMENT_TOPICS)
        assert all(s.text.endswith(".") for s in split)
    assert not {s.text for s in train} & {s.text for s in test}
    assert train == textdata.statements("train")
    assert textdata.Statement("The capital of France is Paris.", True, "capital", "France") in train + test
    pairs = {}
    for s in train + test:  # every fact once true, once false, in one split
        pairs.setdefault((s.topic, s.fact), []).append(s)
    assert all(sorted(x.label for x in p) == [False, True] for p in pairs.values())
    falses = [s for s in train + test if s.topic == "capital" and not s.label and "France is" in s.text]
    assert falses and all("Paris" not in s.text for s in falses)


def test_boolq_offline_error_is_fast(monkeypatch, tmp_path):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    monkeypatch.setattr(datasets.config, "HF_HUB_CACHE", str(tmp_path), raising=False)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=2.0: False)
    start = time.perf_counter()
    with pytest.raises(MissingModelError, match="google/boolq"):
        textdata.boolq("test", 10)
    assert time.perf_counter() - start < 5


def test_held_out_text():
    text = textdata.held_out_text()
    assert len(text.split()) > 800 and text.isascii()
