"""The format-tuned model variant of chapter 5 (uncached helpers; the cached tuning is
:func:`lls.chapters.steering.protocol.format_tuning`).

SmolLM2-135M zero-shot says " True" to almost every statement. The *tuned* variant learns the
answer format with a short LoRA tuning on true/false statements of topics disjoint from every
topic the chapter evaluates, two kinds in equal numbers:

* **factual relations** that no evaluated topic shares (:func:`relations`, from
  ``lls/data/tuning_facts.json``: a country's main language and currency, young animals, usual
  colours, animal sounds, workplaces, sports' hitting tools), e.g. "The currency of Japan is the
  yen." (true) / "The currency of Japan is the rand." (false): the false object is another fact's
  object of the same relation, so only knowledge tells the two apart, as in the evaluated truth
  statements;
* **word-task statements** made from the train items of :mod:`lls.textdata`'s word tasks (plural,
  past tense, number words), e.g. "Plural of mouse: mice." / "Plural of mouse: cats.".

The adapter is merged into the weights, so the tuned model is an ordinary model for every later
step (CAA, gradient steps, steering).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import random
from importlib import resources

import numpy as np
import torch

from lls import lora, steering, textdata
from lls.seeds import derive, generator

TUNING_TASKS = ("plural", "past_tense", "number_words")
"""The word tasks the tuning statements are made from (their topics: ``tune/<task>``)."""


@functools.cache
def relations() -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    """``{relation: (template, ((subject, object), ...))}`` of ``lls/data/tuning_facts.json``."""
    raw = json.loads(resources.files("lls").joinpath("data/tuning_facts.json").read_text(encoding="utf-8"))
    return {k: (v["template"], tuple(tuple(f) for f in v["facts"])) for k, v in raw.items()}


def relation_statements(seed: int) -> list[textdata.Statement]:
    """Every fact of :func:`relations` once true and once false (topic ``tune/<relation>``): the
    false object is another fact's object of the same relation, differing from the true one
    (stream ``"tuning relation twins"`` of ``seed``)."""
    rng = random.Random(derive(seed, "tuning relation twins"))
    out = []
    for relation, (template, facts) in relations().items():
        for subject, true in facts:
            wrong = rng.choice(sorted({y for x, y in facts if y != true and x != subject}))
            fact = f"{relation}/{subject}"
            out.append(textdata.Statement(template.format(x=subject, y=true), True, f"tune/{relation}", fact))
            out.append(textdata.Statement(template.format(x=subject, y=wrong), False, f"tune/{relation}", fact))
    return out


def tuning_statements(seed: int) -> list[textdata.Statement]:
    """The tuning set: :func:`relation_statements` and as many word-task statements
    (:func:`word_statements`, the same number of items from each of :data:`TUNING_TASKS`)."""
    facts = relation_statements(seed)
    return facts + word_statements(math.ceil(len(facts) / (2 * len(TUNING_TASKS))), seed)


def word_statements(n_per_task: int, seed: int) -> list[textdata.Statement]:
    """``2 * n_per_task`` statements per task of :data:`TUNING_TASKS` (train items only): each
    item once true and once with another item's answer (stream ``"tuning twins"`` of ``seed``)."""
    rng = random.Random(derive(seed, "tuning twins"))
    out = []
    for task in TUNING_TASKS:
        items = textdata.examples(task, "train", n_per_task, seed=seed)
        for i, ex in enumerate(items):
            wrong = rng.choice([e.answer for j, e in enumerate(items) if j != i and e.answer != ex.answer])
            fact = f"{task}/{ex.prompt}"
            out.append(textdata.Statement(f"{ex.prompt}{ex.answer}.", True, f"tune/{task}", fact))
            out.append(textdata.Statement(f"{ex.prompt}{wrong}.", False, f"tune/{task}", fact))
    return out


def add_seeded_lora(model, rank: int, seed: int):
    """A LoRA-wrapped copy of ``model`` (rank ``rank``, alpha ``2 * rank``; A from stream
    ``"tuning lora init"`` of ``seed``) and its adapter :class:`ParamSpace`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive(seed, "tuning lora init"))
        peft_model = lora.add_lora(copy.deepcopy(model), r=rank, alpha=2 * rank)
    return peft_model, lora.adapter_space(peft_model)


def tuning_batches(tokenizer, statements: list, batch: int, seed: int, device: str):
    """``step -> StatementBatch``: ``batch`` statements drawn without replacement within each pass
    (stream ``"tuning batches"`` of ``seed``)."""
    gen = generator(seed, "tuning batches")
    order: list[int] = []

    def at(_step: int) -> steering.StatementBatch:
        while len(order) < batch:
            order.extend(torch.randperm(len(statements), generator=gen).tolist())
        picked = [statements[order.pop()] for _ in range(batch)]
        return steering.encode_statements(tokenizer, picked, device=device)
    return at


def merged(model, rank: int, seed: int, adapter: np.ndarray):
    """``model`` with the tuned adapter ``adapter`` (a vector of the adapter space) merged in."""
    peft_model, space = add_seeded_lora(model, rank, seed)
    with torch.no_grad():
        space.set_(torch.as_tensor(adapter, dtype=torch.float32))
    model = peft_model.merge_and_unload()
    for p in model.parameters():  # peft froze the base weights; the steps differentiate them
        p.requires_grad_(True)
    return model
