"""The papermill runner's argument handling (execution itself is covered by test_book.py)."""

import pytest

from lls.cli import main
from lls.errors import ConfigError
from lls.runner import chapter_name, split_overrides


@pytest.mark.parametrize("text", ["03_lora_drift", "03", "lora_drift", "notebooks/03_lora_drift.md"])
def test_chapter_names(text):
    assert chapter_name(text) == "03_lora_drift"


def test_unknown_notebook_lists_chapters():
    with pytest.raises(ConfigError, match="01_theory, 02_synthetic"):
        chapter_name("07_other")


def test_run_all_rejects_a_parameter_no_chapter_has():
    with pytest.raises(ConfigError, match="No chapter has"):
        split_overrides({"no_such_parameter": "1"})


def test_run_all_gives_seed_to_every_chapter():
    per = split_overrides({"seed": "2"})
    assert all(values == {"seed": "2"} for values in per.values())


def test_cli_fails_fast_with_exit_2(capsys, isolated):
    assert main(["run", "01", "--preset", "nope"]) == 2
    assert "Unknown preset 'nope'" in capsys.readouterr().err
    assert main(["run", "01", "-p", "seed", "-1"]) == 2
    assert "outside its range" in capsys.readouterr().err
    assert main(["run"]) == 2
    assert not (isolated / "results").exists()  # nothing ran, nothing was written


def test_params_lists_every_chapter(capsys):
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    assert all(f"{ch}:" in out for ch in ("01_theory", "05_steering"))


def test_run_key_follows_the_code_the_notebook_reaches():
    from lls.runner import notebook_modules

    modules = notebook_modules("03_lora_drift")
    assert {"lls.chapters.lora_drift", "lls.notebook", "lls.plots"} <= set(modules)
    assert "lls.runner" not in modules and "lls.book" not in modules
