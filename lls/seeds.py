"""The one seed-stream rule: every random generator of a run is derived from its base seed.

A run has one base seed (``cfg.seed``); each stream of random numbers it needs (a data stream,
a probe batch, a random basis, perturbation ``i`` of a search) is named by keys, and its seed is
``derive(seed, *keys)``: NumPy's :class:`~numpy.random.SeedSequence` over the base seed and the
keys (strings are hashed to 32-bit integers), so streams are distinct, reproducible, and never
collide through arithmetic offsets the way ``seed + 7919`` and ``1000 * seed + stage`` can.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def _key(key: int | str) -> int:
    if isinstance(key, str):
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")
    return int(key)


def derive(seed: int, *keys: int | str) -> int:
    """The 63-bit seed of the stream named ``keys`` of a run with base seed ``seed``."""
    state = np.random.SeedSequence([int(seed), *map(_key, keys)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & (2**63 - 1))


def generator(seed: int, *keys: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with :func:`derive` ``(seed, *keys)``."""
    return torch.Generator(device=device).manual_seed(derive(seed, *keys))
