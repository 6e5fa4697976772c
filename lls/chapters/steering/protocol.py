"""Chapter 5's experiments: from one gradient step to a steering vector (claims C8 and C9).

Three cached experiments, each for one model:

* :func:`format_tuning`: the *tuned* variant's short LoRA tuning of the answer format on topics
  disjoint from every evaluated one (:mod:`lls.chapters.steering.tuning`), with the answer scores
  on the held-out truth statements before and after.
* :func:`alignment` (C8), per concept and variant: for each seed, a random split of the training
  statements into a *probe* half (CAA vector; shifts measured on its prompts) and a *step* half
  (the batch of the step). One normalised gradient step on the concept's labelled objective in
  all parameters, one in LoRA parameters, one on shuffled labels (and, for truth, one on the
  two-answer :func:`lls.steering.contrast_loss`); the activation shift each causes at every
  block, as a mean over the probe and as ΔCAA (shift on positive minus shift on negative
  probes); cosines with CAA; the split-half CAA ceiling; the contrast consistency; a null of
  random directions.
* :func:`steering_grid` (C9): the vectors (CAA, the full step's shift, random directions of the
  same norm) added over blocks and scales on the *validation* split; each vector's block and
  scale picked there (:func:`lls.chapters.steering.targets.choose`); the *test* split read once
  per vector at its pick.

Each takes a small spec holding only what its result depends on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lls import cache, layers, models, steering, textdata
from lls.chapters.steering import tuning
from lls.chapters.steering.alignment_parts import Alignment, one_split
from lls.chapters.steering.concepts import concept_splits, prompt_of
from lls.chapters.steering.config import Config
from lls.chapters.steering.splits import grid_layer_ids, labelled_statements, three_way
from lls.chapters.steering.targets import choose, targets_of
from lls.errors import ConfigError
from lls.params import ParamSpace
from lls.seeds import generator

STEP_VECTORS = ("CAA", "step (all params)")
"""The vectors the steering grid tries at every candidate block and scale (the LoRA step's shift
is read in C8 only, to save evaluations)."""


@dataclass(frozen=True)
class DataSpec:
    """Which statements: ``concept``, truth's ``data`` (statements / boolq / a file path) and the
    file's sha256 ``digest`` ('' for built-in data), sizes, the split seed."""

    concept: str
    data: str
    digest: str
    n_train: int
    n_eval: int
    seed: int

    def splits(self) -> tuple[list, list, list]:
        """``(train, validation, test)`` (:func:`lls.chapters.steering.concepts.concept_splits`)."""
        return concept_splits(self.concept, self.data, self.n_train, self.n_eval, self.seed)

    @classmethod
    def of(cls, cfg: Config, concept: str) -> DataSpec:
        """The data spec of ``concept`` under ``cfg``."""
        data = cfg.statements or cfg.data
        digest = hashlib.sha256(Path(data).read_bytes()).hexdigest() if cfg.statements else ""
        return cls(concept, data, digest, 4 * max(cfg.n_probe, cfg.step_batch), cfg.n_eval, cfg.seed)


@dataclass(frozen=True)
class TuneSpec:
    """The format tuning (see :class:`Config`'s ``tune_*``); ``held`` the truth data whose
    validation and test statements measure it."""

    steps: int
    batch: int
    lr: float
    rank: int
    seed: int
    held: DataSpec
    device: str


@dataclass(frozen=True)
class AlignmentSpec:
    """The parameters :func:`alignment` depends on (see :class:`Config` for each)."""

    data: DataSpec
    variant: str
    tune: TuneSpec
    seed: int
    n_seeds: int
    n_probe: int
    step_batch: int
    step_norm: float
    lora_step_norm: float
    lora_rank: int
    n_null: int
    device: str

    @classmethod
    def of(cls, cfg: Config, concept: str, variant: str) -> AlignmentSpec:
        """The alignment spec of ``concept`` on ``variant`` under ``cfg``."""
        device = cfg.torch_device()
        tune = TuneSpec(cfg.tuning_steps, cfg.tuning_batch, cfg.tuning_lr, cfg.lora_rank, cfg.seed,
                        DataSpec.of(cfg, "truth"), device)
        return cls(DataSpec.of(cfg, concept), variant, tune, cfg.seed, cfg.n_seeds, cfg.n_probe, cfg.step_batch,
                   cfg.step_norm, cfg.lora_step_norm, cfg.lora_rank, cfg.n_null, device)

    @property
    def seeds(self) -> list[int]:
        """The seed of each data split: ``seed, seed + 1, ...`` (``n_seeds`` of them)."""
        return [self.seed + i for i in range(self.n_seeds)]


@dataclass(frozen=True)
class GridSpec:
    """The parameters :func:`steering_grid` depends on: the alignment's and the grid's own."""

    alignment: AlignmentSpec
    side_tokens: int
    layer: int
    grid_layers: int
    scales: tuple[float, ...]
    n_random: int

    @classmethod
    def of(cls, cfg: Config, concept: str, variant: str) -> GridSpec:
        """The grid spec of ``concept`` on ``variant`` under ``cfg``."""
        count = cfg.tuned_grid_layers if variant == "tuned" else cfg.grid_layers
        return cls(AlignmentSpec.of(cfg, concept, variant), cfg.side_tokens, cfg.layer, count,
                   tuple(cfg.scale_list()), cfg.n_random)


@dataclass
class Tuning:
    """The format tuning of one model: ``adapter`` (the tuned LoRA vector), ``losses`` per step
    (nats), ``labels``, ``before``/``after`` answer scores (nats) on the held-out truth statements
    (``split``: "validation" or "test" per statement), ``topics`` tuned on, ``n_statements``."""

    model: str
    adapter: np.ndarray
    losses: list[float]
    labels: np.ndarray
    before: np.ndarray
    after: np.ndarray
    split: list[str]
    topics: list[str]
    n_statements: int


@cache.cached
def format_tuning(spec: TuneSpec, model_name: str) -> Tuning:
    """The tuned variant's LoRA tuning (truth loss, Adam) on :func:`tuning.tuning_statements`,
    measured on *every* validation and test statement of truth's split (not only the ``n_eval``
    the grids read), so that the gate's interval is as narrow as the data allow."""
    from lls.train import train

    model, tokenizer = models.load(model_name, device=spec.device)
    statements = tuning.tuning_statements(spec.seed)
    _, val, test = three_way(labelled_statements(spec.held.data, spec.held.n_train), spec.held.seed)
    held = val + test
    before = steering.statement_numbers(model, tokenizer, held)["score"].numpy()
    peft_model, space = tuning.add_seeded_lora(model, spec.rank, spec.seed)
    batches = tuning.tuning_batches(tokenizer, statements, spec.batch, spec.seed, spec.device)
    traj = train(space, steering.truth_loss, batches, spec.steps, lr=spec.lr, progress=False)
    after = steering.statement_numbers(peft_model, tokenizer, held)["score"].numpy()
    return Tuning(model_name, space.get().cpu().numpy(), list(traj.losses), np.array([s.label for s in held]),
                  before, after, ["validation"] * len(val) + ["test"] * len(test),
                  sorted({s.topic for s in statements}), len(statements))


def load_variant(model_name: str, variant: str, tune: TuneSpec, device: str):
    """``(model, tokenizer)`` of ``variant``: as released, or with the tuned adapter merged in."""
    model, tokenizer = models.load(model_name, device=device)
    if variant == "tuned":
        found = format_tuning(tune, model_name)
        model = tuning.merged(model, tune.rank, tune.seed, found.adapter)
    return model, tokenizer


@cache.cached
def alignment(spec: AlignmentSpec, model_name: str) -> Alignment:
    """C8 for one model, concept and variant: cosines of step shifts with CAA, per seed and block."""
    model, tokenizer = load_variant(model_name, spec.variant, spec.tune, spec.device)
    train, _, _ = spec.data.splits()
    if max(spec.n_probe, spec.step_batch) > len(train) // 2:
        raise ConfigError(f"n_probe and step_batch must be at most half of the {len(train)} training statements "
                          f"of {spec.data.concept!r} (got {spec.n_probe}, {spec.step_batch}); lower them.")
    space = ParamSpace(model)
    rows: dict[str, list] = {}
    first: dict[str, np.ndarray] = {}
    for seed in tqdm(spec.seeds, desc=f"alignment ({model_name}, {spec.data.concept}, {spec.variant})"):
        row, vectors = one_split(model, tokenizer, space, train, seed, spec)
        for key, value in row.items():
            rows.setdefault(key, []).append(value)
        first = first or vectors
    caa = torch.from_numpy(first["caa"])
    random_dirs = torch.randn(spec.n_null, caa.shape[1], generator=generator(spec.seed, "null directions"))
    null = steering.cosine(random_dirs[None], caa[:, None]).numpy()  # (layers, n_null)
    return Alignment.build(model_name, spec.data.concept, spec.variant, spec.seeds, rows, first, null,
                           space.dim, len(train))


@dataclass
class SteeringGrid:
    """Steering results for one model, concept and variant. ``layers`` ``(G,)`` candidate blocks,
    ``scales`` ``(S,)`` (CAA norms); ``val``: ``{(vector, block, scale): numbers}`` on the
    validation split; ``picked``: ``{vector: (block, scale)}`` chosen there by the primary target
    (``targets[0]``); ``test``: ``{vector: numbers}`` on the test split at the pick; ``base_val``
    / ``base_test``: unsteered numbers (each ``numbers`` = :func:`lls.steering.steered_scores`).
    Random directions are named ``"random i"``; they share the step vector's pick. ``read_layer``:
    the block where C8 is read (``layer`` of the config, -1 = the middle block)."""

    model: str
    concept: str
    variant: str
    targets: tuple[str, ...]
    read_layer: int
    layers: list[int]
    scales: list[float]
    val_statements: list
    test_statements: list
    base_val: dict
    base_test: dict
    val: dict
    picked: dict
    test: dict
    norms: np.ndarray
    side_tokens: int


def side_text(tokenizer, n_tokens: int) -> str:
    """The first ``n_tokens`` tokens of :func:`lls.textdata.held_out_text`, as text."""
    ids = tokenizer(textdata.held_out_text(), add_special_tokens=False)["input_ids"][:n_tokens]
    return tokenizer.decode(ids)


@cache.cached
def steering_grid(spec: GridSpec, model_name: str) -> SteeringGrid:
    """C9 for one model, concept and variant: validation picks, test numbers, random nulls."""
    a = spec.alignment
    found = alignment(a, model_name)
    model, tokenizer = load_variant(model_name, a.variant, a.tune, a.device)
    _, val, test = a.data.splits()
    prompt, text, targets = prompt_of(a.data.concept), side_text(tokenizer, spec.side_tokens), targets_of(
        a.data.concept, a.variant)
    read_layer = layers.resolve_layer(model, spec.layer)
    grid = grid_layer_ids(layers.num_layers(model), spec.grid_layers, read_layer)
    caa = torch.from_numpy(found.caa)
    norms = caa.norm(dim=-1)
    raw = {"CAA": caa, "step (all params)": torch.from_numpy(found.shift_full)}

    def run(statements, name, layer=None, scale=0.0, vector=None):
        if vector is None and name is not None:
            vector = raw[name][layer]
        if vector is not None:
            vector = (vector * norms[layer] / vector.norm()).to(a.device)
        return steering.steered_scores(model, tokenizer, statements, text, layer, vector, scale, prompt)

    base_val, base_test = run(val, None), run(test, None)
    jobs = [(name, layer, scale) for name in STEP_VECTORS for layer in grid for scale in spec.scales]
    found_val = {job: run(val, *job) for job in tqdm(jobs, desc=f"validation ({a.data.concept}, {a.variant})")}
    picked = {name: choose({j[1:]: v for j, v in found_val.items() if j[0] == name}, base_val, val, targets[0])
              for name in STEP_VECTORS}
    layer, scale = picked["step (all params)"]
    gen = generator(a.seed, "random steering vectors")
    for i in range(spec.n_random):
        name = f"random {i}"
        raw[name] = torch.zeros_like(caa)
        raw[name][layer] = torch.randn(caa.shape[1], generator=gen)
        found_val[(name, layer, scale)] = run(val, name, layer, scale)
        picked[name] = (layer, scale)
    tested = {name: run(test, name, *pick) for name, pick in picked.items() if not name.startswith("random")}
    best = choose({name: found_val[(name, layer, scale)] for name in picked if name.startswith("random")},
                  base_val, val, targets[0])
    tested[best] = run(test, best, layer, scale)
    return SteeringGrid(model_name, a.data.concept, a.variant, targets, read_layer, grid, list(spec.scales), val, test,
                        base_val, base_test, found_val, picked, tested, norms[grid].numpy(), spec.side_tokens)


@dataclass
class Results:
    """Every result, keyed ``(model, concept, variant)``; ``tunings`` by model; ``skipped``:
    ``{(model, concept, variant): why}`` for variants not run (a tuned model still at chance)."""

    found: dict[tuple[str, str, str], Alignment]
    grids: dict[tuple[str, str, str], SteeringGrid]
    tunings: dict[str, Tuning]
    skipped: dict[tuple[str, str, str], str]


def run(cfg: Config) -> Results:
    """The chapter's experiments: per model, the tuning (if asked), then per variant and concept
    the alignment and the grid; a tuned variant whose validation AUROC interval does not clear
    ``cfg.tuning_gate`` (0.5 = chance; 0 on smoke, so that its tiny random models reach every path)
    is not used, and it runs only the concepts of ``cfg.tuned_concepts`` (each reason kept in
    ``skipped``)."""
    from lls.chapters.steering.auc import tuning_gate

    out = Results({}, {}, {}, {})
    for name in models.names_from(cfg.models):
        for variant in cfg.variant_list():
            if variant == "tuned":
                out.tunings[name] = format_tuning(AlignmentSpec.of(cfg, "truth", variant).tune, name)
                why = tuning_gate(out.tunings[name], cfg.seed, cfg.tuning_gate)
                if why:
                    out.skipped.update({(name, c, variant): why for c in cfg.concept_list()})
                    continue
            concepts = cfg.tuned_concept_list() if variant == "tuned" else cfg.concept_list()
            out.skipped.update({(name, c, variant): f"the tuned variant is not run on {c} in this preset "
                                f"(`tuned_concepts`, to keep the time budget)"
                                for c in cfg.concept_list() if c not in concepts})
            for concept in concepts:
                key = (name, concept, variant)
                out.found[key] = alignment(AlignmentSpec.of(cfg, concept, variant), name)
                out.grids[key] = steering_grid(GridSpec.of(cfg, concept, variant), name)
    return out
