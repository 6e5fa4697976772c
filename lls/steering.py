"""Activation steering: record and shift the residual stream, CAA vectors, gradient-step shifts.

Every family (GPT-2, Llama, Qwen2, OLMo, plain or ``peft``-wrapped) goes through one code path:
the transformer blocks come from :func:`lls.layers.blocks`, and the *activation at layer l* is
the residual stream leaving block ``l``, shape ``(batch, tokens, d_model)``; it equals
``output_hidden_states[l + 1]`` (the last block's entry there is taken after the final norm in
Llama-style models, so the parity holds for every block but the last). Hooks live in context
managers that always remove them, even when the forward pass raises (habit of the
``steering-vectors`` package).

The labelled objective is the true/false question of :mod:`lls.evaluation` after a statement
(``"<statement> True or false? Answer:"``, answer ``" True"`` or ``" False"``):
:func:`truth_loss` is the cross-entropy (full vocabulary, nats) of the correct answer token at
the prompt's last position.

* :func:`caa_vectors`: mean activation on true minus mean on false statements, every layer.
* :func:`gradient_step`: one normalised gradient step of :func:`truth_loss` (or of
  :func:`contrast_loss`, the two-answer version) in a parameter space.
* :func:`activation_shift`: the mean last-token activation shift that step causes, measured by
  forward passes before and after, and its first-order pushforward ``J_theta h . delta``
  (:func:`torch.func.jvp`).
* :func:`steered_scores`: per-statement numbers while a vector is added (:func:`statement_numbers`:
  the answer score and the log-likelihood of each statement's own text, the likelihood target),
  and the perplexity of unrelated text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from lls import evaluation, layers
from lls.params import ParamSpace, batch_gradients


def _hidden(output):
    """The hidden-state tensor of a block's output (a tensor, or a tuple whose first item it is)."""
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def record_activations(model: nn.Module, layer_ids: Sequence[int] | None = None, *,
                       detach: bool = True) -> Iterator[dict[int, list[torch.Tensor]]]:
    """Record the residual stream leaving each block in ``layer_ids`` (default: every block).

    Yields ``{layer: [tensor (batch, tokens, d_model), one per forward pass]}``, filled as the
    model runs. ``detach=False`` keeps the tensors in the autograd / forward-AD graph (for
    :func:`torch.func.jvp`). The hooks are removed on exit, also when the body raises.
    """
    all_blocks = layers.blocks(model)
    layer_ids = range(len(all_blocks)) if layer_ids is None else layer_ids
    records: dict[int, list[torch.Tensor]] = {int(i): [] for i in layer_ids}
    handles = []
    try:
        for i in records:
            def hook(_module, _args, output, i=i):
                hidden = _hidden(output)
                records[i].append(hidden.detach() if detach else hidden)
            handles.append(all_blocks[i].register_forward_hook(hook))
        yield records
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def add_vector(model: nn.Module, layer: int, vector: torch.Tensor, scale: float = 1.0) -> Iterator[None]:
    """Add ``scale * vector`` (``(d_model,)``) to the residual stream leaving block ``layer``.

    The vector is added at every token position of every forward pass inside the block; the
    hook is removed on exit, also when the body raises.
    """
    block = layers.blocks(model)[layer]

    def hook(_module, _args, output):
        hidden = _hidden(output)
        shifted = hidden + scale * vector.to(dtype=hidden.dtype, device=hidden.device)
        return (shifted, *output[1:]) if isinstance(output, tuple) else shifted

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def last_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``(batch, d)``: each row's hidden state at its last attended position.

    ``hidden`` is ``(batch, tokens, d)``, ``attention_mask`` ``(batch, tokens)`` of 0/1; works for
    left and right padding.
    """
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (attention_mask.long() * (positions + 1)).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


# --- the labelled true/false objective ---------------------------------------------------------


@dataclass
class StatementBatch:
    """Encoded true/false prompts: ``input_ids``/``attention_mask`` ``(n, tokens)`` (right-padded),
    ``labels`` ``(n,)`` bool (True = the statement is true), ``answer_ids`` ``(2,)`` = the token
    ids of ``" True"`` and ``" False"``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    answer_ids: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: str | torch.device) -> StatementBatch:
        """The same batch with every tensor on ``device``."""
        return StatementBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.labels,
                                                        self.answer_ids)))

    def with_labels(self, labels: torch.Tensor) -> StatementBatch:
        """The same prompts with other labels (e.g. shuffled, for a null baseline)."""
        return StatementBatch(self.input_ids, self.attention_mask, labels.bool(), self.answer_ids)


def encode_statements(tokenizer, statements, max_length: int = 256, device: str | torch.device = "cpu",
                      prompt: str = evaluation.STATEMENT_PROMPT) -> StatementBatch:
    """Encode ``lls.textdata.Statement`` objects with ``prompt`` (default
    :data:`lls.evaluation.STATEMENT_PROMPT`, the prompt the zero-shot accuracy of
    :func:`lls.evaluation.statement_scores` reads; ``"{text}"``: the bare text), on ``device``."""
    enc = tokenizer([prompt.format(text=s.text) for s in statements],
                    return_tensors="pt", padding=True, truncation=True, max_length=max_length,
                    padding_side="right")
    labels = torch.tensor([bool(s.label) for s in statements])
    return StatementBatch(enc["input_ids"], enc["attention_mask"], labels,
                          torch.tensor(evaluation.answer_token_ids(tokenizer))).to(device)


def truth_loss(call, batch: StatementBatch) -> torch.Tensor:
    """Mean cross-entropy (nats, full vocabulary) of the correct answer token after each prompt.

    ``call`` runs the model (the model itself, or the ``call`` of
    :meth:`lls.params.ParamSpace.loss_closure`): a ``batch_loss`` for :mod:`lls.params`. Much of
    its gradient is label-independent: it also teaches the *format* (answer " True" or " False"
    at all); :func:`contrast_loss` has none of that.
    """
    target = torch.where(batch.labels, batch.answer_ids[0], batch.answer_ids[1])
    return nn.functional.cross_entropy(_answer_logits(call, batch), target)


def contrast_loss(call, batch: StatementBatch) -> torch.Tensor:
    """Mean cross-entropy (nats) of the correct answer among the two answers only: the softmax is
    over ``(logit(" True"), logit(" False"))``, so only the label-dependent part is learned."""
    pair = _answer_logits(call, batch)[:, batch.answer_ids]
    return nn.functional.cross_entropy(pair, (~batch.labels).long())


def likelihood_loss(call, batch: StatementBatch) -> torch.Tensor:
    """Minus the mean of ``±log p(prompt)`` (nats, summed over each prompt's tokens after the
    first; + for a true/positive statement, - for its twin): a step on it raises the likelihood of
    the positive side of a contrast and lowers the other's (no question, no answer format)."""
    logits = call(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    picked = logits.log_softmax(-1).gather(-1, batch.input_ids[:, 1:, None])[..., 0]
    logp = (picked * batch.attention_mask[:, 1:]).sum(dim=1)
    return -(logp * (batch.labels.float() * 2 - 1)).mean()


def _answer_logits(call, batch: StatementBatch) -> torch.Tensor:
    """``(n, vocab)`` float32 logits at each prompt's last position (right padding)."""
    last = batch.attention_mask.sum(dim=1) - 1
    keep, row = torch.unique(last, return_inverse=True)  # the LM head runs on these positions only
    out = call(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=keep)
    return out.logits[torch.arange(len(batch)), row].float()


# --- CAA and the gradient step ------------------------------------------------------------------


def last_token_activations(call, batch: StatementBatch, model: nn.Module,
                           layer_ids: Sequence[int] | None = None, *, detach: bool = True) -> torch.Tensor:
    """``(layers, n, d_model)``: the last-token residual stream of every prompt at each layer.

    ``call`` runs the model (the model itself, or a functional call from
    :meth:`ParamSpace.loss_closure`); ``model`` is the module whose blocks are hooked.
    """
    with record_activations(model, layer_ids, detach=detach) as records:
        call(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    return torch.stack([last_token(torch.cat(records[i]), batch.attention_mask) for i in records])


def caa_vectors(activations: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(layers, d)``: mean activation on true minus mean on false rows of ``(layers, n, d)``."""
    labels = labels.bool()
    if labels.all() or not labels.any():
        raise ValueError("CAA needs both true and false statements")
    return activations[:, labels].mean(dim=1) - activations[:, ~labels].mean(dim=1)


def gradient_step(space: ParamSpace, batch: StatementBatch, step_norm: float, loss=truth_loss) -> torch.Tensor:
    """``(D,)``: one gradient-descent step on ``loss`` (a ``batch_loss``, default :func:`truth_loss`),
    rescaled to norm ``step_norm``.

    The direction is ``-g / |g|`` with ``g`` the gradient at the model's current parameters; the
    model is not changed.
    """
    grad = batch_gradients(space, loss, [batch])[0]
    norm = grad.norm()
    if norm == 0:
        raise ValueError("the gradient is zero in this parameter space")
    return -step_norm * grad / norm


@dataclass
class Shift:
    """The mean last-token activation shift of a parameter step, each ``(layers, d_model)``:
    ``measured`` = mean activation after the step minus before, ``predicted`` = the first-order
    pushforward ``J_theta mean_h . delta`` (``None`` when not asked for); ``loss_before`` /
    ``loss_after`` = the step's loss (nats, default :func:`truth_loss`) on the probe prompts before and
    after the step."""

    measured: torch.Tensor
    predicted: torch.Tensor | None
    loss_before: float
    loss_after: float
    delta: torch.Tensor | None = None
    """``(layers, d_model)``: the shift on true probes minus the shift on false probes (ΔCAA: how
    the step changes the CAA vector of the probe set; ``None`` when the probe has one label only)"""


def _probe_pass(call, batch: StatementBatch, model: nn.Module, detach: bool, rows: bool = False,
                loss_fn=truth_loss) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass: ``(mean last-token activation (layers, d), loss_fn)``; with ``rows``
    the activations of every prompt, ``(layers, n, d)``."""
    with record_activations(model, detach=detach) as records:
        loss = loss_fn(call, batch)
    acts = torch.stack([last_token(torch.cat(records[i]), batch.attention_mask) for i in records])
    return (acts if rows else acts.mean(dim=1)), loss


def activation_shift(space: ParamSpace, delta: torch.Tensor, probe: StatementBatch,
                     predict: bool = True, loss=truth_loss) -> Shift:
    """Measure (and, if ``predict``, predict) the mean last-token activation shift of the step ``delta``.

    Forward passes at ``theta0`` and ``theta0 + delta`` give the measured shift (``delta`` is
    added in the parameters' own dtype; they are restored exactly afterwards, also on error);
    :func:`torch.func.jvp` of the mean activation, through :meth:`ParamSpace.loss_closure`, gives
    the prediction. The jvp runs with PyTorch's math attention kernel, the only one with
    forward-mode derivatives on CPU.
    """
    model = space.model
    params = space.params()
    with torch.no_grad():
        before, loss_before = _probe_pass(model, probe, model, True, True, loss)
        saved = [p.detach().clone() for p in params]
        try:
            for p, step in zip(params, space.to_dict(delta).values(), strict=True):
                p.add_(step.to(p.dtype))
            after, loss_after = _probe_pass(model, probe, model, True, True, loss)
        finally:
            for p, value in zip(params, saved, strict=True):
                p.copy_(value)
    predicted = None
    if predict:
        theta0 = torch.cat([p.detach().reshape(-1) for p in params])
        mean_acts = space.loss_closure(lambda call, batch: _probe_pass(call, batch, model, detach=False)[0], probe)
        with sdpa_kernel(SDPBackend.MATH):
            _, predicted = torch.func.jvp(mean_acts, (theta0,), (delta.to(theta0.dtype),))
        predicted = predicted.detach()
    rows = after - before
    both = bool(probe.labels.any() and not probe.labels.all())
    return Shift(rows.mean(dim=1), predicted, loss_before.item(), loss_after.item(),
                 caa_vectors(rows, probe.labels) if both else None)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity along the last axis (rows of ``(..., d)``)."""
    return nn.functional.cosine_similarity(a.double(), b.double(), dim=-1).float()


# --- steering evaluation ------------------------------------------------------------------------


def statement_numbers(model: nn.Module, tokenizer, statements, batch_size: int = 32,
                      prompt: str = evaluation.STATEMENT_PROMPT) -> dict[str, torch.Tensor]:
    """Two numbers per statement from one forward pass over its question prompt
    (:data:`lls.evaluation.STATEMENT_PROMPT`): ``score`` ``(n,)`` = log p(" True") - log p(" False")
    at the last prompt token (nats), and ``logprob`` ``(n,)`` = log p(text) of the statement's own
    text, summed over its tokens after the first (nats; the prompt's tokens up to where they stop
    matching the text's own tokenization). The likelihood target compares ``logprob`` of a true
    statement with that of its false twin: a truth measure that needs no answer format."""
    device = next(model.parameters()).device
    true_id, false_id = evaluation.answer_token_ids(tokenizer)
    scores, logprobs = [], []
    with torch.no_grad():
        for start in range(0, len(statements), batch_size):
            chunk = statements[start:start + batch_size]
            batch = encode_statements(tokenizer, chunk, device=device, prompt=prompt)
            logp = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float().log_softmax(-1)
            last = batch.attention_mask.sum(dim=1) - 1
            rows = torch.arange(len(chunk), device=device)
            scores.append((logp[rows, last, true_id] - logp[rows, last, false_id]).cpu())
            picked = logp[:, :-1].gather(-1, batch.input_ids[:, 1:, None])[..., 0]
            in_text = torch.zeros_like(picked)
            for r, s in enumerate(chunk):
                own = tokenizer(s.text)["input_ids"]
                ids = batch.input_ids[r].tolist()
                n = next((k for k, (a, b) in enumerate(zip(own, ids, strict=False)) if a != b), min(len(own), len(ids)))
                in_text[r, :max(n - 1, 0)] = 1
            logprobs.append((picked * in_text).sum(dim=1).cpu())
    return {"score": torch.cat(scores), "logprob": torch.cat(logprobs)}


def steered_scores(model: nn.Module, tokenizer, statements, text: str, layer: int | None = None,
                   vector: torch.Tensor | None = None, scale: float = 1.0,
                   prompt: str = evaluation.STATEMENT_PROMPT) -> dict:
    """:func:`statement_numbers` (as numpy ``(n,)`` arrays) and the ``perplexity`` of the
    unrelated ``text`` while ``scale * vector`` is added at ``layer`` (none if ``vector`` is None)."""
    steer = contextlib.nullcontext() if vector is None else add_vector(model, layer, vector, scale)
    with steer:
        numbers = {k: v.numpy() for k, v in statement_numbers(model, tokenizer, statements, prompt=prompt).items()}
        return {**numbers, "perplexity": evaluation.perplexity(model, tokenizer, text)}
