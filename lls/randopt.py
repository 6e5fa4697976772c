"""RandOpt ("neural thickets", Gan et al. 2026): keep the top K of N random perturbations and
let them vote. The perturbations are the search engine's (:func:`lls.search.evaluate`),
regenerated from their seeds for the test predictions, never stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lls.params import ParamSpace
from lls.search import evaluate


def majority_vote(predictions: Sequence[Sequence[Hashable]]) -> list[Hashable]:
    """Per-example majority over models: ``predictions[m][e]`` is model m's answer to example e.

    Ties go to the answer of the earliest model among the tied ones (models in rank order).
    """
    votes = []
    for answers in zip(*predictions, strict=True):
        counts = Counter(answers)
        top = max(counts.values())
        votes.append(next(a for a in answers if counts[a] == top))
    return votes


@dataclass
class RandOptResult:
    """Top-K perturbation selection with a majority-vote ensemble (RandOpt, "neural thickets").

    ``scores`` (N,) selection scores (higher is better) of ``theta0 + eps_i``; ``top`` the K
    selected indices, best first; ``base_accuracy`` the unperturbed model's test accuracy;
    ``member_accuracy`` (K,) each selected model's; ``ensemble_accuracy`` the vote's.
    """

    scores: np.ndarray
    top: list[int]
    base_accuracy: float
    member_accuracy: np.ndarray
    ensemble_accuracy: float


def randopt(space: ParamSpace, score: Callable[[], float], predict: Callable[[], Sequence[Hashable]],
            targets: Sequence[Hashable], n: int, k: int, sigma: float, seed: int, *,
            basis: torch.Tensor | None = None, progress: bool = True) -> RandOptResult:
    """Score ``n`` perturbations on a selection set, keep the top ``k``, vote on a test set.

    ``score()`` rates the current model on the selection set (higher is better, e.g. minus a
    loss); ``predict()`` returns its answers to the test examples, compared with ``targets``.
    The selected perturbations are regenerated from their seeds for the test predictions.
    """
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    scores = np.asarray(evaluate(space, score, seed, [(i, 1) for i in range(n)], sigma, basis=basis,
                                 progress=progress, desc="RandOpt selection"), dtype=float)
    top = [int(i) for i in np.argsort(-scores, kind="stable")[:k]]
    preds = evaluate(space, predict, seed, [(i, 1) for i in top], sigma, basis=basis,
                     progress=progress, desc="RandOpt top-k predictions")
    targets = list(targets)

    def accuracy(answers):
        return float(np.mean([a == t for a, t in zip(answers, targets, strict=True)]))

    return RandOptResult(scores=scores, top=top, base_accuracy=accuracy(predict()),
                         member_accuracy=np.asarray([accuracy(p) for p in preds]),
                         ensemble_accuracy=accuracy(majority_vote(preds)))
