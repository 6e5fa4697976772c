"""Claim metrics and the generated scorecard."""

import json

import pytest

from lls import scorecard
from lls.claims import REGISTRY, Claim, threshold
from lls.metrics import save
from lls.presets import resolve
from lls.scorecard import scorecard_markdown
from lls.stats import mean_spread


def test_claim_validation():
    with pytest.raises(ValueError, match="unknown claim id"):
        Claim("C99", 1.0, "reproduced", "x")
    with pytest.raises(ValueError, match="verdict"):
        Claim("C4", 1.0, "great", "x")
    with pytest.raises(ValueError, match="not finite"):
        Claim("C4", float("nan"), "partly", "x")


def test_paper_values_and_kinds_come_from_the_registry():
    c4 = Claim("C4", 0.5, "partly", "x")
    assert (c4.paper, c4.paper_unit, c4.kind) == (0.77, "fraction of ‖Δ‖²", "empirical")
    assert Claim("C9", 1.0, "partly", "x").paper_unit is None  # the paper's unit is unknown
    assert Claim("C7", 1e-14, "reproduced", "x").kind == "math"
    assert set(REGISTRY) == {f"C{i}" for i in range(1, 12)}
    assert threshold("C3", "overlap_halved") == 0.5
    with pytest.raises(KeyError, match="has no threshold"):
        threshold("C3", "nope")


def test_mean_spread():
    assert mean_spread([1.0]) == (1.0, None)
    m, s = mean_spread([1.0, 3.0])
    assert m == 2.0 and s == pytest.approx(2 ** 0.5)


def test_save_and_scorecard(isolated):
    cfg = resolve("03_lora_drift", "smoke")
    path = save(cfg, [Claim("C4", 0.61, "partly", "prefix capture at k=10", "", 0.05, [0, 1, 2])])
    payload = json.loads(path.read_text())
    claim = payload["claims"][0]
    assert {"id", "value", "paper", "verdict", "preset", "seeds"} <= set(claim)
    assert claim["preset"] == "smoke" and payload["provenance"]["preset"] == "smoke"
    card = scorecard_markdown("smoke")
    assert "| C4 |" in card and "| 0.61 |" in card and "± 0.05 (SD across seeds)" in card and "**partly**" in card
    assert "| C11 |" in card and "not run" in card  # a claim no chapter measured
    assert scorecard_markdown("cpu").startswith("Verdicts on cpu: not run: 11.")


def test_scorecard_rows_name_their_qualifiers_kind_and_interval(isolated):
    cfg = resolve("04_random_search", "smoke")
    save(cfg, [Claim("C5", 0.97, "reproduced", "searches", n=6, ci=[0.9, 1.04], interval_method="95% t over 6",
                     kind="empirical"),
               Claim("C7", 1e-15, "verified (math)", "quadratic", interval_method="no interval: deterministic")])
    card = scorecard_markdown("smoke")
    assert "| C5 | " in card and "| empirical |" in card and "[0.9, 1.04] (95% t over 6)" in card
    assert "| no interval: deterministic |" in card and "**verified (math)**" in card
    assert scorecard._label({"id": "C8", "concept": "plural", "model_variant": "tuned"}) == "C8 (plural, tuned)"
    assert scorecard._label({"id": "C8", "concept": "truth", "model_variant": "untuned", "reading": "ΔCAA"}) == \
        "C8 (truth, untuned, ΔCAA)"
    assert scorecard._label({"id": "C8", "concept": ""}) == "C8"
