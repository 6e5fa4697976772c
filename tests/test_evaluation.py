"""Answer metrics, perplexity and statement accuracy against hand-built references."""

import math
from types import SimpleNamespace

import pytest
import torch

from lls import evaluation, models, textdata


class Oracle(torch.nn.Module):
    """Predicts the true next token (it peeks at ``input_ids``), except in rows listed in ``wrong``."""

    def __init__(self, vocab, wrong=()):
        super().__init__()
        self.vocab, self.wrong = vocab, set(wrong)

    def forward(self, input_ids, attention_mask=None):
        logits = torch.full((*input_ids.shape, self.vocab), -30.0)
        nxt = torch.roll(input_ids, -1, dims=1)
        for i in self.wrong:
            nxt[i] = (nxt[i] + 1) % self.vocab
        logits.scatter_(2, nxt[..., None], 30.0)
        return SimpleNamespace(logits=logits)


@pytest.fixture(scope="module")
def tiny():
    return models.load("tiny-llama")


@pytest.fixture(scope="module")
def batch(tiny):
    return textdata.encode(tiny[1], textdata.examples("number_words", "train", 8, seed=0), max_length=32)


def test_answer_metrics_oracle(batch):
    perfect = evaluation.answer_metrics(Oracle(50257), batch)
    assert perfect["accuracy"] == 1.0 and perfect["loss"] < 1e-6
    two_wrong = evaluation.answer_metrics(Oracle(50257, wrong=[0, 3]), batch)
    assert two_wrong["accuracy"] == pytest.approx(6 / 8) and two_wrong["loss"] > 5


def test_answer_loss_matches_transformers(tiny, batch):
    model, _ = tiny
    ours = evaluation.answer_loss(model, batch)
    assert ours.requires_grad
    reference = model(**batch).loss  # transformers' causal-LM loss on the same -100 labels
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    assert evaluation.answer_metrics(model, batch)["loss"] == pytest.approx(reference.item(), rel=1e-5)


def test_metrics_restore_training_mode(tiny, batch):
    model, tokenizer = tiny
    model.train()
    evaluation.answer_metrics(model, batch)
    evaluation.perplexity(model, tokenizer, "A short text.", block=8)
    assert model.training
    model.eval()


def test_perplexity_reference(tiny):
    model, tokenizer = tiny
    text = textdata.held_out_text()[:400]
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    assert ids.shape[1] < 128
    assert evaluation.perplexity(model, tokenizer, text) == pytest.approx(
        math.exp(model(ids, labels=ids).loss.item()), rel=1e-4)


def test_perplexity_of_uniform_model_is_vocab_size(tiny):
    _, tokenizer = tiny

    class Uniform(torch.nn.Module):
        def forward(self, input_ids):
            return SimpleNamespace(logits=torch.zeros(*input_ids.shape, 50257))

    assert evaluation.perplexity(Uniform(), tokenizer, textdata.held_out_text(), block=64) == \
        pytest.approx(50257, rel=1e-4)


def test_statement_scores_ignore_padding_and_batching(tiny):
    model, tokenizer = tiny
    items = textdata.statements("test")[:6]
    together = evaluation.statement_scores(model, tokenizer, items, batch_size=6)
    alone = torch.cat([evaluation.statement_scores(model, tokenizer, [s]) for s in items])
    assert torch.allclose(together, alone, atol=1e-4)


def test_statement_accuracy_constant_and_label_reading(tiny):
    _, tokenizer = tiny
    true_id = tokenizer(" True")["input_ids"][0]
    items = textdata.statements("test")[:40]

    class AlwaysTrue(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None):
            logits = torch.zeros(*input_ids.shape, 50257)
            logits[..., true_id] = 1.0
            return SimpleNamespace(logits=logits)

    share_true = sum(s.label for s in items) / len(items)
    assert evaluation.statement_accuracy(AlwaysTrue(), tokenizer, items) == pytest.approx(share_true)
    flipped = [textdata.Statement(s.text, not s.label, s.topic) for s in items]
    model, _ = tiny
    acc = evaluation.statement_accuracy(model, tokenizer, items)
    assert acc + evaluation.statement_accuracy(model, tokenizer, flipped) == pytest.approx(1.0)
