"""Chapter 5: from one gradient step to a steering vector (claims C8 and C9).

Two cached experiments, each for one model:

* :func:`alignment`: for each seed, a random split of the training statements into a *probe*
  half (CAA vector, and the prompts on which activation shifts are measured) and a *step* half
  (the batch of the gradient step). One normalised gradient step on the labelled true/false
  objective (:func:`lls.steering.truth_loss`) in all parameters, one in LoRA parameters, one on
  shuffled labels; the mean last-token activation shift each causes at every layer (measured, and
  predicted to first order by a jvp); cosines with the CAA vector per layer; null baselines.
* :func:`steering_grid`: the CAA vector, the gradient-step shift (full and LoRA) and a random
  control, each rescaled to the CAA vector's norm at its layer, added over a grid of layers and
  scales; target gain (accuracy, margin on held-out statements) and side cost (perplexity of
  unrelated prose).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from lls import cache, layers, lora, models, steering, textdata
from lls.errors import ConfigError
from lls.params import ParamSpace
from lls.presets import Config, Param

_P = ("smoke", "cpu", "paper")


def _d(smoke, cpu, paper) -> dict:
    return dict(zip(_P, (smoke, cpu, paper), strict=True))


PARAMS: dict[str, Param] = {
    "models": Param(str, "comma-separated model names (lls.models.MODEL_NAMES)",
                    _d("tiny-llama,tiny-gpt2", "smollm2-135m", "qwen2.5-0.5b,olmo")),
    "data": Param(str, "labelled statements: the book's facts, or BoolQ questions (hub)",
                  _d("statements", "statements", "boolq"), choices=("statements", "boolq")),
    "n_probe": Param(int, "statements (of the CAA half) on which activation shifts are measured",
                     _d(24, 48, 256), low=4),
    "step_batch": Param(int, "statements (of the other half) in the gradient step's batch",
                        _d(16, 32, 128), low=2),
    "n_test": Param(int, "held-out statements for the steering evaluation (at most the split's size)",
                    _d(16, 100, 500), low=2),
    "n_seeds": Param(int, "seeds (random data splits) for the alignment", _d(2, 3, 5), low=1, high=20),
    "step_norm": Param(float, "norm of the full-parameter gradient step", _d(1e-3, 1e-2, 1e-2),
                       low=1e-8, high=100.0),
    "lora_step_norm": Param(float, "norm of the LoRA-parameter gradient step", _d(1e-3, 1e-2, 1e-2),
                            low=1e-8, high=100.0),
    "lora_rank": Param(int, "LoRA rank (query/value projections)", _d(4, 8, 8), low=1, high=256),
    "layer": Param(int, "steering layer (block index); -1 = the middle block", _d(-1, -1, -1), low=-1),
    "grid_layers": Param(int, "layers in the layer-by-scale steering grid (evenly spaced)",
                         _d(2, 3, 8), low=1),
    "scales": Param(str, "comma-separated steering scales, in units of the CAA vector's norm",
                    _d("-8,8", "-32,-8,8,32", "-32,-8,-2,2,8,32")),
    "side_tokens": Param(int, "tokens of held-out prose for the perplexity side cost",
                         _d(64, 128, 1024), low=8),
    "n_null": Param(int, "random directions for the cosine null baseline", _d(200, 2000, 2000), low=10),
}

VECTORS = ("CAA", "step (all params)", "step (LoRA)", "random")
#: Vectors evaluated at every grid block; the others only at the steering block (to save time).
GRID_VECTORS = ("CAA", "step (all params)")


def check(cfg: Config) -> None:
    """Chapter-specific checks of ``cfg`` (raise :class:`ConfigError` before any heavy work)."""
    names = model_names(cfg)
    unknown = [n for n in names if n not in models.MODEL_NAMES and "/" not in n]
    if unknown or not names:
        raise ConfigError(f"models={cfg.models!r}: {unknown or 'empty'} not in {list(models.MODEL_NAMES)} "
                          f"(or a hub id 'owner/name'). Pass e.g. models=smollm2-135m.")
    if "synthetic-gpt2" in names:
        raise ConfigError("synthetic-gpt2 has no tokenizer and cannot read statements; pick another model.")
    scale_list(cfg)


def model_names(cfg: Config) -> list[str]:
    """The models of ``cfg.models``, in order."""
    return [n.strip() for n in cfg.models.split(",") if n.strip()]


def scale_list(cfg: Config) -> list[float]:
    """The steering scales of ``cfg.scales`` (non-zero floats, sorted)."""
    try:
        values = sorted(float(x) for x in cfg.scales.split(","))
    except ValueError:
        raise ConfigError(f"scales={cfg.scales!r} is not a comma-separated list of numbers; "
                          f"pass e.g. scales=-2,-1,1,2.") from None
    if not values or 0.0 in values:
        raise ConfigError(f"scales={cfg.scales!r}: give non-zero scales (0 is the unsteered baseline, "
                          f"always measured).")
    return values


def _statements(cfg: Config, split: str) -> list:
    if cfg.data == "boolq":
        return textdata.boolq(split, 4 * max(cfg.n_probe, cfg.step_batch) if split == "train" else cfg.n_test)
    return textdata.statements(split)


def fact_groups(statements: list) -> list[list]:
    """Group each true statement with the false statement of its topic that shares the longest
    text prefix (its false twin, e.g. "The capital of Peru is Lima." / "... is Quito."); one with
    no common prefix at all stays alone. Unpaired data (BoolQ) get arbitrary pairs, which only
    move together in :func:`split_halves`. Groups keep the input order of their first member."""
    import os

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
    subjects landed on which side, not truth."""
    gen = torch.Generator().manual_seed(seed)
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
    mix = torch.Generator().manual_seed(seed + 1)
    return ([first[i] for i in torch.randperm(len(first), generator=mix).tolist()],
            [second[i] for i in torch.randperm(len(second), generator=mix).tolist()])


def steering_layer(cfg: Config, n_layers: int) -> int:
    """The steering layer: ``cfg.layer``, or the middle block for -1."""
    layer = n_layers // 2 if cfg.layer == -1 else cfg.layer
    if layer >= n_layers:
        raise ConfigError(f"layer={cfg.layer} but the model has {n_layers} blocks (0..{n_layers - 1}).")
    return layer


def grid_layer_ids(cfg: Config, n_layers: int) -> list[int]:
    """``cfg.grid_layers`` blocks evenly spaced from the second to the second-to-last (all blocks
    of a model that has fewer), the one nearest the steering layer replaced by it."""
    lay = steering_layer(cfg, n_layers)
    if n_layers <= 2:
        return list(range(n_layers))
    ids = [int(round(x)) for x in np.linspace(1, n_layers - 2, min(cfg.grid_layers, n_layers - 2))]
    ids[int(np.argmin([abs(i - lay) for i in ids]))] = lay
    return sorted(set(ids))


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
    truth loss on the probe before/after each step. Vectors of the first seed, ``(layers, d)``:
    ``caa``, ``shift_full``, ``shift_lora``; sizes ``d_model``, ``dim_full``, ``dim_lora``.
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


def _rel_error(shift: steering.Shift) -> np.ndarray:
    return ((shift.measured - shift.predicted).norm(dim=-1) / shift.predicted.norm(dim=-1)).numpy()


def _cos(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return steering.cosine(a, b).numpy()


@cache.cached
def alignment(cfg: Config, model_name: str) -> Alignment:
    """C8 for one model: cosines of gradient-step activation shifts with CAA, per seed and layer."""
    model, tokenizer = models.load(model_name)
    train = _statements(cfg, "train")
    if max(cfg.n_probe, cfg.step_batch) > len(train) // 2:
        raise ConfigError(f"n_probe and step_batch must be at most half of the {len(train)} training "
                          f"statements (got {cfg.n_probe}, {cfg.step_batch}).")
    seeds = [cfg.seed + i for i in range(cfg.n_seeds)]
    keys = ("full", "full_pred", "contrast", "lora", "lora_pred", "shuffled", "split", "err_full", "err_lora",
            "loss_full", "loss_lora")
    rows: dict[str, list] = {k: [] for k in keys}
    space = ParamSpace(model)
    first: dict[str, torch.Tensor] = {}

    def caa_of(statements):
        batch = steering.encode_statements(tokenizer, statements)
        with torch.no_grad():
            return steering.caa_vectors(steering.last_token_activations(model, batch, model), batch.labels)

    for seed in tqdm(seeds, desc=f"alignment ({model_name})"):
        caa_half, step_half = split_halves(train, seed)
        caa, caa_other = caa_of(caa_half), caa_of(step_half)
        probe = steering.encode_statements(tokenizer, caa_half[:cfg.n_probe])
        step = steering.encode_statements(tokenizer, step_half[:cfg.step_batch])
        full = steering.activation_shift(space, steering.gradient_step(space, step, cfg.step_norm), probe)
        contrast = steering.activation_shift(
            space, steering.gradient_step(space, step, cfg.step_norm, steering.contrast_loss), probe, predict=False)
        shuffled_labels = step.labels[torch.randperm(len(step), generator=torch.Generator().manual_seed(seed))]
        shuffled = steering.activation_shift(
            space, steering.gradient_step(space, step.with_labels(shuffled_labels), cfg.step_norm), probe,
            predict=False)
        torch.manual_seed(seed)  # LoRA's A matrices come from the global generator
        peft_model = lora.add_lora(copy.deepcopy(model), r=cfg.lora_rank, alpha=2 * cfg.lora_rank)
        lora_space = lora.adapter_space(peft_model)
        low = steering.activation_shift(lora_space, steering.gradient_step(lora_space, step, cfg.lora_step_norm),
                                        probe)
        del peft_model
        for key, value in (("full", _cos(full.measured, caa)), ("full_pred", _cos(full.predicted, caa)),
                           ("contrast", _cos(contrast.measured, caa)),
                           ("lora", _cos(low.measured, caa)), ("lora_pred", _cos(low.predicted, caa)),
                           ("shuffled", _cos(shuffled.measured, caa)), ("split", _cos(caa, caa_other)),
                           ("err_full", _rel_error(full)), ("err_lora", _rel_error(low)),
                           ("loss_full", [full.loss_before, full.loss_after]),
                           ("loss_lora", [low.loss_before, low.loss_after])):
            rows[key].append(value)
        if not first:
            first = {"caa": caa, "shift_full": full.measured, "shift_lora": low.measured}
    gen = torch.Generator().manual_seed(cfg.seed)
    caa = first["caa"]
    random_dirs = torch.randn(cfg.n_null, caa.shape[1], generator=gen)
    null = steering.cosine(random_dirs[None], caa[:, None]).abs()  # (layers, n_null)
    stack = {k: np.asarray(v, dtype=float) for k, v in rows.items()}
    return Alignment(
        model=model_name, seeds=seeds, cos_full=stack["full"], cos_full_pred=stack["full_pred"],
        cos_contrast=stack["contrast"],
        cos_lora=stack["lora"], cos_lora_pred=stack["lora_pred"], cos_shuffled=stack["shuffled"],
        caa_split=stack["split"], pred_error_full=stack["err_full"], pred_error_lora=stack["err_lora"],
        null_q95=np.quantile(null.numpy(), 0.95, axis=1), loss_full=stack["loss_full"],
        loss_lora=stack["loss_lora"], caa=first["caa"].numpy(), shift_full=first["shift_full"].numpy(),
        shift_lora=first["shift_lora"].numpy(), d_model=int(caa.shape[1]), dim_full=space.dim,
        dim_lora=int(lora_space.dim))


@dataclass
class SteeringGrid:
    """Steering results for one model. ``layers`` ``(G,)`` grid blocks, ``scales`` ``(S,)``,
    ``vectors`` (names, :data:`VECTORS`), ``layer`` the steering layer; ``baseline`` the unsteered
    metrics; ``accuracy``, ``margin``, ``signed_margin``, ``perplexity``: ``(V, G, S)`` arrays
    while each vector (rescaled to the CAA vector's norm at that layer) is added with each scale
    (NaN where not measured: vectors outside :data:`GRID_VECTORS` only at the steering layer);
    ``norms`` ``(G,)`` CAA norms; ``n_test`` statements, ``side_tokens`` tokens of prose."""

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
    n_test: int
    side_tokens: int

    def at(self, vector: str, metric: str) -> np.ndarray:
        """``(G, S)`` values of ``metric`` for one vector."""
        return getattr(self, metric)[self.vectors.index(vector)]


def side_text(tokenizer, n_tokens: int) -> str:
    """The first ``n_tokens`` tokens of :func:`lls.textdata.held_out_text`, as text."""
    ids = tokenizer(textdata.held_out_text(), add_special_tokens=False)["input_ids"][:n_tokens]
    return tokenizer.decode(ids)


@cache.cached
def steering_grid(cfg: Config, model_name: str) -> SteeringGrid:
    """C9 for one model: target gain and side cost of each vector over layers and scales."""
    found = alignment(cfg, model_name)
    model, tokenizer = models.load(model_name)
    test = _statements(cfg, "test")[:cfg.n_test]
    text = side_text(tokenizer, cfg.side_tokens)
    n_layers = layers.num_layers(model)
    grid = grid_layer_ids(cfg, n_layers)
    scales = scale_list(cfg)
    caa = torch.from_numpy(found.caa)
    random_dirs = torch.randn(caa.shape, generator=torch.Generator().manual_seed(cfg.seed + 7919))
    raw = {"CAA": caa, "step (all params)": torch.from_numpy(found.shift_full),
           "step (LoRA)": torch.from_numpy(found.shift_lora), "random": random_dirs}
    norms = caa.norm(dim=-1)
    metrics = ("accuracy", "margin", "signed_margin", "perplexity")
    out = {m: np.full((len(VECTORS), len(grid), len(scales)), np.nan) for m in metrics}
    baseline = steering.steering_metrics(model, tokenizer, test, text)
    lay = steering_layer(cfg, n_layers)
    jobs = [(v, g, s) for v, name in enumerate(VECTORS) for g, layer in enumerate(grid) for s in range(len(scales))
            if name in GRID_VECTORS or layer == lay]
    for v, g, s in tqdm(jobs, desc=f"steering grid ({model_name})"):
        layer = grid[g]
        vector = raw[VECTORS[v]][layer]
        vector = vector * norms[layer] / vector.norm()
        result = steering.steering_metrics(model, tokenizer, test, text, layer, vector, scales[s])
        for m in metrics:
            out[m][v, g, s] = result[m]
    return SteeringGrid(model=model_name, layers=grid, scales=scales, vectors=VECTORS,
                        layer=lay, baseline=baseline, norms=norms[grid].numpy(),
                        n_test=len(test), side_tokens=cfg.side_tokens, **out)


# --- summaries: Table 6 and the claims ------------------------------------------------------------


def table6(grid: SteeringGrid) -> list[dict]:
    """Rows shaped like the paper's Table 6, at the steering layer, one per vector.

    For each vector the scale with the largest accuracy gain on the held-out statements is
    picked (the same selection for every vector, so the random control measures its optimism);
    ``target_gain`` = accuracy gain (points), ``margin_gain`` = change of the mean signed margin
    (nats), ``lean`` = change of the mean margin toward " True" (nats), ``side_cost`` =
    perplexity change of the unrelated prose (%, positive = worse).
    """
    g = grid.layers.index(grid.layer)
    rows = []
    for v, name in enumerate(grid.vectors):
        gains = 100 * (grid.accuracy[v, g] - grid.baseline["accuracy"])
        s = int(np.argmax(gains))
        rows.append({
            "model": grid.model, "vector": name, "layer": grid.layer, "scale": grid.scales[s],
            "target_gain": float(gains[s]),
            "margin_gain": float(grid.signed_margin[v, g, s] - grid.baseline["signed_margin"]),
            "lean": float(grid.margin[v, g, s] - grid.baseline["margin"]),
            "side_cost": float(100 * (grid.perplexity[v, g, s] / grid.baseline["perplexity"] - 1)),
        })
    return rows


def table6_markdown(rows: list[dict], baselines: dict[str, dict]) -> str:
    """A Markdown table of :func:`table6` rows (several models), with each model's baseline."""
    lines = ["| model | vector | layer | best scale | target gain (acc. pts) | Δ signed margin (nats) "
             "| Δ lean to True (nats) | side cost (Δ ppl %) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['vector']} | {r['layer']} | {r['scale']:+g} | {r['target_gain']:+.1f} "
                     f"| {r['margin_gain']:+.2f} | {r['lean']:+.2f} | {r['side_cost']:+.1f} |")
    for model, base in baselines.items():
        lines.append(f"| {model} | (unsteered) | — | 0 | acc. {100 * base['accuracy']:.1f} % "
                     f"| {base['signed_margin']:.2f} | {base['margin']:.2f} | ppl {base['perplexity']:.1f} |")
    return "\n".join(lines)


def response_similarity(grid: SteeringGrid, vector: str, reference: str = "CAA") -> float:
    """Pearson correlation, over the whole layer-by-scale grid, of the lean (mean margin change)
    that ``vector`` causes with the lean ``reference`` causes, where both were measured: 1 = steers
    exactly alike."""
    a = grid.at(vector, "margin").ravel() - grid.baseline["margin"]
    b = grid.at(reference, "margin").ravel() - grid.baseline["margin"]
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


C8_PAPER, C8_TOLERANCE = 0.58, 0.15
C9_PAPER = 1.2


def c8_claim(found: Alignment, layer: int, preset: str):
    """Claim C8 from one model's alignment at the steering layer.

    Verdict rule (fixed before any run): *reproduced* when the mean cosine is within
    ``C8_TOLERANCE`` of the paper's 0.58 or above it, and above both nulls (random directions'
    95 % quantile, and the shuffled-label step's |cosine|); *partly* when above both nulls only;
    *not reproduced* otherwise.
    """
    from lls.metrics import Claim, mean_spread

    value, spread = mean_spread(found.cos_full[:, layer])
    null = max(float(found.null_q95[layer]), float(np.abs(found.cos_shuffled[:, layer]).max()))
    if value > null and value >= C8_PAPER - C8_TOLERANCE:
        verdict = "reproduced"
    elif value > null:
        verdict = "partly"
    else:
        verdict = "not reproduced"
    note = (f"{found.model} ({preset}), block {layer}: cosine of the mean last-token activation shift "
            f"of one gradient step (all parameters) with CAA, over {len(found.seeds)} data splits; nulls: "
            f"random 95 % {found.null_q95[layer]:.2f}, shuffled labels max |cos| "
            f"{np.abs(found.cos_shuffled[:, layer]).max():.2f}; LoRA step {found.cos_lora[:, layer].mean():+.2f}, "
            f"two-answer (labels-only) step {found.cos_contrast[:, layer].mean():+.2f}")
    return Claim("C8", value, C8_PAPER, verdict, note, unit="cosine", spread=spread, seeds=found.seeds)


def c9_claim(grid: SteeringGrid, preset: str):
    """Claim C9 from one model's steering grid at the steering layer.

    Verdict rule (fixed before any run): *reproduced* when the gradient-step vector's best
    accuracy gain is positive, beats the random control's and reaches at least half of CAA's,
    and CAA itself beats the random control; *partly* when it beats the random control only;
    *not reproduced* otherwise.
    """
    from lls.metrics import Claim

    rows = {r["vector"]: r for r in table6(grid)}
    step, caa, rnd = rows["step (all params)"], rows["CAA"], rows["random"]
    beats_random = step["target_gain"] > rnd["target_gain"]
    if beats_random and step["target_gain"] > 0 and caa["target_gain"] > rnd["target_gain"] \
            and step["target_gain"] >= 0.5 * caa["target_gain"]:
        verdict = "reproduced"
    elif beats_random:
        verdict = "partly"
    else:
        verdict = "not reproduced"
    note = (f"{grid.model} ({preset}), block {grid.layer}, {grid.n_test} held-out statements: best accuracy "
            f"gain of the step vector at side cost {step['side_cost']:+.1f} % perplexity; CAA "
            f"{caa['target_gain']:+.1f} pts at {caa['side_cost']:+.1f} %, random {rnd['target_gain']:+.1f} pts; "
            f"lean profile correlation with CAA {response_similarity(grid, 'step (all params)'):.2f}. "
            f"Paper: OLMo BoolQ +1.2 at -17 (units not stated)")
    return Claim("C9", step["target_gain"], C9_PAPER, verdict, note, unit="acc. pts")


# --- figures ------------------------------------------------------------------------------------


def cosine_figure(found: Alignment, layer: int):
    """Cosine with CAA per layer: mean over seeds with ±1 sd error bars, nulls shaded."""
    import plotly.graph_objects as go

    x = list(range(found.cos_full.shape[1]))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x + x[::-1], y=list(found.null_q95) + list(-found.null_q95[::-1]),
                             fill="toself", fillcolor="rgba(128,128,128,0.2)", line={"width": 0},
                             name="random directions (95 % of |cos|)", hoverinfo="skip"))
    series = [("step, all params (measured)", found.cos_full, "#1f77b4", "solid"),
              ("step, all params (jvp prediction)", found.cos_full_pred, "#1f77b4", "dot"),
              ("step, LoRA (measured)", found.cos_lora, "#ff7f0e", "solid"),
              ("step, LoRA (jvp prediction)", found.cos_lora_pred, "#ff7f0e", "dot"),
              ("step on shuffled labels", found.cos_shuffled, "#7f7f7f", "dash"),
              ("two-answer step (labels only)", found.cos_contrast, "#9467bd", "solid"),
              ("CAA on the other half of the data", found.caa_split, "#2ca02c", "solid")]
    for name, values, color, dash in series:
        sd = values.std(axis=0, ddof=1) if values.shape[0] > 1 else None
        fig.add_trace(go.Scatter(x=x, y=values.mean(axis=0), name=name, mode="lines+markers",
                                 line={"color": color, "dash": dash},
                                 error_y=None if sd is None else {"type": "data", "array": sd, "visible": True}))
    fig.add_hline(y=C8_PAPER, line_dash="dot", annotation_text=f"paper {C8_PAPER}")
    fig.add_vline(x=layer, line_dash="dot", line_color="red", annotation_text="steering layer")
    fig.update_layout(title=f"Cosine with the CAA vector, per block ({found.model}, {len(found.seeds)} splits)",
                      xaxis_title="block (residual stream after it)", yaxis_title="cosine",
                      yaxis_range=[-1.05, 1.05], height=460, legend={"orientation": "h", "y": -0.25})
    return fig


def explorer_figure(grid: SteeringGrid):
    """Layer-by-scale explorer: a slider over grid blocks; accuracy gain and perplexity change
    against the scale for every vector at the selected block (static-HTML slider)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from lls.plots import slider_figure

    colors = {"CAA": "#2ca02c", "step (all params)": "#1f77b4", "step (LoRA)": "#ff7f0e", "random": "#7f7f7f"}
    fig = make_subplots(rows=1, cols=2, subplot_titles=("target: accuracy gain (points)",
                                                        "side cost: perplexity change (%)"))
    gain = 100 * (grid.accuracy - grid.baseline["accuracy"])
    cost = 100 * (grid.perplexity / grid.baseline["perplexity"] - 1)
    active = grid.layers.index(grid.layer)
    for col, values in ((1, gain), (2, cost)):
        for v, name in enumerate(grid.vectors):
            fig.add_trace(go.Scatter(x=grid.scales, y=_json_list(values[v, active]), mode="lines+markers", name=name,
                                     line={"color": colors.get(name)}, legendgroup=name, showlegend=col == 1),
                          row=1, col=col)
    frames = [[{"y": _json_list(values[v, g])} for values in (gain, cost) for v in range(len(grid.vectors))]
              for g in range(len(grid.layers))]
    fig = slider_figure(frames, [str(layer) for layer in grid.layers], fig,
                        list(range(2 * len(grid.vectors))), "steering at block", active=active)
    fig.update_xaxes(title_text="scale (× CAA norm at the block)")
    fig.update_layout(title=f"Steering explorer ({grid.model}, {grid.n_test} held-out statements; "
                            f"LoRA step and random only at block {grid.layer})",
                      height=460, legend={"orientation": "h", "y": -0.3})
    return fig


def _json_list(values: np.ndarray) -> list:
    """A list of floats with ``None`` for NaN (not measured), which JSON and plotly accept."""
    return [None if not np.isfinite(x) else float(x) for x in values]
