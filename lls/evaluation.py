"""Evaluations shared by the chapters: answer loss/accuracy, perplexity, true/false accuracy.

All functions run the model without gradients and leave it in the mode they found it in
(``eval`` is used for the forward passes).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

STATEMENT_PROMPT = "{text} True or false? Answer:"
_TRUE, _FALSE = " True", " False"


@contextlib.contextmanager
def _evaluating(model):
    """Eval mode and no gradients for the block; the model's training flag is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _device(model) -> torch.device:
    """Where ``model``'s parameters live (inputs are moved there; CPU for a parameter-free model)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _answer_ce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy (B, T-1), zero off the answer, and the answer mask (B, T-1).

    Position t of ``logits`` (B, T, V) predicts token t+1; tokens labelled -100 do not count.
    """
    labels = labels[:, 1:]
    mask = labels != -100
    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels.clamp(min=0).flatten(),
                             reduction="none").view_as(labels)
    return losses * mask, mask


def answer_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over all answer tokens of the batch (scalar, nats, differentiable).

    ``model`` may be any callable taking ``input_ids`` and ``attention_mask`` (e.g. the ``call``
    of :meth:`lls.params.ParamSpace.loss_closure`).
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    losses, mask = _answer_ce(logits, batch["labels"])
    return losses.sum() / mask.sum()


def answer_metrics(model, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """``{"loss": mean answer-token CE (nats), "accuracy": fraction of exact answers}``.

    Teacher-forced: an example counts as correct when the argmax prediction of every one of
    its answer tokens is that token. ``batch`` is :func:`lls.textdata.encode`'s output.
    """
    with _evaluating(model):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    losses, mask = _answer_ce(logits, batch["labels"])
    correct = (logits[:, :-1].argmax(-1) == batch["labels"][:, 1:]) | ~mask
    return {"loss": float(losses.sum() / mask.sum()),
            "accuracy": float(correct.all(dim=1).float().mean())}


def perplexity(model, tokenizer, text: str, block: int = 128) -> float:
    """exp(mean next-token CE) over ``text`` cut into consecutive blocks of ``block`` tokens.

    Blocks do not overlap and each is scored on its own, so the first token of each block is
    context only; a final block shorter than 2 tokens is dropped.
    """
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"][0]
    total, count = 0.0, 0
    with _evaluating(model):
        for start in range(0, len(ids), block):
            chunk = ids[start:start + block][None].to(_device(model))
            if chunk.shape[1] < 2:
                continue
            logits = model(input_ids=chunk).logits[0, :-1].float()
            total += float(F.cross_entropy(logits, chunk[0, 1:], reduction="sum"))
            count += chunk.shape[1] - 1
    return math.exp(total / count)


def answer_token_ids(tokenizer) -> tuple[int, int]:
    """Ids of the first token of " True" and of " False"."""
    return (tokenizer(_TRUE, add_special_tokens=False)["input_ids"][0],
            tokenizer(_FALSE, add_special_tokens=False)["input_ids"][0])


def statement_scores(model, tokenizer, statements: Sequence, batch_size: int = 16,
                     prompt: str = STATEMENT_PROMPT) -> torch.Tensor:
    """log p(" True") - log p(" False") after ``prompt.format(text=s.text)``, shape (n,).

    Zero-shot: the next-token distribution after "<statement> True or false? Answer:" is read
    at the last prompt token (right padding; the last real token of each row).
    """
    true_id, false_id = answer_token_ids(tokenizer)
    device = _device(model)
    scores = []
    with _evaluating(model):
        for start in range(0, len(statements), batch_size):
            texts = [prompt.format(text=s.text) for s in statements[start:start + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True).to(device)
            if tokenizer.padding_side == "left":
                last = torch.full((len(texts),), enc["input_ids"].shape[1] - 1)
            else:
                last = enc["attention_mask"].sum(1) - 1
            logits = model(**enc).logits[torch.arange(len(texts), device=device), last.to(device)].float()
            logp = logits.log_softmax(-1)
            scores.append((logp[:, true_id] - logp[:, false_id]).cpu())
    return torch.cat(scores)


def statement_accuracy(model, tokenizer, statements: Sequence, batch_size: int = 16) -> float:
    """Zero-shot accuracy on labelled statements: predicted True iff log p(" True") > log p(" False").

    See :func:`statement_scores` for the prompt. On the balanced statement sets of
    :mod:`lls.textdata` chance is 0.5, and so is a model that always answers the same.
    """
    scores = statement_scores(model, tokenizer, statements, batch_size)
    labels = torch.tensor([bool(s.label) for s in statements])
    return float(((scores > 0) == labels).float().mean())
