"""Offline text data: small text tasks for LoRA, labelled true/false statements, held-out prose.

* **Tasks** (:data:`TASKS`): prompt -> short answer, e.g. ``"Plural of mouse:"`` -> ``" mice"``.
  Word tasks draw from lists written for this book (``lls/data/words.json``); ``arithmetic`` and
  ``number_words`` are generated. Each task's items are split once, by a fixed shuffle, into a
  train part (80 %) and a disjoint held-out test part (20 %), so test prompts are never trained
  on. :data:`TASK_PAIRS` forms two disjoint pairs (A, B) of tasks that share an input domain
  (English words; numbers), so that learning B interferes with A: the forgetting/recovery
  protocol of chapter 3.
* **Statements** (:func:`statements`): facts a 135M model partly knows (capitals, continents,
  chemical symbols, small sums, opposites), each stated once truly and once falsely (the false
  object is another fact's object), so both splits are exactly balanced; the split is by fact,
  fixed. :func:`boolq` gives BoolQ (``paper`` preset) in the same form, from the hub.
* **Held-out prose** (:func:`held_out_text`): English text written for this book (so no model
  has seen it), for perplexity.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from importlib import resources

import torch

from lls.errors import ConfigError, MissingModelError

#: Prompt template and answer template of each task (``{x}``: input, ``{y}``: answer).
_FORMATS: dict[str, tuple[str, str]] = {
    "antonym": ("Antonym of {x}:", " {y}"),
    "plural": ("Plural of {x}:", " {y}"),
    "past_tense": ("Past tense of {x}:", " {y}"),
    "capital": ("Capital of {x}:", " {y}"),
    "arithmetic": ("{x} =", " {y}"),
    "number_words": ("{x} in words:", " {y}"),
}
TASKS: tuple[str, ...] = tuple(_FORMATS)
#: Two disjoint task pairs (A, B): learn A, forget it by learning B, recover A.
TASK_PAIRS: tuple[tuple[str, str], ...] = (("plural", "past_tense"), ("arithmetic", "number_words"))
SPLITS = ("train", "test")
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Example:
    """One task example: the model reads ``prompt`` and should continue with ``answer``."""

    prompt: str
    answer: str


@dataclass(frozen=True)
class Statement:
    """A labelled statement, e.g. ``Statement("The capital of France is Paris.", True, "capital",
    "France")``; ``fact`` names what its true and false versions share (empty: a statement alone)."""

    text: str
    label: bool
    topic: str
    fact: str = ""


@functools.cache
def _words() -> dict[str, list[tuple[str, str]]]:
    text = resources.files("lls").joinpath("data/words.json").read_text(encoding="utf-8")
    return {k: [tuple(pair) for pair in v] for k, v in json.loads(text).items()}


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1000, e.g. 347 -> ``"three hundred forty-seven"``."""
    if not 0 <= n < 1000:
        raise ConfigError(f"number_to_words takes 0 <= n < 1000, got {n}.")
    hundreds, rest = divmod(n, 100)
    if rest < 20:
        tail = _ONES[rest]
    else:
        tail = _TENS[rest // 10] + ("" if rest % 10 == 0 else "-" + _ONES[rest % 10])
    if hundreds == 0:
        return tail
    return f"{_ONES[hundreds]} hundred" + ("" if rest == 0 else f" {tail}")


def _items(task: str) -> list[tuple[str, str]]:
    """All (input, answer) items of ``task``, in a fixed order."""
    if task == "arithmetic":
        return [(f"{a} + {b}", str(a + b)) for a in range(50) for b in range(50)]
    if task == "number_words":
        return [(str(n), number_to_words(n)) for n in range(1000)]
    return _words()[task]


@functools.cache
def _split_items(task: str, split: str) -> tuple[tuple[str, str], ...]:
    """The fixed train/test partition of ``task``'s items (shuffle seeded by the task name)."""
    items = _items(task)
    order = list(range(len(items)))
    random.Random(f"lls-split/{task}").shuffle(order)
    n_test = round(TEST_FRACTION * len(items))
    chosen = order[:n_test] if split == "test" else order[n_test:]
    return tuple(items[i] for i in sorted(chosen))


def _check(task: str | None, split: str) -> None:
    if task is not None and task not in TASKS:
        raise ConfigError(f"Unknown task {task!r}; the tasks are {list(TASKS)}.")
    if split not in SPLITS:
        raise ConfigError(f"Unknown split {split!r}; pass 'train' or 'test'.")


def examples(task: str, split: str, n: int, seed: int = 0) -> list[Example]:
    """``n`` examples of ``task`` from ``split``, deterministic for ``seed``.

    Items are drawn in shuffled passes over the split (each item once per pass), so ``n``
    larger than the split repeats items only after all have been used.
    """
    _check(task, split)
    pool = _split_items(task, split)
    rng = random.Random(f"lls-examples/{task}/{split}/{seed}")
    prompt, answer = _FORMATS[task]
    drawn: list[tuple[str, str]] = []
    while len(drawn) < n:
        order = list(pool)
        rng.shuffle(order)
        drawn.extend(order)
    return [Example(prompt.format(x=x), answer.format(y=y)) for x, y in drawn[:n]]


def encode(tokenizer, examples: list[Example], max_length: int = 32) -> dict[str, torch.Tensor]:
    """Tokenize prompt + answer: ``input_ids``, ``attention_mask``, ``labels``, each (B, T) int64.

    ``labels`` equal ``input_ids`` on the answer tokens and -100 elsewhere (prompt and
    padding), the convention of ``transformers``' causal-LM loss. Rows are right-padded with
    the pad token to the longest row (T <= ``max_length``); a row longer than ``max_length``
    loses prompt tokens from the left, never answer tokens.
    """
    rows = []
    for ex in examples:
        prompt_ids = tokenizer(ex.prompt)["input_ids"]
        answer_ids = tokenizer(ex.answer, add_special_tokens=False)["input_ids"]
        if len(answer_ids) >= max_length:
            raise ConfigError(f"The answer {ex.answer!r} alone has {len(answer_ids)} tokens, more than "
                              f"max_length={max_length}; raise max_length.")
        prompt_ids = prompt_ids[max(0, len(prompt_ids) + len(answer_ids) - max_length):]
        rows.append((prompt_ids, answer_ids))
    width = max(len(p) + len(a) for p, a in rows)
    batch = {key: torch.full((len(rows), width), fill, dtype=torch.long)
             for key, fill in (("input_ids", tokenizer.pad_token_id), ("attention_mask", 0), ("labels", -100))}
    for i, (p, a) in enumerate(rows):
        length = len(p) + len(a)
        batch["input_ids"][i, :length] = torch.tensor(p + a)
        batch["attention_mask"][i, :length] = 1
        batch["labels"][i, len(p):length] = torch.tensor(a)
    return batch


# --- statements --------------------------------------------------------------------------------

_STATEMENT_FORMATS: dict[str, str] = {
    "capital": "The capital of {x} is {y}.",
    "continent": "{x} is in {y}.",
    "element": "The chemical symbol of {x} is {y}.",
    "arithmetic": "{x} equals {y}.",
    "opposite": "The opposite of {x} is {y}.",
}
STATEMENT_TOPICS: tuple[str, ...] = tuple(_STATEMENT_FORMATS)
STATEMENT_TEST_FRACTION = 0.25


def _facts(topic: str) -> list[tuple[str, str]]:
    if topic == "arithmetic":
        rng = random.Random("lls-facts/arithmetic")
        pairs = sorted({(rng.randint(1, 20), rng.randint(1, 20)) for _ in range(200)})[:60]
        return [(f"{a} plus {b}", str(a + b)) for a, b in pairs]
    if topic == "opposite":
        return _words()["antonym"][:40]
    return _words()[topic]


def _false_object(topic: str, facts: list[tuple[str, str]], i: int, rng: random.Random) -> str:
    """A wrong object for fact ``i``: another fact's object (for sums: off by 1 to 3)."""
    subject, true = facts[i]
    if topic == "arithmetic":
        return str(int(true) + rng.choice((-3, -2, -1, 1, 2, 3)))
    wrong = [y for x, y in facts if y != true and x != subject]
    return rng.choice(wrong)


@functools.cache
def _all_statements() -> dict[str, tuple[Statement, ...]]:
    rng = random.Random("lls-statements")
    out: dict[str, list[Statement]] = {"train": [], "test": []}
    for topic, template in _STATEMENT_FORMATS.items():
        facts = _facts(topic)
        order = list(range(len(facts)))
        rng.shuffle(order)
        n_test = round(STATEMENT_TEST_FRACTION * len(facts))
        for rank, i in enumerate(order):
            split = "test" if rank < n_test else "train"
            subject, true = facts[i]
            false = _false_object(topic, facts, i, rng)
            out[split].append(Statement(template.format(x=subject, y=true), True, topic, subject))
            out[split].append(Statement(template.format(x=subject, y=false), False, topic, subject))
    for split in out:
        rng.shuffle(out[split])
    return {split: tuple(items) for split, items in out.items()}


def statements(split: str) -> list[Statement]:
    """The labelled statements of ``split`` (fixed; both splits balanced, disjoint by fact)."""
    _check(None, split)
    return list(_all_statements()[split])


def boolq(split: str, n: int | None = None, *, passage: bool = False) -> list[Statement]:
    """BoolQ (google/boolq, ``paper`` preset) as statements: the question (with its passage if
    ``passage``), label = the answer; ``split`` "train" or "test" (= BoolQ's validation split);
    the first ``n`` items. Raises :class:`MissingModelError` at once when it is neither in the
    local ``datasets`` cache nor reachable.
    """
    _check(None, split)
    import datasets

    from lls.models import hub_reachable

    repo, hf_split = "google/boolq", {"train": "train", "test": "validation"}[split]
    saved = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = saved or not hub_reachable()
    try:
        data = datasets.load_dataset(repo, split=hf_split)
    except Exception as err:
        if not datasets.config.HF_HUB_OFFLINE:
            raise
        raise MissingModelError(
            f"The data set {repo!r} is not in the local datasets cache ({datasets.config.HF_DATASETS_CACHE}) "
            f"and the hub cannot be reached from this machine ({type(err).__name__}). On a machine with "
            f"network access, pre-fetch it with `python -c \"import datasets; datasets.load_dataset('{repo}')\"` "
            f"and copy the cache folder here, or use lls.textdata.statements() (cpu preset)."
        ) from None
    finally:
        datasets.config.HF_HUB_OFFLINE = saved
    rows = data if n is None else data.select(range(min(n, len(data))))
    return [Statement(text=(f"{r['passage']}\n" if passage else "") + r["question"].capitalize() + "?",
                      label=bool(r["answer"]), topic="boolq", fact=f"boolq-{i}") for i, r in enumerate(rows)]


@functools.cache
def held_out_text() -> str:
    """English prose written for this book (about 1,000 words), never seen by any model."""
    return resources.files("lls").joinpath("data/held_out.txt").read_text(encoding="utf-8")
