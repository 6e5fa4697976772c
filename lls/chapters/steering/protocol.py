"""Chapter 5's experiments: from one gradient step to a steering vector (claims C8 and C9).

Two cached experiments, each for one model:

* :func:`alignment`: for each seed, a random split of the training statements into a *probe*
  half (CAA vector, and the prompts on which activation shifts are measured) and a *step* half
  (the batch of the gradient step). One normalised gradient step on the labelled true/false
  objective (:func:`lls.steering.truth_loss`) in all parameters, one in LoRA parameters, one on
  shuffled labels, one on the two-answer :func:`lls.steering.contrast_loss`; the mean last-token
  activation shift each causes at every layer (measured, and predicted to first order by a jvp);
  cosines with the CAA vector per layer; a null baseline of random directions.
* :func:`steering_grid`: the CAA vector, the gradient-step shift (full and LoRA) and a random
  control, each rescaled to the CAA vector's norm at its layer, added over a grid of layers and
  scales; target metrics (accuracy, margins on held-out statements) and side metric (perplexity
  of unrelated prose).

Each takes a small spec (:class:`AlignmentSpec`, :class:`GridSpec`) holding only what its result
depends on, so a parameter of the grid does not recompute the alignment.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from lls import cache, layers, lora, models, steering, textdata
from lls.chapters.steering.config import Config
from lls.chapters.steering.splits import grid_layer_ids, labelled_statements, split_halves
from lls.errors import ConfigError
from lls.params import ParamSpace
from lls.seeds import derive, generator

VECTORS = ("CAA", "step (all params)", "step (LoRA)", "random")
#: Vectors evaluated at every grid block; the others only at the steering block (to save time).
GRID_VECTORS = ("CAA", "step (all params)")


@dataclass(frozen=True)
class AlignmentSpec:
    """The parameters :func:`alignment` depends on (see :class:`Config` for each)."""

    seed: int
    n_seeds: int
    data: str
    n_probe: int
    step_batch: int
    step_norm: float
    lora_step_norm: float
    lora_rank: int
    n_null: int
    device: str
    """the resolved torch device models and batches live on (results come back as CPU numpy)"""

    @classmethod
    def of(cls, cfg: Config) -> AlignmentSpec:
        """The alignment spec of ``cfg``."""
        return cls(cfg.seed, cfg.n_seeds, cfg.data, cfg.n_probe, cfg.step_batch, cfg.step_norm,
                   cfg.lora_step_norm, cfg.lora_rank, cfg.n_null, cfg.torch_device())

    @property
    def seeds(self) -> list[int]:
        """The seed of each data split: ``seed, seed + 1, ...`` (``n_seeds`` of them)."""
        return [self.seed + i for i in range(self.n_seeds)]


@dataclass(frozen=True)
class GridSpec:
    """The parameters :func:`steering_grid` depends on: the alignment's and the grid's own."""

    alignment: AlignmentSpec
    n_eval: int
    side_tokens: int
    layer: int
    grid_layers: int
    scales: tuple[float, ...]

    @classmethod
    def of(cls, cfg: Config) -> GridSpec:
        """The grid spec of ``cfg``."""
        return cls(AlignmentSpec.of(cfg), cfg.n_eval, cfg.side_tokens, cfg.layer, cfg.grid_layers,
                   tuple(cfg.scale_list()))


@dataclass
class Alignment:
    """Per-seed, per-layer cosines with the CAA vector, each ``(seeds, layers)``:

    ``cos_full``/``cos_lora``/``cos_shuffled``: measured mean activation shift of a gradient step
    in all parameters / LoRA parameters / all parameters on shuffled labels; ``cos_contrast``: a
    step in all parameters on the two-answer :func:`lls.steering.contrast_loss`; ``cos_full_pred``,
    ``cos_lora_pred``: the jvp predictions; ``caa_split``: CAA on one half of the data vs CAA on
    the other (how reproducible CAA itself is); ``pred_error_full``/``pred_error_lora``: relative
    error |measured - predicted| / |predicted|. ``null_q95`` ``(layers,)``: 95th percentile of
    |cosine| between the CAA vector and random Gaussian directions. Losses ``(seeds, 2)``:
    truth loss (nats) on the probe before/after each step. Vectors of the first seed,
    ``(layers, d_model)``: ``caa``, ``shift_full``, ``shift_lora``; sizes ``d_model``,
    ``dim_full``, ``dim_lora`` (parameters in each step's space).
    """

    model: str
    seeds: list[int]
    cos_full: np.ndarray
    cos_full_pred: np.ndarray
    cos_contrast: np.ndarray
    cos_lora: np.ndarray
    cos_lora_pred: np.ndarray
    cos_shuffled: np.ndarray
    caa_split: np.ndarray
    pred_error_full: np.ndarray
    pred_error_lora: np.ndarray
    null_q95: np.ndarray
    loss_full: np.ndarray
    loss_lora: np.ndarray
    caa: np.ndarray
    shift_full: np.ndarray
    shift_lora: np.ndarray
    d_model: int
    dim_full: int
    dim_lora: int


def caa_of(model, tokenizer, statements: list) -> torch.Tensor:
    """``(layers, d_model)``: the CAA vector of ``statements`` at every block."""
    batch = steering.encode_statements(tokenizer, statements, device=next(model.parameters()).device)
    with torch.no_grad():
        return steering.caa_vectors(steering.last_token_activations(model, batch, model), batch.labels)


def _rel_error(shift: steering.Shift) -> np.ndarray:
    """``(layers,)``: |measured - predicted| / |predicted| of a shift."""
    return ((shift.measured - shift.predicted).norm(dim=-1) / shift.predicted.norm(dim=-1)).cpu().numpy()


def _cos(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """``(layers,)``: cosine of each row of ``a`` with the same row of ``b`` (both ``(layers, d)``)."""
    return steering.cosine(a, b).cpu().numpy()


def _lora_shift(model, step: steering.StatementBatch, probe: steering.StatementBatch, seed: int,
                spec: AlignmentSpec) -> tuple[steering.Shift, int]:
    """The shift of one LoRA step (on a copy of ``model``; LoRA's A from stream ``"lora init"`` of
    ``seed``) and the LoRA dimension."""
    with torch.random.fork_rng(devices=[]):  # LoRA's A matrices come from the global generator
        torch.manual_seed(derive(seed, "lora init"))
        peft_model = lora.add_lora(copy.deepcopy(model), r=spec.lora_rank, alpha=2 * spec.lora_rank)
    space = lora.adapter_space(peft_model)
    return steering.activation_shift(space, steering.gradient_step(space, step, spec.lora_step_norm), probe), space.dim


def _one_split(model, tokenizer, space: ParamSpace, train: list, seed: int,
               spec: AlignmentSpec) -> tuple[dict[str, list | np.ndarray], dict[str, torch.Tensor], int]:
    """One data split (seed ``seed``): ``(per-layer rows, first-seed vectors, LoRA dimension)``."""
    caa_half, step_half = split_halves(train, seed)
    caa, caa_other = caa_of(model, tokenizer, caa_half), caa_of(model, tokenizer, step_half)
    probe = steering.encode_statements(tokenizer, caa_half[:spec.n_probe], device=spec.device)
    step = steering.encode_statements(tokenizer, step_half[:spec.step_batch], device=spec.device)
    full = steering.activation_shift(space, steering.gradient_step(space, step, spec.step_norm), probe)
    contrast = steering.activation_shift(
        space, steering.gradient_step(space, step, spec.step_norm, steering.contrast_loss), probe, predict=False)
    order = torch.randperm(len(step), generator=generator(seed, "shuffled labels")).to(spec.device)
    shuffled_labels = step.labels[order]
    shuffled = steering.activation_shift(
        space, steering.gradient_step(space, step.with_labels(shuffled_labels), spec.step_norm), probe,
        predict=False)
    low, dim_lora = _lora_shift(model, step, probe, seed, spec)
    rows = {"full": _cos(full.measured, caa), "full_pred": _cos(full.predicted, caa),
            "contrast": _cos(contrast.measured, caa), "lora": _cos(low.measured, caa),
            "lora_pred": _cos(low.predicted, caa), "shuffled": _cos(shuffled.measured, caa),
            "split": _cos(caa, caa_other), "err_full": _rel_error(full), "err_lora": _rel_error(low),
            "loss_full": [full.loss_before, full.loss_after], "loss_lora": [low.loss_before, low.loss_after]}
    return rows, {"caa": caa.cpu(), "shift_full": full.measured.cpu(), "shift_lora": low.measured.cpu()}, int(dim_lora)


@cache.cached
def alignment(spec: AlignmentSpec, model_name: str) -> Alignment:
    """C8 for one model: cosines of gradient-step activation shifts with CAA, per seed and layer."""
    model, tokenizer = models.load(model_name, device=spec.device)
    train = labelled_statements(spec.data, "train", 4 * max(spec.n_probe, spec.step_batch))
    if max(spec.n_probe, spec.step_batch) > len(train) // 2:
        raise ConfigError(f"n_probe and step_batch must be at most half of the {len(train)} training "
                          f"statements (got {spec.n_probe}, {spec.step_batch}).")
    space = ParamSpace(model)
    rows: dict[str, list] = {}
    first: dict[str, torch.Tensor] = {}
    for seed in tqdm(spec.seeds, desc=f"alignment ({model_name})"):
        row, vectors, dim_lora = _one_split(model, tokenizer, space, train, seed, spec)
        for key, value in row.items():
            rows.setdefault(key, []).append(value)
        first = first or vectors
    caa = first["caa"]
    random_dirs = torch.randn(spec.n_null, caa.shape[1], generator=generator(spec.seed, "null directions"))
    null = steering.cosine(random_dirs[None], caa[:, None]).abs()  # (layers, n_null)
    stack = {k: np.asarray(v, dtype=float) for k, v in rows.items()}
    return Alignment(
        model=model_name, seeds=spec.seeds, cos_full=stack["full"], cos_full_pred=stack["full_pred"],
        cos_contrast=stack["contrast"], cos_lora=stack["lora"], cos_lora_pred=stack["lora_pred"],
        cos_shuffled=stack["shuffled"], caa_split=stack["split"], pred_error_full=stack["err_full"],
        pred_error_lora=stack["err_lora"], null_q95=np.quantile(null.numpy(), 0.95, axis=1),
        loss_full=stack["loss_full"], loss_lora=stack["loss_lora"], caa=caa.numpy(),
        shift_full=first["shift_full"].numpy(), shift_lora=first["shift_lora"].numpy(),
        d_model=int(caa.shape[1]), dim_full=space.dim, dim_lora=dim_lora)


@dataclass
class SteeringGrid:
    """Steering results for one model. ``layers`` ``(G,)`` grid blocks, ``scales`` ``(S,)`` (in
    units of the CAA norm), ``vectors`` (names, :data:`VECTORS`), ``layer`` the steering block;
    ``baseline`` the unsteered metrics; ``accuracy`` (fraction), ``margin``, ``signed_margin``
    (nats), ``perplexity``: ``(V, G, S)`` arrays while each vector (rescaled to the CAA vector's
    norm at that layer) is added with each scale (NaN where not measured: vectors outside
    :data:`GRID_VECTORS` only at the steering block); ``norms`` ``(G,)`` CAA norms; ``n_eval``
    held-out statements, ``side_tokens`` tokens of prose."""

    model: str
    layers: list[int]
    scales: list[float]
    vectors: tuple[str, ...]
    layer: int
    baseline: dict[str, float]
    accuracy: np.ndarray
    margin: np.ndarray
    signed_margin: np.ndarray
    perplexity: np.ndarray
    norms: np.ndarray
    n_eval: int
    side_tokens: int

    def at(self, vector: str, metric: str) -> np.ndarray:
        """``(G, S)`` values of ``metric`` for one vector."""
        return getattr(self, metric)[self.vectors.index(vector)]


def side_text(tokenizer, n_tokens: int) -> str:
    """The first ``n_tokens`` tokens of :func:`lls.textdata.held_out_text`, as text."""
    ids = tokenizer(textdata.held_out_text(), add_special_tokens=False)["input_ids"][:n_tokens]
    return tokenizer.decode(ids)


def steering_vectors(found: Alignment, seed: int) -> dict[str, torch.Tensor]:
    """Each vector of :data:`VECTORS`, ``(layers, d_model)``: CAA, the two steps' shifts, and a
    Gaussian random control (stream ``"random steering vector"`` of ``seed``)."""
    caa = torch.from_numpy(found.caa)
    random_dirs = torch.randn(caa.shape, generator=generator(seed, "random steering vector"))
    return {"CAA": caa, "step (all params)": torch.from_numpy(found.shift_full),
            "step (LoRA)": torch.from_numpy(found.shift_lora), "random": random_dirs}


@cache.cached
def steering_grid(spec: GridSpec, model_name: str) -> SteeringGrid:
    """C9 for one model: target and side metrics of each vector over layers and scales."""
    found = alignment(spec.alignment, model_name)
    model, tokenizer = models.load(model_name, device=spec.alignment.device)
    test = labelled_statements(spec.alignment.data, "test", spec.n_eval)[:spec.n_eval]
    text = side_text(tokenizer, spec.side_tokens)
    lay = layers.resolve_layer(model, spec.layer)
    grid = grid_layer_ids(layers.num_layers(model), spec.grid_layers, lay)
    scales = list(spec.scales)
    raw = steering_vectors(found, spec.alignment.seed)
    norms = raw["CAA"].norm(dim=-1)
    metrics = ("accuracy", "margin", "signed_margin", "perplexity")
    out = {m: np.full((len(VECTORS), len(grid), len(scales)), np.nan) for m in metrics}
    baseline = steering.steering_metrics(model, tokenizer, test, text)
    jobs = [(v, g, s) for v, name in enumerate(VECTORS) for g, layer in enumerate(grid) for s in range(len(scales))
            if name in GRID_VECTORS or layer == lay]
    for v, g, s in tqdm(jobs, desc=f"steering grid ({model_name})"):
        layer = grid[g]
        vector = raw[VECTORS[v]][layer]
        vector = (vector * norms[layer] / vector.norm()).to(spec.alignment.device)
        result = steering.steering_metrics(model, tokenizer, test, text, layer, vector, scales[s])
        for m in metrics:
            out[m][v, g, s] = result[m]
    return SteeringGrid(model=model_name, layers=grid, scales=scales, vectors=VECTORS, layer=lay,
                        baseline=baseline, norms=norms[grid].numpy(), n_eval=len(test),
                        side_tokens=spec.side_tokens, **out)


@dataclass
class Results:
    """Every model's results, by model name, in the order of ``cfg.models``."""

    found: dict[str, Alignment]
    grids: dict[str, SteeringGrid]


def run(cfg: Config) -> Results:
    """The chapter's experiments for every model of ``cfg.models`` (alignments first, then grids)."""
    names = models.names_from(cfg.models)
    found = {name: alignment(AlignmentSpec.of(cfg), name) for name in names}
    return Results(found, {name: steering_grid(GridSpec.of(cfg), name) for name in names})
