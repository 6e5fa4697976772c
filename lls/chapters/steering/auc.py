"""AUROC with a bootstrap interval, and the gate a tuned model must pass before chapter 5 uses it."""

from __future__ import annotations

import numpy as np
from scipy import stats

from lls.seeds import derive
from lls.stats import Interval


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` ``(n,)`` for ``labels`` ``(n,)`` bool (ties count
    half): the chance that a random positive scores above a random negative."""
    labels = np.asarray(labels, dtype=bool)
    ranks = stats.rankdata(scores)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auroc_interval(scores: np.ndarray, labels: np.ndarray, seed: int, resamples: int = 2000) -> Interval:
    """AUROC with a 95 % percentile bootstrap interval over statements (resampled within each
    label, so both stay present; stream ``"auroc bootstrap"`` of ``seed``)."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    rng = np.random.default_rng(derive(seed, "auroc bootstrap"))
    pos, neg = scores[labels], scores[~labels]
    both = np.array([True] * len(pos) + [False] * len(neg))
    draws = [auroc(np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]), both)
             for _ in range(resamples)]
    low, high = np.quantile(draws, [0.025, 0.975])
    return Interval(auroc(scores, labels), float(np.std(draws, ddof=1)), len(scores), float(low), float(high),
                    f"95% percentile bootstrap over {len(scores)} statements (one tuned model); sd = bootstrap SE")


def clears_gate(found: Interval, gate: float) -> bool:
    """Whether a tuned model's validation AUROC interval lets chapter 5 use it: wholly above
    ``gate`` (0 turns the gate off)."""
    return gate == 0.0 or (found.known and found.low > gate)


def validation_auroc(tuning, seed: int) -> Interval:
    """The tuned model's AUROC interval (:func:`auroc_interval`, bootstrap stream of ``seed``) on the
    *validation* truth statements: what the gate reads."""
    keep = np.array([s == "validation" for s in tuning.split])
    return auroc_interval(tuning.after[keep], tuning.labels[keep], seed)


def tuning_gate(tuning, seed: int, gate: float = 0.5) -> str:
    """'' when the tuned model's AUROC on the *validation* truth statements has its interval
    wholly above ``gate`` (0.5: chance; 0 turns the gate off); otherwise the sentence saying why the
    tuned variant is not used."""
    found = validation_auroc(tuning, seed)
    if clears_gate(found, gate):
        return ""
    return (f"the format-tuned {tuning.model} is not clear of {gate:g} on the {found.n} held-out validation statements "
            f"(AUROC {found.mean:.2f}, 95 % interval {found.low:.2f} to {found.high:.2f}): the tuned variant stops here")
