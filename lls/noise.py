"""A shared Gaussian noise table: perturbations as views into one array drawn once (ES style).

Evolution-strategies implementations since Salimans et al. (2017) draw one large table of
standard normal numbers once and index it by seed, so that a perturbation costs no random
number generation at all. Here a :class:`NoiseTable` holds ``size`` float32 numbers
``T ~ N(0, 1)`` iid, drawn once from its own seed; perturbation ``i`` of parameter tensor ``j``
(``n_j`` numbers) of a search with seed ``seed`` is the slice

``eps_ij = T[o_ij : o_ij + n_j]``,  ``o_ij = derive(seed, i, j) mod (size - n_j + 1)``

(:func:`lls.seeds.derive`), returned as a *view* of the table with the tensor's shape: no copy,
so ``torch.add(saved, eps_ij, alpha=±sigma, out=p)`` is the only pass over the weights per
candidate (:class:`lls.search.Perturber` does exactly that when given ``noise=NoiseTable(...)``).
Memory: the table, whatever the number of candidates.

**Law.** Over the table's draw, every slice is exactly ``N(0, I_{n_j})``. Two slices at different
offsets share no number at the same coordinate, so coordinate by coordinate they are independent
(in particular uncorrelated): across candidates and across the tensors of one candidate alike,
because the tensor index ``j`` enters the offset (the classic bug, one seed reused for every
layer, would make same-shaped tensors of one candidate identical). They are not independent as
whole vectors: two slices of one tensor are shifted windows of the same numbers, so for a fixed
direction ``g`` the covariance of ``g^T eps_ij`` and ``g^T eps_i'j`` is the autocorrelation of
``g`` at lag ``o_i'j - o_ij`` instead of 0, and two candidates collide (the same slice) with
probability ``1 / (size - n_j + 1)`` per pair. Both shrink as the table grows past the largest
tensor; the default :data:`DEFAULT_SIZE` is about 4.7 times SmolLM2-135M's largest tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lls.seeds import derive, generator

DEFAULT_SIZE = 1 << 27
"""Numbers in a default table: 134,217,728 float32 (512 MiB), above SmolLM2-135M's largest tensor
(its 49,152 x 576 = 28,311,552 embedding) by 105.9 M admissible offsets, so a best-of-1000 search
has a chance of about 0.5 % that two candidates share that tensor's slice. The in-place engine
with generator noise holds a noise buffer of ``D`` numbers instead (134.5 M for SmolLM2-135M)."""


class NoiseTable:
    """``size`` iid ``N(0, 1)`` float32 numbers on ``device``, drawn once from ``seed``.

    The table's numbers come from the stream ``derive(seed, "noise-table")``; the search seed
    only chooses offsets, so one table serves any number of searches and seeds.
    """

    def __init__(self, size: int = DEFAULT_SIZE, seed: int = 0, device: str | torch.device = "cpu"):
        if size < 1:
            raise ValueError(f"a noise table needs at least one number, got size={size}")
        self.seed = int(seed)
        self.table = torch.randn(int(size), generator=generator(seed, "noise-table", device=device),
                                 dtype=torch.float32, device=device)

    @property
    def size(self) -> int:
        return self.table.numel()

    @property
    def device(self) -> torch.device:
        return self.table.device

    def __repr__(self) -> str:
        return f"NoiseTable(size={self.size:,}, seed={self.seed}, device={self.device})"

    def offset(self, seed: int, i: int, j: int, numel: int) -> int:
        """Start of perturbation ``i``'s slice for tensor ``j`` of ``numel`` numbers (search seed ``seed``)."""
        if numel > self.size:
            raise ValueError(f"a tensor of {numel:,} numbers does not fit in a noise table of {self.size:,}; "
                             f"build a larger NoiseTable(size=...)")
        return derive(seed, i, j) % (self.size - numel + 1)

    def slice(self, seed: int, i: int, j: int, shape: Sequence[int] | torch.Size) -> torch.Tensor:
        """Unit-variance noise of perturbation ``i`` for tensor ``j``: a view ``shape`` of the table (no copy)."""
        numel = torch.Size(shape).numel()
        start = self.offset(seed, i, j, numel)
        return self.table[start:start + numel].view(shape)

    def views(self, seed: int, i: int, shapes: Sequence[torch.Size]) -> list[torch.Tensor]:
        """Perturbation ``i`` of a list of tensors (tensor ``j`` has ``shapes[j]``), as views of the table."""
        return [self.slice(seed, i, j, shape) for j, shape in enumerate(shapes)]
