"""Chapter 5's data plumbing: which statements, how they split into halves, which blocks to steer."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import torch

from lls import textdata
from lls.errors import ConfigError
from lls.seeds import generator

FIELDS = ("text", "label", "topic", "fact")
#: Fractions of the facts of each topic held out for validation and for test (:func:`three_way`).
HELD_OUT = 0.25


def load_statements(path: str) -> list[textdata.Statement]:
    """Statements from a JSON file holding a list of ``{"text", "label", "topic", "fact"}`` objects
    (``label`` true/false; ``fact`` names what a true statement and its false twin share). A
    :class:`ConfigError` names the file, the item and the line of a missing or ill-typed field."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
        items = json.loads(raw)
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"statements={path!r}: cannot read it as JSON ({err}). Pass a JSON file holding a "
                          f"list of objects with the fields {list(FIELDS)}.") from None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"statements={path!r} must hold a non-empty JSON list of objects with the fields "
                          f"{list(FIELDS)}.")
    starts = [m.start() for m in re.finditer(r"\{", raw)]
    out = []
    for i, item in enumerate(items):
        line = raw.count("\n", 0, starts[i]) + 1 if i < len(starts) else "?"
        missing = [f for f in FIELDS if not isinstance(item, dict) or f not in item]
        if missing:
            raise ConfigError(f"statements={path!r}: item {i} (line {line}) has no field {missing[0]!r}; every "
                              f"item needs {list(FIELDS)}.")
        if not isinstance(item["label"], bool) or not all(isinstance(item[f], str) for f in ("text", "topic", "fact")):
            raise ConfigError(f"statements={path!r}: item {i} (line {line}): 'label' must be true or false and "
                              f"'text', 'topic', 'fact' strings.")
        out.append(textdata.Statement(item["text"], item["label"], item["topic"], item["fact"]))
    if all(s.label for s in out) or not any(s.label for s in out):
        raise ConfigError(f"statements={path!r} needs both true and false statements.")
    return out


def labelled_statements(data: str, n: int) -> list:
    """Every labelled statement of the chapter: the book's facts (both fixed splits), the first
    ``n`` BoolQ questions of each BoolQ split, or the statements of a JSON file (``data`` a path)."""
    if data == "statements":
        return textdata.statements("train") + textdata.statements("test")
    if data == "boolq":
        return textdata.boolq("train", n) + textdata.boolq("test", n)
    return load_statements(data)


def three_way(statements: list, seed: int) -> tuple[list, list, list]:
    """``(train, validation, test)``: the facts of each topic shuffled (stream ``"three-way split"``
    of ``seed``), :data:`HELD_OUT` of them to test, as many to validation, the rest to train; the
    true and false versions of a fact stay together (:func:`fact_groups`). Validation picks every
    layer and scale; test is read once, for the reported numbers."""
    gen = generator(seed, "three-way split")
    by_topic = groups_by_topic(statements)
    parts: tuple[list, list, list] = ([], [], [])
    for topic in sorted(by_topic):
        groups = by_topic[topic]
        order = torch.randperm(len(groups), generator=gen).tolist()
        cut = max(1, round(HELD_OUT * len(groups))) if len(groups) >= 3 else 0
        for rank, i in enumerate(order):
            part = 2 if rank < cut else 1 if rank < 2 * cut else 0
            parts[part].extend(groups[i])
    return parts


def groups_by_topic(statements: list) -> dict[str, list[list]]:
    """The :func:`fact_groups` of ``statements``, by topic."""
    by_topic: dict[str, list] = {}
    for group in fact_groups(statements):
        by_topic.setdefault(group[0].topic, []).append(group)
    return by_topic


def fact_groups(statements: list) -> list[list]:
    """Group statements by ``(topic, fact)`` where they name their fact (true ones first, in input
    order of the group's first member); where they do not, see :func:`_prefix_groups`."""
    if not all(getattr(s, "fact", "") for s in statements):
        return _prefix_groups(statements)
    groups: dict[tuple[str, str], list] = {}
    for s in statements:
        groups.setdefault((s.topic, s.fact), []).append(s)
    return [sorted(g, key=lambda s: not s.label) for g in groups.values()]


def _prefix_groups(statements: list) -> list[list]:
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
    by_topic = groups_by_topic(statements)
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
