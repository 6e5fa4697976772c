"""Presets and parameter validation: bad input fails at once with the valid choices listed."""

import pytest

from lls.errors import ConfigError
from lls.presets import CHAPTERS, PRESETS, Config, Param, chapter_params, resolve


@pytest.mark.parametrize("chapter", list(CHAPTERS))
def test_every_chapter_has_a_default_for_every_preset(chapter):
    for name, param in chapter_params(chapter).items():
        assert set(param.defaults) == set(PRESETS), f"{chapter}.{name}"
        for preset in PRESETS:
            assert param.check(name, param.defaults[preset]) == param.defaults[preset]


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="smoke.*cpu.*paper"):
        resolve("01_theory", "gpu")


def test_unknown_parameter_lists_the_parameters():
    with pytest.raises(ConfigError, match=r"Unknown parameter\(s\) \['nope'\].*seed"):
        resolve("01_theory", "cpu", nope=3)


def test_unknown_chapter():
    with pytest.raises(ConfigError, match="01_theory"):
        resolve("06_nothing", "cpu")


def test_types_and_ranges():
    p = Param(int, "a count", {k: 3 for k in PRESETS}, low=1, high=10)
    assert p.check("n", "7") == 7
    with pytest.raises(ConfigError, match="type int"):
        p.check("n", 2.5)
    with pytest.raises(ConfigError, match="type int"):
        p.check("n", True)
    with pytest.raises(ConfigError, match="outside its range"):
        p.check("n", 11)
    f = Param(float, "a rate", {k: 0.1 for k in PRESETS}, low=0)
    assert f.check("lr", 1) == 1.0 and f.check("lr", "1e-3") == 1e-3
    b = Param(bool, "a switch", {k: False for k in PRESETS})
    assert b.check("on", "true") is True
    with pytest.raises(ConfigError):
        b.check("on", "maybe")
    s = Param(str, "a model", {k: "a" for k in PRESETS}, choices=("a", "b"))
    with pytest.raises(ConfigError, match=r"\['a', 'b'\]"):
        s.check("model", "c")


def test_seed_from_string_and_none_means_default():
    cfg = resolve("01_theory", "smoke", seed="5")
    assert cfg.seed == 5 and cfg.preset == "smoke"
    assert resolve("01_theory", "smoke", seed=None).seed == chapter_params("01_theory")["seed"].defaults["smoke"]


def test_tag_names_overrides_only():
    assert resolve("01_theory", "cpu").tag() == "cpu"
    a, b = resolve("01_theory", "cpu", seed=1).tag(), resolve("01_theory", "cpu", seed=2).tag()
    assert a.startswith("cpu-") and a != b


def test_config_pickles_by_value():
    import pickle

    cfg = resolve("01_theory", "cpu", seed=3)
    back = pickle.loads(pickle.dumps(cfg))
    assert isinstance(back, Config) and back.params == cfg.params
