"""Seed sweeps on Ray: one chapter, many seeds, one ``sweep.json`` with an interval over seeds.

:func:`sweep` validates every seed's parameters before anything starts, reuses the seeds whose
last run is fresh, and runs the others as Ray tasks, each through :func:`lls.runner.run_chapter`
(papermill), so that seed ``s`` lands in ``results/<chapter>/<preset>-<hash>/`` exactly as
``python -m lls run CHAPTER -p seed s`` would put it. After each finished seed it rewrites
``results/<chapter>/<preset>[-<hash of the other overrides>]/sweep.json``: per claim row, the
per-seed values, ``n``, the mean, the spread (sample SD across seeds) and a 95 % Student-t
interval over the seeds. A seed that fails is recorded with its error and the others are kept;
Ctrl-C cancels the running seeds and keeps every finished one; the same command again runs only
what is missing.

A task's worker gets ``cores / concurrent tasks`` threads (:func:`lls.distributed.threads_per_task`,
``threads`` overrides it) and the caller's ``LLS_*`` variables. On a cluster without a shared
file system the worker's run folder comes back with the result and is written here.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lls.claims import REGISTRY
from lls.distributed import cluster_cpus, environment, ray_session, threads_per_task, worker_env
from lls.errors import ConfigError
from lls.metrics import results_root, run_dir
from lls.presets import Config, resolve
from lls.runner import check_folders, check_writable, is_fresh, run_chapter
from lls.stats import t_interval

#: A run folder's files, in the order they are copied: ``run_key`` last, so a partial copy is never fresh.
RUN_FILES = ("executed.ipynb", "metrics.json", "run_key")
#: What ``ci`` means in ``sweep.json``.
INTERVAL = ("95 % Student-t interval over independent seeds: mean ± t(0.975, n-1) · SD / sqrt(n), "
            "n the seeds with a value")
#: The most seeds one range of ``--seeds`` may hold (a typo such as 0-100000 stops at once).
MAX_SEEDS = 10_000
#: Fields of a claim row copied into its ``sweep.json`` entry (from the first seed that has the row);
#: the per-seed notes, which quote that seed's numbers, stay in each seed's ``metrics.json``.
DESCRIPTIVE = ("unit", "paper", "kind", "concept", "model_variant", "reading")


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``: comma-separated seeds and inclusive ranges, each once."""
    seeds: dict[int, None] = {}  # ordered, each once
    for part in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        low, high = (int(match[1]), int(match[2] or match[1])) if match else (0, -1)
        if not match or high < low or high - low >= MAX_SEEDS:
            raise ConfigError(f"--seeds {text!r}: {part!r} is neither a seed nor a range LOW-HIGH of at most "
                              f"{MAX_SEEDS} seeds. Write e.g. --seeds 0-9 or --seeds 0,2,5 or --seeds 0-3,10.")
        seeds.update(dict.fromkeys(range(low, high + 1)))
    return list(seeds)


def run_seed(run: Callable[..., Path], chapter: str, preset: str, overrides: dict, force: bool,
             env: dict[str, str]) -> dict:
    """Body of one seed's Ray task: ``run`` it under ``env``; return its run folder's files or its error.

    Returns ``{"files": {name: bytes}, "seconds", "host"}`` or ``{"error": str, "seconds", "host"}``:
    an error is a value, not an exception, so one seed's failure never stops the others.
    """
    start = time.perf_counter()
    with environment(env):
        try:
            folder = run(chapter, preset, overrides, force=force, progress=False).parent
            out = {"files": {name: (folder / name).read_bytes() for name in RUN_FILES}}
        except Exception as err:  # reported per seed, with its message
            out = {"error": f"{type(err).__name__}: {err}"}
    return {**out, "seconds": time.perf_counter() - start, "host": socket.gethostname()}


def store(folder: Path, files: Mapping[str, bytes]) -> None:
    """Write a run's files into ``folder`` unless they are already there (the worker shared this disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        path = folder / name
        if not path.exists() or path.read_bytes() != files[name]:
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_bytes(files[name])
            os.replace(tmp, path)


def summarize(metrics: Mapping[int, dict]) -> list[dict]:
    """One entry per claim row (claim id, and its k-th row of that id in a run) over the seeds' ``metrics``.

    Each entry: ``id``, ``row``, the claim's ``statement``, the :data:`DESCRIPTIVE` fields, per-seed ``values`` and
    ``verdicts``, ``n``, ``mean``, ``spread`` (SD across seeds), ``ci`` and ``independent``: false
    when the runs' own seed lists overlap (a chapter that averages seeds ``s, s+1, ...`` inside one
    run), in which case the interval is too narrow and ``ci_method`` says so.
    """
    rows: dict[tuple[str, int], dict] = {}
    for seed, payload in sorted(metrics.items()):
        counts: dict[str, int] = {}
        for claim in payload["claims"]:
            k = counts[claim["id"]] = counts.get(claim["id"], -1) + 1
            entry = rows.setdefault((claim["id"], k), {
                "id": claim["id"], "row": k, "statement": REGISTRY[claim["id"]].statement,
                **{f: claim[f] for f in DESCRIPTIVE if f in claim},
                "values": {}, "verdicts": {}, "run_seeds": {}})
            entry["values"][str(seed)] = claim["value"]
            entry["verdicts"][str(seed)] = claim["verdict"]
            entry["run_seeds"][str(seed)] = claim.get("seeds") or [seed]
    out = []
    for entry in rows.values():
        used = [v for v in entry["values"].values() if v is not None]
        runs = list(entry.pop("run_seeds").values())
        independent = sum(map(len, runs)) == len(set().union(*map(set, runs)))
        found = t_interval(used) if used else None
        method = INTERVAL if independent else (
            INTERVAL + "; NOT independent here: the runs share seeds (see -p n_seeds 1), so it is too narrow")
        out.append({**entry, "n": len(used), "mean": found and found.mean, "spread": found and found.sd,
                    "ci": [found.low, found.high] if found and found.known else None,
                    "ci_method": method, "independent": independent})
    return out


def sweep_path(chapter: str, preset: str | None, overrides: Mapping[str, object]) -> Path:
    """``results/<chapter>/<preset>[-<hash of overrides>]/sweep.json`` (the seed left at its default)."""
    return run_dir(resolve(chapter, preset, **overrides)) / "sweep.json"


def _log(message: str) -> None:
    print(f"[lls.sweep] {message}", file=sys.stderr, flush=True)


class _Record:
    """What a sweep knows so far (each seed's status, where Ray ran), written to ``sweep.json``."""

    def __init__(self, path: Path, configs: Mapping[int, Config], todo: Sequence[int]):
        self.path, self.configs, self.todo = path, configs, list(todo)
        self.status = {s: {"status": "not run" if s in todo else "reused"} for s in configs}
        self.info: dict = {"ray": None}
        self.start = time.perf_counter()

    def finish(self, seed: int, out: dict) -> None:
        """Keep one seed's task result (its files written here, or its error) and rewrite ``sweep.json``."""
        if "files" in out:
            store(run_dir(self.configs[seed]), out.pop("files"))
        self.status[seed] = {"status": "failed" if "error" in out else "ran", **out}
        done = sum(self.status[s]["status"] != "not run" for s in self.todo)
        if "error" in out:
            _log(f"seed {seed} FAILED ({done}/{len(self.todo)}): {out['error']}")
        else:
            _log(f"seed {seed} done in {out['seconds']:.0f} s ({done}/{len(self.todo)})")
        self.write()

    def write(self) -> None:
        """Rewrite ``sweep.json`` atomically from the seeds' run folders and their status."""
        ok = [s for s, st in self.status.items() if st["status"] in ("ran", "reused")]
        metrics = {s: json.loads((run_dir(self.configs[s]) / "metrics.json").read_text()) for s in ok}
        first = next(iter(self.configs.values()))
        payload = {
            "chapter": first.chapter, "preset": first.preset,
            "overrides": {k: v for k, v in first.overrides().items() if k != "seed"},
            "seeds": list(self.configs), "complete": len(ok) == len(self.configs),
            "runs": {str(s): {**st, "metrics": str(run_dir(self.configs[s]) / "metrics.json")}
                     for s, st in self.status.items()},
            "interval": INTERVAL, **self.info, "wall_s": time.perf_counter() - self.start,
            "claims": summarize(metrics),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(".sweep.json.tmp")
        tmp.write_text(json.dumps(payload, indent=2))
        os.replace(tmp, self.path)


def _run_on_ray(record: _Record, run: Callable[..., Path], preset: str | None, overrides: dict, force: bool,
                address: str | None, num_cpus: int | None, threads: int | None) -> None:
    """Submit ``record.todo`` as Ray tasks and keep each result as it comes; Ctrl-C cancels the rest."""
    chapter, todo = next(iter(record.configs.values())).chapter, record.todo
    with ray_session(address, num_cpus) as ray:
        threads = threads_per_task(len(todo), threads)
        total = cluster_cpus()[0]
        record.info["ray"] = {"version": ray.__version__, "address": address or "local", "cpus": total,
                              "threads_per_seed": threads}
        _log(f"{chapter} ({record.path.parent.name}), {len(record.configs)} seeds: {len(todo)} to run, "
             f"{len(record.configs) - len(todo)} up to date; Ray with {total} CPUs, "
             f"{min(len(todo), total // threads)} seed(s) at a time, {threads} thread(s) each")
        record.write()
        task = ray.remote(run_seed).options(num_cpus=threads, max_retries=0)
        env = worker_env(threads)
        pending = {task.remote(run, chapter, preset, {**overrides, "seed": s}, force, env): s for s in todo}
        beat = time.monotonic()
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in done:
                    seed = pending.pop(ref)
                    try:
                        out = ray.get(ref)
                    except ray.exceptions.RayError as err:  # the worker died (memory, a signal)
                        out = {"error": f"{type(err).__name__}: {err}", "seconds": None, "host": None}
                    record.finish(seed, out)
                if pending and time.monotonic() - beat > 60:
                    beat = time.monotonic()
                    _log(f"{len(pending)} seed(s) still running or waiting, "
                         f"{time.perf_counter() - record.start:.0f} s so far")
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            record.write()
            _log(f"interrupted: seeds {sorted(pending.values())} cancelled; every finished seed is kept in "
                 f"{record.path}. The same command runs only the missing seeds.")
            raise


def sweep(chapter: str, seeds: Sequence[int], preset: str | None = None,
          overrides: Mapping[str, object] | None = None, *, force: bool = False, address: str | None = None,
          num_cpus: int | None = None, threads: int | None = None,
          run: Callable[..., Path] = run_chapter) -> Path:
    """Run ``chapter`` for every seed in ``seeds`` on Ray; return the path of ``sweep.json``.

    ``overrides`` as for :func:`lls.runner.run_chapter`, without ``seed``. ``address``, ``num_cpus``:
    where Ray runs (:func:`lls.distributed.start_ray`; default a local instance on this machine's
    cores). ``threads`` per seed: default cores / seeds at once (at least 1). ``run`` executes one
    seed (``run_chapter``; a test may pass a stand-in with its signature). Failed seeds are in
    ``sweep.json`` (``runs``, ``complete: false``); Ctrl-C writes ``sweep.json`` with what has
    finished and raises :class:`KeyboardInterrupt`.
    """
    overrides = dict(overrides or {})
    if "seed" in overrides:
        raise ConfigError("Give the seeds of a sweep with --seeds (e.g. --seeds 0-9), not with -p seed.")
    if not seeds:
        raise ConfigError("A sweep needs at least one seed (e.g. --seeds 0-9).")
    configs = {s: resolve(chapter, preset, **overrides, seed=s) for s in seeds}  # every seed, before any work
    check_writable(results_root(), "LLS_RESULTS_DIR")
    record = _Record(sweep_path(chapter, preset, overrides), configs,
                     [s for s, cfg in configs.items() if force or not is_fresh(cfg)])
    if record.todo:
        check_folders()
        _run_on_ray(record, run, preset, overrides, force, address, num_cpus, threads)
    else:
        _log(f"{chapter} ({record.path.parent.name}), {len(seeds)} seeds: every seed is up to date, none re-executed")
    record.write()
    failed = [s for s, st in record.status.items() if st["status"] == "failed"]
    _log(f"{len(seeds) - len(failed)} of {len(seeds)} seeds have results "
         f"({time.perf_counter() - record.start:.0f} s)"
         + (f"; failed: {failed} (errors in sweep.json; rerun to retry them)" if failed else ""))
    return record.path
