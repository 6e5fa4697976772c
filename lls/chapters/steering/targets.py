"""Chapter 5's steering targets: per-unit margins and correctness, gains, the validation choice.

Two targets read the numbers of :func:`lls.steering.steered_scores`:

* ``question``: per statement, the answer score log p(" True") - log p(" False") signed by the
  label (nats); correct when positive. Only for ``truth`` (the paper's setup).
* ``likelihood``: per twin pair, log p(positive text) - log p(negative text) (nats); correct when
  positive (the true / plural / past / worded twin is the more likely one).

A *unit* is a statement (question) or a pair (likelihood); intervals are over units.
"""

from __future__ import annotations

import numpy as np

TARGETS = ("question", "likelihood")


def targets_of(concept: str, variant: str) -> tuple[str, ...]:
    """The targets a concept is measured on, the primary one (the one validation picks by) first:
    truth on the tuned model by its answer; truth on the untuned model by likelihood (it cannot
    answer), then its answer (the paper's setup); the word concepts by likelihood only."""
    if concept != "truth":
        return ("likelihood",)
    return ("question", "likelihood") if variant == "tuned" else ("likelihood", "question")


def pair_index(statements: list) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(positive, negative)`` of each twin pair (same topic and fact) of ``statements``."""
    first: dict[tuple[str, str], dict[bool, int]] = {}
    for i, s in enumerate(statements):
        first.setdefault((s.topic, s.fact), {})[bool(s.label)] = i
    pairs = [(d[True], d[False]) for d in first.values() if True in d and False in d]
    return np.array([p for p, _ in pairs], dtype=int), np.array([n for _, n in pairs], dtype=int)


def margins(numbers: dict, statements: list, target: str) -> np.ndarray:
    """``(units,)`` signed margins (nats) of ``target``; positive = the intended side."""
    if target == "question":
        sign = np.array([1.0 if s.label else -1.0 for s in statements])
        return np.asarray(numbers["score"], dtype=float) * sign
    pos, neg = pair_index(statements)
    logprob = np.asarray(numbers["logprob"], dtype=float)
    return logprob[pos] - logprob[neg]


def correct(numbers: dict, statements: list, target: str) -> np.ndarray:
    """``(units,)`` 1.0 where the unit is on the intended side, else 0.0."""
    return (margins(numbers, statements, target) > 0).astype(float)


def choose(val_numbers: dict, base: dict, statements: list, target: str) -> tuple:
    """The key of ``val_numbers`` (``{key: numbers}``) with the largest validation gain in
    accuracy of ``target`` over ``base``, ties broken by the mean margin gain."""
    acc0, m0 = correct(base, statements, target).mean(), margins(base, statements, target).mean()
    return max(val_numbers, key=lambda k: (correct(val_numbers[k], statements, target).mean() - acc0,
                                           margins(val_numbers[k], statements, target).mean() - m0))


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold ``t`` that maximises the accuracy of "True iff score > t" on ``scores``
    (``(n,)``, labels ``(n,)`` bool): a pure bias shift, no steering (the smallest such t on ties)."""
    candidates = np.concatenate([[-np.inf], np.sort(scores)])
    accuracy = [((scores > t) == labels).mean() for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])
