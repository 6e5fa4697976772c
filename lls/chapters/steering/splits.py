"""Chapter 5's data plumbing: which statements, how they split into halves, which blocks to steer."""

from __future__ import annotations

import os

import numpy as np
import torch

from lls import textdata
from lls.seeds import generator


def labelled_statements(data: str, split: str, n: int) -> list:
    """Labelled statements of ``split``: all of the book's facts, or the first ``n`` BoolQ questions."""
    return textdata.boolq(split, n) if data == "boolq" else textdata.statements(split)


def fact_groups(statements: list) -> list[list]:
    """Group each true statement with the false statement of its topic that shares the longest
    text prefix (its false twin, e.g. "The capital of Peru is Lima." / "... is Quito."); one with
    no common prefix at all stays alone. Unpaired data (BoolQ) get arbitrary pairs, which only
    move together in :func:`split_halves`. Groups keep the input order of their first member."""
    groups, taken = [], set()
    for i, s in enumerate(statements):
        if not s.label or i in taken:
            continue
        partners = [j for j, f in enumerate(statements) if not f.label and j not in taken and f.topic == s.topic]
        j = max(partners, key=lambda j: len(os.path.commonprefix([s.text, statements[j].text])), default=None)
        taken.add(i)
        if j is not None and os.path.commonprefix([s.text, statements[j].text]).strip():
            taken.add(j)
            groups.append((i, [s, statements[j]]))
        else:
            groups.append((i, [s]))
    groups += [(i, [s]) for i, s in enumerate(statements) if i not in taken]
    return [g for _, g in sorted(groups, key=lambda item: item[0])]


def split_halves(statements: list, seed: int) -> tuple[list, list]:
    """A random split of ``statements`` into two halves by fact, stratified by topic: the true and
    false versions of a fact (:func:`fact_groups`) stay together, so CAA within a half contrasts
    the same subjects, and both halves hold the same mix of topics. Otherwise CAA picks up which
    subjects landed on which side, not truth. Streams: ``"split halves"`` (which groups go to which
    half) and ``"split order"`` (the order within each half), both of ``seed``."""
    gen = generator(seed, "split halves")
    by_topic: dict[str, list] = {}
    for group in fact_groups(statements):
        by_topic.setdefault(group[0].topic, []).append(group)
    first, second = [], []
    for topic in sorted(by_topic):
        groups = by_topic[topic]
        order = torch.randperm(len(groups), generator=gen).tolist()
        half = len(groups) // 2
        first += [s for i in order[:half] for s in groups[i]]
        second += [s for i in order[half:] for s in groups[i]]
    mix = generator(seed, "split order")
    return ([first[i] for i in torch.randperm(len(first), generator=mix).tolist()],
            [second[i] for i in torch.randperm(len(second), generator=mix).tolist()])


def grid_layer_ids(n_layers: int, count: int, layer: int) -> list[int]:
    """``count`` blocks evenly spaced from the second to the second-to-last of ``n_layers`` (all
    blocks of a model that has fewer), the one nearest the steering block ``layer`` replaced by it."""
    if n_layers <= 2:
        return list(range(n_layers))
    ids = [int(round(x)) for x in np.linspace(1, n_layers - 2, min(count, n_layers - 2))]
    ids[int(np.argmin([abs(i - layer) for i in ids]))] = layer
    return sorted(set(ids))
