"""Every chapter's presets validate; bad input fails at once with the valid choices listed."""

import pytest

from lls.config import field_docs
from lls.errors import ConfigError
from lls.presets import CHAPTERS, PRESETS, chapter_params, chapter_presets, resolve


@pytest.mark.parametrize("chapter", list(CHAPTERS))
def test_every_chapter_has_every_preset_and_documents_every_parameter(chapter):
    instances = chapter_presets(chapter)
    assert set(instances) == set(PRESETS)
    for preset, cfg in instances.items():
        assert cfg.preset == preset and cfg.chapter == chapter
        assert cfg.validate() is cfg
    docs = field_docs(type(instances["cpu"]))
    assert all(docs.get(name) for name in chapter_params(chapter)), "a parameter has no docstring line"


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="smoke.*cpu.*paper"):
        resolve("01_theory", "gpu")


def test_unknown_parameter_lists_the_parameters():
    with pytest.raises(ConfigError, match=r"Unknown parameter\(s\) \['nope'\].*seed"):
        resolve("01_theory", "cpu", nope=3)


def test_unknown_chapter():
    with pytest.raises(ConfigError, match="01_theory"):
        resolve("06_nothing", "cpu")


def test_seed_from_string_and_none_means_default():
    cfg = resolve("01_theory", "smoke", seed="5")
    assert cfg.seed == 5 and cfg.preset == "smoke"
    assert resolve("01_theory", "smoke", seed=None).seed == chapter_presets("01_theory")["smoke"].seed


@pytest.mark.parametrize("chapter, old, new", [
    ("02_synthetic", "eval_n", "n_eval"), ("03_lora_drift", "steps_recover", "recover_steps"),
    ("03_lora_drift", "drift_every", "checkpoint_every"), ("04_random_search", "lora_r", "lora_rank"),
    ("05_steering", "n_test", "n_eval"),
])
def test_old_spellings_name_the_new_one(chapter, old, new):
    with pytest.raises(ConfigError, match=f"'{old}' is now called '{new}'"):
        resolve(chapter, "smoke", **{old: 3})


SHARED = {"n_eval", "checkpoint_every", "n_grad_batches", "lora_rank", "lora_alpha", "k_max", "recover_steps",
          "forget_steps", "lr", "n_seeds", "hutchinson_probes"}
RETIRED = {"eval_n", "n_test", "drift_every", "n_grad", "rank", "lora_r", "alpha", "record_first", "steps_a",
           "steps_b", "steps_recover", "tune_lr", "hutchinson", "hutchinson_samples", "lm_model"}


def test_one_spelling_per_parameter_across_chapters():
    names = {name for chapter in CHAPTERS for name in chapter_params(chapter)}
    assert not names & RETIRED
    assert len(names & SHARED) >= 8
