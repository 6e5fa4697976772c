"""Chapter 5's concepts: what each steering vector contrasts, its data, prompt and step objective.

* ``truth``: true vs false statements (the book's facts, BoolQ, or a JSON file), read through the
  question prompt :data:`lls.evaluation.STATEMENT_PROMPT`; the gradient step is on
  :func:`lls.steering.truth_loss` (the paper's labelled objective).
* ``plural`` (singular -> plural), ``past_tense`` (present -> past), ``number_words`` (digits ->
  number words): twin sentences generated from :mod:`lls.textdata`'s word lists, e.g. "They
  looked at the mice." (positive) / "They looked at the mouse." (negative), read bare; the step
  is on :func:`lls.steering.likelihood_loss`. Their train part comes from the word tasks' train
  items and validation/test from their held-out items, which the tuned variant never saw.

Every concept gives ``(train, validation, test)`` lists of :class:`lls.textdata.Statement`
(label True = the positive side) whose twins share a ``fact``.
"""

from __future__ import annotations

from lls import evaluation, steering, textdata
from lls.chapters.steering.splits import groups_by_topic, labelled_statements, split_halves, three_way

CONCEPTS = ("truth", "plural", "past_tense", "number_words")
_TEMPLATES = {"plural": "They looked at the {w}.", "past_tense": "They {w} it.", "number_words": "The answer is {w}."}


def prompt_of(concept: str) -> str:
    """The prompt a concept's statements are read through (``{text}`` = the statement)."""
    return evaluation.STATEMENT_PROMPT if concept == "truth" else "{text}"


def step_loss(concept: str):
    """The labelled objective of the concept's gradient step (a ``batch_loss``)."""
    return steering.truth_loss if concept == "truth" else steering.likelihood_loss


def _twins(concept: str, split: str, n: int) -> list[textdata.Statement]:
    """Up to ``n`` twin pairs of a word concept from the task's ``split`` items (positive first)."""
    task = concept
    if concept == "number_words":
        items = [(ex.prompt.split()[0], ex.answer.strip()) for ex in textdata.examples(task, split, n, seed=0)]
    else:
        pool = textdata.examples(task, split, n, seed=0)
        items = [(ex.prompt.split()[-1].rstrip(":"), ex.answer.strip()) for ex in pool]
    template, out, seen = _TEMPLATES[concept], [], set()
    for negative, positive in items:
        if negative in seen or negative == positive:
            continue
        seen.add(negative)
        out.append(textdata.Statement(template.format(w=positive), True, concept, negative))
        out.append(textdata.Statement(template.format(w=negative), False, concept, negative))
    return out


def concept_splits(concept: str, data: str, n_train: int, n_eval: int, seed: int) -> tuple[list, list, list]:
    """``(train, validation, test)`` statements of ``concept``; validation and test hold at most
    ``n_eval`` statements each (whole twin pairs), train at most ``n_train`` (BoolQ: how many
    questions of each BoolQ split are read). ``seed`` fixes the truth split
    (:func:`lls.chapters.steering.splits.three_way`) and the word concepts' validation/test halves."""
    if concept == "truth":
        train, val, test = three_way(labelled_statements(data, n_train), seed)
    else:
        train = _twins(concept, "train", n_train // 2)
        val, test = split_halves(_twins(concept, "test", 2 * n_eval), seed)
    return train, _cap(val, n_eval), _cap(test, n_eval)


def _cap(statements: list, n: int) -> list:
    """At most ``n`` statements in whole twin pairs, taken round-robin over the topics (so a cap
    keeps the topic mix)."""
    queues, out = [list(g) for _, g in sorted(groups_by_topic(statements).items())], []
    while any(queues):
        for queue in queues:
            if queue and len(out) + len(queue[0]) <= n:
                out += queue.pop(0)
            elif queue:
                return out
    return out
