"""Typed chapter configurations: docstrings per field, coercion, bounds, rules, renames, devices."""

import pickle
from dataclasses import dataclass
from typing import ClassVar

import pytest

from lls.config import ChapterConfig, field_docs, param, presets, with_values
from lls.errors import ConfigError


@dataclass(frozen=True)
class Toy(ChapterConfig):
    """A made-up chapter with one field of every kind."""

    chapter: ClassVar[str] = "99_toy"
    renamed: ClassVar[dict] = {"steps_old": "steps"}

    steps: int = param(10, low=1, high=100)
    """training steps"""
    rate: float = param(0.1, low=0.0)
    """learning rate"""
    model: str = param("a", choices=("a", "b"))
    """which model"""
    verbose: bool = False
    """print more"""

    def rules(self):
        return [(self.steps >= 2 * self.rate, "steps must be at least twice the rate")]


PRESETS = presets(Toy, smoke={"steps": 2}, cpu={}, paper={"steps": 50, "model": "b"})


def test_docstring_under_each_field_is_read():
    docs = field_docs(Toy)
    assert docs["steps"] == "training steps" and docs["verbose"] == "print more"
    assert "base random seed" in docs["seed"]  # inherited from ChapterConfig


def test_presets_are_validated_instances():
    assert PRESETS["smoke"].steps == 2 and PRESETS["smoke"].preset == "smoke"
    assert PRESETS["paper"].model == "b" and PRESETS["cpu"] == Toy()
    with pytest.raises(ConfigError, match="outside its range"):
        presets(Toy, smoke={"steps": 0})


def test_values_from_the_command_line_are_coerced():
    cfg = with_values(PRESETS["cpu"], {"steps": "7", "rate": "1e-3", "verbose": "yes", "seed": None})
    assert (cfg.steps, cfg.rate, cfg.verbose, cfg.seed) == (7, 1e-3, True, 0)
    assert with_values(PRESETS["cpu"], {"rate": 1}).rate == 1.0


@pytest.mark.parametrize("values, message", [
    ({"steps": 2.5}, "type int"),
    ({"steps": True}, "type int"),
    ({"steps": "many"}, "cannot be read"),
    ({"steps": 101}, "outside its range"),
    ({"model": "c"}, r"\['a', 'b'\]"),
    ({"verbose": "maybe"}, "type bool"),
    ({"steps": 1, "rate": 3.0}, "at least twice the rate"),
    ({"nope": 1}, r"Unknown parameter\(s\) \['nope'\].*steps \(int: training steps\)"),
    ({"steps_old": 3}, "'steps_old' is now called 'steps'"),
    ({"device": "tpu"}, "auto, cpu, cuda or cuda:N"),
])
def test_bad_values_fail_with_what_to_do(values, message):
    with pytest.raises(ConfigError, match=message):
        with_values(PRESETS["cpu"], values)


def test_cuda_without_a_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA device"):
        with_values(PRESETS["cpu"], {"device": "cuda"})
    assert with_values(PRESETS["cpu"], {"device": "auto"}).torch_device() == "cpu"


def test_tag_names_overrides_only_and_configs_pickle_by_value():
    assert PRESETS["cpu"].tag() == "cpu" and PRESETS["paper"].tag() == "paper"
    a, b = with_values(PRESETS["cpu"], {"seed": 1}), with_values(PRESETS["cpu"], {"seed": 2})
    assert a.tag().startswith("cpu-") and a.tag() != b.tag() and a.overrides() == {"seed": 1}
    assert pickle.loads(pickle.dumps(a)) == a


def test_a_cpu_only_chapter_says_so_when_asked_for_cuda():
    from lls.presets import resolve

    assert resolve("02_synthetic", "smoke").torch_device() == "cpu"
    assert resolve("02_synthetic", "smoke", device="auto").torch_device() == "cpu"
    with pytest.raises(ConfigError, match="runs on the CPU only"):
        resolve("02_synthetic", "smoke", device="cuda:0")
