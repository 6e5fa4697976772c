"""Chapter 5's parameters: models and their variants, concepts and data, the gradient steps,
the steering grid and its nulls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lls import models
from lls.config import ChapterConfig, param, presets
from lls.errors import ConfigError

CONCEPT_NAMES = ("truth", "plural", "past_tense", "number_words")
VARIANT_NAMES = ("untuned", "tuned")


def _names(value: str, known: tuple[str, ...], what: str) -> tuple[list[str], str]:
    """The comma-separated names of ``value`` and an error ("" when every name is known)."""
    names = [x.strip() for x in value.split(",") if x.strip()]
    bad = [x for x in names if x not in known] or ([] if names else ["(none)"])
    return names, (f"{what}={value!r}: unknown {bad}; pick from {list(known)}" if bad else "")


@dataclass(frozen=True)
class Config(ChapterConfig):
    """Chapter 5 (claims C8, C9). Class defaults are the ``cpu`` preset."""

    chapter: ClassVar[str] = "05_steering"
    renamed: ClassVar[dict[str, str]] = {"n_test": "n_eval"}

    models: str = "smollm2-135m"
    """comma-separated model names (lls.models.MODEL_NAMES); the claims are judged on the first"""
    variants: str = "untuned,tuned"
    """model variants: untuned (as released) and tuned (a short LoRA tuning of the answer format)"""
    concepts: str = "truth,plural,past_tense,number_words"
    """what the vectors contrast: truth, plural, past_tense, number_words (comma-separated)"""
    data: str = param("statements", choices=("statements", "boolq"))
    """truth's statements: the book's facts, or BoolQ questions (hub)"""
    statements: str = ""
    """a JSON file of [{text, label, topic, fact}] replacing the truth statements ('' = use data)"""
    n_probe: int = param(32, low=4)
    """statements (of the CAA half) on which activation shifts are measured"""
    step_batch: int = param(16, low=2)
    """statements (of the other half) in the gradient step's batch"""
    n_eval: int = param(40, low=4)
    """statements in each of the validation and test splits (at most; whole twin pairs)"""
    n_seeds: int = param(3, low=1, high=20)
    """seeds (random halves of the training statements) for the alignment"""
    step_norm: float = param(1e-2, low=1e-8, high=100.0)
    """norm of the full-parameter gradient step (Euclidean, in parameter units)"""
    lora_step_norm: float = param(1e-2, low=1e-8, high=100.0)
    """norm of the LoRA-parameter gradient step"""
    lora_rank: int = param(8, low=1, high=256)
    """LoRA rank (query/value projections; alpha = 2 * rank), of the LoRA step and of the tuning"""
    layer: int = param(-1, low=-1)
    """block where C8 is read; -1 = the middle block (C9 picks its block on validation)"""
    grid_layers: int = param(2, low=1)
    """blocks among which validation picks the steering block (evenly spaced)"""
    scales: str = "4,16"
    """comma-separated positive steering scales, in units of the CAA vector's norm"""
    side_tokens: int = param(128, low=8)
    """tokens of held-out prose for the perplexity side cost"""
    n_null: int = param(1000, low=100)
    """random directions for the cosine null of C8 (a distribution)"""
    n_random: int = param(20, low=2)
    """random steering directions of equal norm for the null of C9"""
    tuning_steps: int = param(80, low=1)
    """LoRA steps of the format tuning (tuned variant; on factual relations and word tasks)"""
    tuning_batch: int = param(16, low=2)
    """statements per tuning step"""
    tuning_lr: float = param(1e-3, low=1e-6, high=1.0)
    """Adam learning rate of the format tuning"""
    tuned_concepts: str = "truth,plural,past_tense"
    """concepts also run on the tuned variant (cpu leaves out number_words, whose likelihood target
    compares texts of different token counts, to keep the time budget)"""
    tuned_grid_layers: int = param(1, low=1)
    """blocks among which validation picks the tuned variant's steering block (cpu: 1 = the block C8
    is read at, to keep the time budget)"""
    tuning_gate: float = param(0.5, low=0.0, high=1.0)
    """the tuned variant is used only if its AUROC interval on every truth validation statement lies wholly above this (0: always)"""

    def scale_list(self) -> list[float]:
        """The steering scales of :attr:`scales`, sorted; ``ValueError`` if one is not a number."""
        return sorted(float(x) for x in self.scales.split(","))

    def concept_list(self) -> list[str]:
        """The concepts of :attr:`concepts`, in order."""
        return _names(self.concepts, CONCEPT_NAMES, "concepts")[0]

    def tuned_concept_list(self) -> list[str]:
        """The concepts of :attr:`concepts` that also run on the tuned variant, in order."""
        tuned = _names(self.tuned_concepts, CONCEPT_NAMES, "tuned_concepts")[0]
        return [c for c in self.concept_list() if c in tuned]

    def variant_list(self) -> list[str]:
        """The model variants of :attr:`variants`, in order."""
        return _names(self.variants, VARIANT_NAMES, "variants")[0]

    def rules(self) -> list[tuple[bool, str]]:
        """Known models with a tokenizer, concepts and variants; positive scales; a readable statements file."""
        try:
            names, models_error = models.names_from(self.models), ""
        except ConfigError as err:
            names, models_error = [], str(err).rstrip(".")
        try:
            values = self.scale_list()
        except ValueError:
            values = None
        concepts_error = _names(self.concepts, CONCEPT_NAMES, "concepts")[1]
        variants_error = _names(self.variants, VARIANT_NAMES, "variants")[1]
        tuned_error = _names(self.tuned_concepts, CONCEPT_NAMES, "tuned_concepts")[1]
        return [
            (not models_error, models_error),
            ("synthetic-gpt2" not in names,
             "synthetic-gpt2 has no tokenizer and cannot read statements; pick another model"),
            (values is not None, f"scales={self.scales!r} is not a comma-separated list of numbers; "
                                 f"pass e.g. scales=4,16"),
            (values is None or all(v > 0 for v in values),
             f"scales={self.scales!r}: give positive scales (0 is the unsteered baseline, always measured; "
             f"a vector steers toward its concept with a positive scale)"),
            (not concepts_error, concepts_error), (not variants_error, variants_error), (not tuned_error, tuned_error),
            (not self.statements or self._statements_error() == "", self._statements_error()),
        ]

    def _statements_error(self) -> str:
        """'' when :attr:`statements` is empty or a valid statements file; else why not."""
        if not self.statements:
            return ""
        from lls.chapters.steering.splits import load_statements

        try:
            load_statements(self.statements)
        except ConfigError as err:
            return str(err).rstrip(".")
        return ""


PRESETS = presets(
    Config,
    smoke={"models": "tiny-llama,tiny-gpt2", "n_probe": 8, "step_batch": 8, "n_eval": 8, "n_seeds": 2,
           "step_norm": 1e-3, "lora_step_norm": 1e-3, "lora_rank": 4, "grid_layers": 2, "scales": "2,8",
           "side_tokens": 16, "n_null": 100, "n_random": 3, "tuning_steps": 2, "tuning_batch": 4,
           "tuning_gate": 0.0, "tuned_concepts": ",".join(CONCEPT_NAMES), "tuned_grid_layers": 2},
    cpu={},
    paper={"models": "qwen2.5-0.5b,olmo", "data": "boolq", "n_probe": 256, "step_batch": 128, "n_eval": 500,
           "n_seeds": 5, "grid_layers": 8, "scales": "2,8,32", "side_tokens": 1024, "tuning_steps": 300,
           "tuned_concepts": ",".join(CONCEPT_NAMES), "tuned_grid_layers": 8},
)
