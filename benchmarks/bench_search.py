"""Benchmark: the random-search engine of ``lls.search`` against the naive way, in one process.

For each model it evaluates the same ``N`` Gaussian perturbations (the same numbers: the naive
way stores the vectors :func:`lls.search.perturbation` returns) three or four ways:

* ``naive``: draw and store all ``N`` noise vectors (``N x D``), then per candidate deep-copy
  the model, add its stored noise, evaluate;
* ``engine``: :func:`lls.search.best_of_n` in place (perturbation regenerated from its seed,
  restored from one saved copy), one candidate at a time;
* ``engine, vmap B``: the same, ``B`` candidates per batched pass (:class:`lls.search.Objective`
  under ``torch.vmap``), for each ``B`` in ``--vmap``.

Reported per way (each run ``--repeat`` times, interleaved; fastest kept): evaluations per second
(the naive way's time includes drawing its noise), the peak resident memory above the level
before it started (sampled every 2 ms by a thread), the bytes of tensors it holds by
construction, and the largest loss difference from the in-place engine (they must agree). Usage::

    python benchmarks/bench_search.py                       # synthetic and cpu models
    python benchmarks/bench_search.py --models synthetic --n 128 --vmap 8 32
    python benchmarks/bench_search.py --json results/bench_search.json

Benchmarks are not tests: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import json
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np
import psutil
import torch

from lls.params import ParamSpace
from lls.search import Objective, best_of_n, perturbation


def _malloc_trim() -> None:
    """Hand freed heap memory back to the OS (glibc), so one way's peak is not hidden by another's leftovers."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


class PeakRSS:
    """Context manager: peak resident set size (bytes) above the level at entry, sampled by a thread."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _watch(self):
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss - self.start)
            time.sleep(self.interval)

    def __enter__(self):
        gc.collect()
        _malloc_trim()
        self.start = psutil.Process().memory_info().rss
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@dataclass
class Row:
    model: str
    way: str
    dim: int
    n: int
    seconds: float
    evals_per_s: float
    peak_rss_mib: float
    held_mib: float
    max_loss_diff: float


def naive(model, objective_of, space_of, n: int, sigma: float, seed: int) -> tuple[np.ndarray, float, float]:
    """Stored noise and a deep copy per candidate. Returns (losses, seconds spent drawing the noise)."""
    space = space_of(model)
    t0 = time.perf_counter()
    noise = torch.stack([perturbation(space, seed, i, sigma) for i in range(n)])  # (N, D)
    drawn = time.perf_counter() - t0
    losses = []
    for i in range(n):
        clone = copy.deepcopy(model)
        clone_space = space_of(clone)
        with torch.no_grad():
            clone_space.set_(clone_space.get() + noise[i])
        losses.append(objective_of(clone)())
        del clone, clone_space
    return np.array(losses), drawn


def bench_model(name: str, model, objective_of, n: int, sigma: float, vmaps: list[int], repeat: int,
                seed: int = 0) -> list[Row]:
    """Every way ``repeat`` times, interleaved; the fastest repeat and the largest peak are kept."""
    space = ParamSpace(model)
    objective = objective_of(model)
    d, bytes_d = space.dim, space.dim * 4

    def engine(b):
        res = best_of_n(space, objective, n, sigma, seed, antithetic=False, batch_size=b, progress=False)
        return res.plus, None

    ways = {"engine (in place)": (lambda: engine(1), 2), **{f"engine, vmap {b}": ((lambda b=b: engine(b)), 2 + b)
                                                             for b in vmaps},
            "naive (stored noise, copies)": (lambda: naive(model, objective_of, ParamSpace, n, sigma, seed), n + 1)}
    best: dict[str, list] = {w: [np.inf, 0, None, None] for w in ways}
    for _ in range(repeat):
        for way, (run, _) in ways.items():
            with PeakRSS() as mem:
                t0 = time.perf_counter()
                losses, drawn = run()
                sec = time.perf_counter() - t0
            slot = best[way]
            slot[0], slot[1] = min(slot[0], sec), max(slot[1], mem.peak)
            slot[2], slot[3] = losses, drawn
    ref = best["engine (in place)"][2]
    rows = []
    for way, (_, held) in ways.items():
        sec, peak, losses, drawn = best[way]
        label = way if drawn is None else f"{way}; drawing the noise: {drawn:.2f} s"
        rows.append(Row(name, label, d, n, sec, n / sec, peak / 2**20, held * bytes_d / 2**20,
                        float(np.abs(losses - ref).max())))
    return rows


def synthetic_model(eval_batch: int):
    """Chapter 2's synthetic transformer at the cpu preset's size (random weights: speed only)."""
    from lls.chapters.synthetic import config, protocol
    from lls.synthetic import batch_loss

    c2 = config.PRESETS["cpu"].training()
    space = protocol.build(c2, 0)
    space.model.set_attn_implementation("eager")  # vmap has no batching rule for fused CPU attention
    batch = protocol.task_family(c2).batch(c2.task, eval_batch, torch.Generator().manual_seed(0))
    return space.model, lambda m: Objective(m, batch_loss, batch)


def cpu_model():
    """The cpu preset's pretrained LM (SmolLM2-135M), all weights, answer loss on 4 examples."""
    from lls import evaluation, models, textdata

    model, tok = models.load("smollm2-135m")
    batch = textdata.encode(tok, textdata.examples("plural", "train", 4, 0))
    return model, lambda m: Objective(m, evaluation.answer_loss, batch)


def table(rows: list[Row]) -> str:
    lines = ["| model | way | D | N | evals/s | peak RSS (MiB) | tensors held (MiB) | max abs Δloss vs engine |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.way} | {r.dim:,} | {r.n} | {r.evals_per_s:.2f} | {r.peak_rss_mib:.0f} | "
                     f"{r.held_mib:.0f} | {r.max_loss_diff:.1e} |")
    return "\n".join(lines)


def ratios(rows: list[Row]) -> str:
    out = []
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        eng, nai = mine[0], mine[-1]
        out.append(f"{model}: engine / naive speed x{eng.evals_per_s / nai.evals_per_s:.2f}, "
                   f"naive / engine peak memory x{nai.peak_rss_mib / max(eng.peak_rss_mib, 1):.1f} "
                   f"(tensors held x{nai.held_mib / eng.held_mib:.1f})")
        for r in mine[1:-1]:
            out.append(f"{model}: {r.way} / in place speed x{r.evals_per_s / eng.evals_per_s:.2f}")
    return "\n".join(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["synthetic", "cpu"], choices=["synthetic", "cpu"])
    parser.add_argument("--n", type=int, default=None, help="candidates (default 256 synthetic, 4 cpu)")
    parser.add_argument("--vmap", type=int, nargs="*", default=None,
                        help="vmap batch sizes (default 8 32 synthetic, none for cpu)")
    parser.add_argument("--sigma", type=float, default=1e-3)
    parser.add_argument("--eval-batch", type=int, default=32,
                        help="synthetic sequences per evaluation (32: chapter 4's cpu preset)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each way (fastest kept)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for which in args.models:
        model, objective_of = synthetic_model(args.eval_batch) if which == "synthetic" else cpu_model()
        n = args.n or (256 if which == "synthetic" else 4)
        vmaps = args.vmap if args.vmap is not None else ([8, 32] if which == "synthetic" else [])
        rows += bench_model(which, model, objective_of, n, args.sigma, vmaps, args.repeat)
        del model
        gc.collect()
    print(table(rows))
    print(ratios(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=2)


if __name__ == "__main__":
    main()
