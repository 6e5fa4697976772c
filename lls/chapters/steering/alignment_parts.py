"""The pieces of chapter 5's alignment experiment (C8): one data split, and its result type.

:func:`one_split` measures, on one random split of the training statements, the shifts of the
gradient steps and their cosines with CAA; :class:`Alignment` stacks them over splits. The
cached experiment that calls them is :func:`lls.chapters.steering.protocol.alignment`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from lls import lora, steering
from lls.chapters.steering.concepts import prompt_of, step_loss
from lls.chapters.steering.splits import fact_groups, split_halves
from lls.seeds import derive, generator


@dataclass
class Alignment:
    """Per-split, per-block cosines with the CAA vector, each ``(seeds, layers)``:

    ``cos_full``/``cos_lora``/``cos_shuffled``: the *mean* activation shift of a gradient step in
    all parameters / LoRA parameters / all parameters on shuffled labels; ``delta_full``,
    ``delta_lora``, ``delta_shuffled``: the same steps' ΔCAA (shift on positive probes minus
    shift on negative probes); ``cos_contrast``: the two-answer step (truth only, else NaN);
    ``cos_full_pred``: the jvp prediction of the mean shift; ``caa_split``: CAA on one half
    against CAA on the other (the ceiling); ``consistency``: contrast consistency, the mean
    cosine between per-pair contrast vectors (positive minus negative twin) of the CAA half;
    ``pred_error_full`` relative jvp error. ``null_cos`` ``(layers, n_null)``: cosines of random
    Gaussian directions with CAA. ``loss_full`` ``(seeds, 2)``: the step's loss on the probe before
    and after (nats). Vectors of the first split, ``(layers, d_model)``: ``caa``, ``shift_full``,
    ``shift_lora``."""

    model: str
    concept: str
    variant: str
    seeds: list[int]
    cos_full: np.ndarray
    cos_full_pred: np.ndarray
    cos_lora: np.ndarray
    cos_shuffled: np.ndarray
    cos_contrast: np.ndarray
    delta_full: np.ndarray
    delta_lora: np.ndarray
    delta_shuffled: np.ndarray
    caa_split: np.ndarray
    consistency: np.ndarray
    pred_error_full: np.ndarray
    null_cos: np.ndarray
    loss_full: np.ndarray
    caa: np.ndarray
    shift_full: np.ndarray
    shift_lora: np.ndarray
    d_model: int
    dim_full: int
    n_train: int

    @classmethod
    def build(cls, model: str, concept: str, variant: str, seeds: list[int], rows: dict[str, list],
              first: dict[str, np.ndarray], null_cos: np.ndarray, dim_full: int, n_train: int) -> Alignment:
        """Stack the per-split ``rows`` of :func:`one_split` into an :class:`Alignment`."""
        stack = {k: np.asarray(v, dtype=float) for k, v in rows.items()}
        return cls(model=model, concept=concept, variant=variant, seeds=list(seeds), null_cos=null_cos,
                   d_model=int(first["caa"].shape[1]), dim_full=dim_full, n_train=n_train, **first, **stack)


def _cos(a: torch.Tensor | None, b: torch.Tensor) -> np.ndarray:
    """``(layers,)``: cosine of each row of ``a`` with the same row of ``b`` (NaN where ``a`` is None)."""
    if a is None:
        return np.full(b.shape[0], np.nan)
    return steering.cosine(a, b).cpu().numpy()


def _acts(model, batch: steering.StatementBatch) -> torch.Tensor:
    """``(layers, n, d_model)`` last-token activations of ``batch``."""
    with torch.no_grad():
        return steering.last_token_activations(model, batch, model)


def consistency(acts: torch.Tensor, statements: list) -> np.ndarray:
    """``(layers,)``: mean cosine between the per-pair contrast vectors (positive twin's
    activation minus negative twin's) over all pairs of pairs, from ``acts`` ``(layers, n, d)``."""
    index = {id(s): i for i, s in enumerate(statements)}
    pairs = [(index[id(g[0])], index[id(g[1])]) for g in fact_groups(statements) if len(g) == 2]
    if len(pairs) < 2:
        return np.full(acts.shape[0], np.nan)
    diffs = torch.stack([acts[:, p] - acts[:, n] for p, n in pairs], dim=1).double()  # (layers, pairs, d)
    unit = diffs / diffs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    gram = unit @ unit.transpose(1, 2)
    k = len(pairs)
    return ((gram.sum(dim=(1, 2)) - k) / (k * (k - 1))).float().numpy()


def _lora_shift(model, step, probe, seed: int, spec, loss) -> steering.Shift:
    """The shift of one LoRA step (on a copy of ``model``; A from stream ``"lora init"`` of ``seed``)."""
    with torch.random.fork_rng(devices=[]):  # LoRA's A matrices come from the global generator
        torch.manual_seed(derive(seed, "lora init"))
        peft_model = lora.add_lora(copy.deepcopy(model), r=spec.lora_rank, alpha=2 * spec.lora_rank)
    space = lora.adapter_space(peft_model)
    delta = steering.gradient_step(space, step, spec.lora_step_norm, loss)
    return steering.activation_shift(space, delta, probe, predict=False, loss=loss)


def one_split(model, tokenizer, space, train: list, seed: int, spec) -> tuple[dict, dict]:
    """One data split (seed ``seed``) of an :class:`~lls.chapters.steering.protocol.AlignmentSpec`:
    ``(per-block rows, first-split vectors)``."""
    concept = spec.data.concept
    prompt, loss = prompt_of(concept), step_loss(concept)
    caa_half, step_half = split_halves(train, seed)
    encode = lambda part: steering.encode_statements(tokenizer, part, device=spec.device, prompt=prompt)  # noqa: E731
    caa_acts = _acts(model, encode(caa_half))
    caa = steering.caa_vectors(caa_acts, encode(caa_half).labels)
    caa_other = steering.caa_vectors(_acts(model, encode(step_half)), encode(step_half).labels)
    probe, step = encode(caa_half[:spec.n_probe]), encode(step_half[:spec.step_batch])
    full = steering.activation_shift(space, steering.gradient_step(space, step, spec.step_norm, loss), probe, loss=loss)
    order = torch.randperm(len(step), generator=generator(seed, "shuffled labels")).to(spec.device)
    shuffled_step = step.with_labels(step.labels[order])
    shuffled = steering.activation_shift(space, steering.gradient_step(space, shuffled_step, spec.step_norm, loss),
                                         probe, predict=False, loss=loss)
    contrast = None
    if concept == "truth":
        contrast = steering.activation_shift(space, steering.gradient_step(space, step, spec.step_norm,
                                                                           steering.contrast_loss), probe, predict=False)
    low = _lora_shift(model, step, probe, seed, spec, loss)
    rel_error = ((full.measured - full.predicted).norm(dim=-1) / full.predicted.norm(dim=-1)).cpu().numpy()
    rows = {"cos_full": _cos(full.measured, caa), "cos_full_pred": _cos(full.predicted, caa),
            "cos_lora": _cos(low.measured, caa), "cos_shuffled": _cos(shuffled.measured, caa),
            "cos_contrast": _cos(None if contrast is None else contrast.measured, caa),
            "delta_full": _cos(full.delta, caa), "delta_lora": _cos(low.delta, caa),
            "delta_shuffled": _cos(shuffled.delta, caa), "caa_split": _cos(caa, caa_other),
            "consistency": consistency(caa_acts, caa_half), "pred_error_full": rel_error,
            "loss_full": [full.loss_before, full.loss_after]}
    vectors = {"caa": caa.cpu().numpy(), "shift_full": full.measured.cpu().numpy(),
               "shift_lora": low.measured.cpu().numpy()}
    return rows, vectors
