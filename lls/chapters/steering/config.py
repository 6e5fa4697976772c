"""Chapter 5's parameters: which models and data, the gradient steps, the steering grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lls import models
from lls.config import ChapterConfig, param, presets
from lls.errors import ConfigError


@dataclass(frozen=True)
class Config(ChapterConfig):
    """Chapter 5 (claims C8, C9). Class defaults are the ``cpu`` preset."""

    chapter: ClassVar[str] = "05_steering"
    renamed: ClassVar[dict[str, str]] = {"n_test": "n_eval"}

    models: str = "smollm2-135m"
    """comma-separated model names (lls.models.MODEL_NAMES); the claims are judged on the first"""
    data: str = param("statements", choices=("statements", "boolq"))
    """labelled statements: the book's facts, or BoolQ questions (hub)"""
    n_probe: int = param(48, low=4)
    """statements (of the CAA half) on which activation shifts are measured"""
    step_batch: int = param(32, low=2)
    """statements (of the other half) in the gradient step's batch"""
    n_eval: int = param(100, low=2)
    """held-out statements for the steering evaluation (at most the split's size)"""
    n_seeds: int = param(3, low=1, high=20)
    """seeds (random data splits) for the alignment: seed, seed + 1, ..."""
    step_norm: float = param(1e-2, low=1e-8, high=100.0)
    """norm of the full-parameter gradient step (Euclidean, in parameter units)"""
    lora_step_norm: float = param(1e-2, low=1e-8, high=100.0)
    """norm of the LoRA-parameter gradient step"""
    lora_rank: int = param(8, low=1, high=256)
    """LoRA rank (query/value projections; alpha = 2 * rank)"""
    layer: int = param(-1, low=-1)
    """steering layer (block index); -1 = the middle block"""
    grid_layers: int = param(3, low=1)
    """layers in the layer-by-scale steering grid (evenly spaced)"""
    scales: str = "-32,-8,8,32"
    """comma-separated steering scales, in units of the CAA vector's norm"""
    side_tokens: int = param(128, low=8)
    """tokens of held-out prose for the perplexity side cost"""
    n_null: int = param(2000, low=10)
    """random directions for the cosine null baseline"""

    def scale_list(self) -> list[float]:
        """The steering scales of :attr:`scales`, sorted; ``ValueError`` if one is not a number."""
        return sorted(float(x) for x in self.scales.split(","))

    def rules(self) -> list[tuple[bool, str]]:
        """Known models with a tokenizer; scales that parse and are non-zero."""
        try:
            names, models_error = models.names_from(self.models), ""
        except ConfigError as err:
            names, models_error = [], str(err).rstrip(".")
        try:
            values = self.scale_list()
        except ValueError:
            values = None
        return [
            (not models_error, models_error),
            ("synthetic-gpt2" not in names,
             "synthetic-gpt2 has no tokenizer and cannot read statements; pick another model"),
            (values is not None, f"scales={self.scales!r} is not a comma-separated list of numbers; "
                                 f"pass e.g. scales=-2,-1,1,2"),
            (values is None or 0.0 not in values,
             f"scales={self.scales!r}: give non-zero scales (0 is the unsteered baseline, always measured)"),
        ]


PRESETS = presets(
    Config,
    smoke={"models": "tiny-llama,tiny-gpt2", "n_probe": 24, "step_batch": 16, "n_eval": 16, "n_seeds": 2,
           "step_norm": 1e-3, "lora_step_norm": 1e-3, "lora_rank": 4, "grid_layers": 2, "scales": "-8,8",
           "side_tokens": 64, "n_null": 200},
    cpu={},
    paper={"models": "qwen2.5-0.5b,olmo", "data": "boolq", "n_probe": 256, "step_batch": 128, "n_eval": 500,
           "n_seeds": 5, "grid_layers": 8, "scales": "-32,-8,-2,2,8,32", "side_tokens": 1024},
)
