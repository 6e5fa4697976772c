"""Ray for ``lls``: one way to start or join Ray, thread counts for shared cores, and best-of-N on actors.

:func:`start_ray` starts a local Ray instance on this machine's cores (or joins a cluster at
``address``) with usage statistics and the dashboard off; :func:`ray_session` also shuts down
what it started. A local instance needs no network beyond the machine itself.

Work that runs beside other work on the same cores gets ``cores / concurrent tasks`` threads
each (at least 1): :func:`threads_per_task` computes it, each task reserves that many Ray CPUs,
and :func:`worker_env` gives the count to the task as ``OMP_NUM_THREADS`` (the papermill kernels
of a sweep inherit it), together with every ``LLS_*`` variable of the caller.

:class:`SearchActors` runs :func:`lls.search.best_of_n` on Ray actors. Each actor builds its own
copy of the model from a small picklable ``build()``; the driver sends it index ranges ``[start,
stop)`` of candidates; the actor regenerates each perturbation from ``(seed, i)`` through the same
engine (:func:`lls.search.evaluate`) and returns ``(i, sign, loss)``. Only seeds, scalars and
losses travel, and the result is bit for bit the single-process one (same ``build``, same thread
count per process). :func:`best_of_n` is the one-search shorthand.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lls.errors import LLSError
from lls.params import ParamSpace
from lls.search import SearchResult, candidate_pairs, evaluate, search_result

#: The checkout shipped to a cluster's workers (``--address``): this repository's root.
ROOT = Path(__file__).resolve().parent.parent
#: What is not shipped: outputs, the environment, history.
SHIP_EXCLUDES = [".git", ".venv", "results", "_build", "**/__pycache__", "notebooks/*.ipynb"]

#: ``build()`` run inside each actor: returns the space searched and the loss of the model as it is.
Build = Callable[[], tuple[ParamSpace, Callable[[], float]]]


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Start or join Ray unless it already runs in this process; ``True`` if this call started it.

    ``address=None`` starts a new local instance with ``num_cpus`` CPUs (default: this machine's
    cores), even where ``ray start`` runs on this machine (``"auto"`` joins that one). An ``address`` (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``) joins a running
    cluster, whose CPU count is its own, and ships this checkout (``lls/``, ``notebooks/``; not
    results, caches or ``.venv``) to its workers as Ray's ``working_dir``: every node needs only
    the pinned Python environment. If Ray already runs here (a notebook or a test called
    ``ray.init``), that instance is used as it is.
    """
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before ray is imported and initialised
    import ray

    if ray.is_initialized():
        return False
    if address is not None and num_cpus is not None:
        raise LLSError(f"--num-cpus applies to a local Ray instance; the cluster at {address} has its own "
                       f"CPUs. Drop one of the two.")
    if num_cpus is not None and num_cpus < 1:
        raise LLSError(f"--num-cpus must be at least 1, got {num_cpus}.")
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    if address is None:  # "local": a new instance even if `ray start` runs on this machine
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), **options)
        return True
    try:
        ray.init(address=address, runtime_env={"working_dir": str(ROOT), "excludes": SHIP_EXCLUDES}, **options)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise LLSError(
            f"Could not join the Ray cluster at {address!r} ({type(err).__name__}: {err}). Start one with "
            f"`ray start --head` on its head node (then pass --address HEAD_IP:6379) and check that this "
            f"machine can reach it. A cluster with token authentication (Ray's default) also needs "
            f"RAY_AUTH_MODE=token here, with its token in RAY_AUTH_TOKEN or ~/.ray/auth_token."
        ) from None
    return True


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[object]:
    """Yield the ``ray`` module with Ray running (:func:`start_ray`); shut down on exit what was started."""
    started = start_ray(address, num_cpus)
    import ray

    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def cluster_cpus() -> tuple[int, int]:
    """``(total CPUs, CPUs of the largest node)`` of the running Ray instance (alive nodes only)."""
    import ray

    per_node = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]]
    return sum(per_node), max(per_node, default=0)


def threads_per_task(tasks: int, threads: int | None = None, cpus: int | None = None) -> int:
    """Threads (and Ray CPUs) for each of ``tasks`` tasks that run at once where they can.

    Default ``cpus / concurrent tasks``, at least 1 and at most one node's cores, where ``cpus``
    defaults to all of Ray's and the concurrent tasks are ``min(tasks, cpus)``; an explicit
    ``threads`` is checked to fit on a node (a task asking for more CPUs than any node has would
    never start).
    """
    total, largest = cluster_cpus()
    if threads is not None:
        if not 1 <= threads <= largest:
            raise LLSError(f"--threads {threads} does not fit: each task reserves that many CPUs and the "
                           f"largest Ray node has {largest}. Pass a number from 1 to {largest}.")
        return threads
    cpus = total if cpus is None else cpus
    return max(1, min(largest, cpus // max(1, min(tasks, cpus))))


def worker_env(threads: int) -> dict[str, str]:
    """Environment for a worker's task: ``threads`` for OpenMP/MKL (so for torch), and the caller's
    ``LLS_*`` variables (results and cache folders, ``LLS_NO_CACHE``); apply it with :func:`environment`."""
    env = {k: v for k, v in os.environ.items() if k.startswith("LLS_")}
    return {**env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Within the block, ``os.environ`` holds ``values`` and no other ``LLS_*`` variable; restored after.

    Ray reuses worker processes between tasks, and a worker's own environment is the one Ray was
    started with, so each task sets what the driver has now (child processes inherit it).
    """
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("LLS_") and k not in values]:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class SearchWorker:
    """Ray actor holding one copy of the model, built by ``build()`` in the actor's process
    (threads set with ``torch.set_num_threads``)."""

    def __init__(self, build: Build, threads: int):
        torch.set_num_threads(threads)
        self.space, self.eval_loss = build()

    def base(self) -> tuple[float, int]:
        """``(L(theta0), D)``: the loss of the unperturbed model and the dimension of its space."""
        return float(self.eval_loss()), self.space.dim

    def evaluate(self, start: int, stop: int, seed: int, sigma: float, antithetic: bool,
                 basis: torch.Tensor | None, batch_size: int) -> list[tuple[int, int, float]]:
        """``(i, sign, loss)`` for candidates ``start <= i < stop``, perturbations regenerated from ``(seed, i)``."""
        pairs = candidate_pairs(range(start, stop), antithetic)
        losses = evaluate(self.space, self.eval_loss, seed, pairs, sigma, basis=basis,
                          batch_size=batch_size, progress=False)
        return [(i, sign, float(loss)) for (i, sign), loss in zip(pairs, losses, strict=True)]


def range_size(n: int, actors: int, per_pair: int, batch_size: int) -> int:
    """Candidates per index range: about four ranges per actor (so fast actors take more), rounded up
    so that each range holds whole batches of ``batch_size`` evaluations (``per_pair`` = 2 with
    antithetic pairs, else 1); batches then match the single-process engine's exactly."""
    step = batch_size // math.gcd(batch_size, per_pair)
    size = max(1, math.ceil(n / (4 * actors)))
    return math.ceil(size / step) * step


class SearchActors:
    """A pool of Ray actors, each holding one copy of the model, for any number of searches.

    ``build()`` runs once in each actor and returns ``(space, eval_loss)`` exactly as they would
    be passed to :func:`lls.search.best_of_n` (an :class:`lls.search.Objective` for ``batch_size >
    1``). Pass a module-level function or a :func:`functools.partial` of one, so that only its name
    and arguments travel; it must build the same model every time (checked on entry: every
    actor's ``L(theta0)`` must agree).

    ``actors`` defaults to one per Ray CPU; ``threads`` per actor to :func:`threads_per_task`
    (each actor reserves that many Ray CPUs). CPUs held by other work are waited for up to
    :attr:`cpu_wait_s` seconds, then an error says so (actors would otherwise wait for ever).
    Ray is started or joined as in :func:`start_ray`
    (``address``, ``num_cpus``) and shut down on exit if this pool started it. Use as a context
    manager::

        with SearchActors(functools.partial(my_module.build, "smollm2-135m")) as pool:
            result = pool.best_of_n(1024, sigma=1e-3, seed=0)
    """

    #: Seconds to wait for the Ray CPUs the actors need when other work holds them.
    cpu_wait_s: float = 10.0

    def __init__(self, build: Build, *, actors: int | None = None, threads: int | None = None,
                 address: str | None = None, num_cpus: int | None = None):
        self.build, self.actors, self.threads = build, actors, threads
        self._session = ray_session(address, num_cpus)
        self.workers: list = []

    def __enter__(self) -> SearchActors:
        self.ray = self._session.__enter__()
        try:
            count = max(1, self.actors or cluster_cpus()[0])
            self.threads = threads_per_task(count, self.threads)
            need, deadline = count * self.threads, time.monotonic() + self.cpu_wait_s
            while (free := self._free_cpus()) < need and time.monotonic() < deadline:
                time.sleep(0.1)  # e.g. a pool that just closed: Ray frees its CPUs a moment later
            if free < need:
                raise LLSError(f"{count} actors x {self.threads} threads need {need} Ray CPUs but {free} of "
                               f"{cluster_cpus()[0]} are free (other actors or tasks hold the rest). Pass "
                               f"fewer actors or threads, or close the other pool first.")
            actor = self.ray.remote(SearchWorker).options(num_cpus=self.threads)
            self.workers = [actor.remote(self.build, self.threads) for _ in range(count)]
            found = self.ray.get([w.base.remote() for w in self.workers])
            if len(set(found)) != 1:
                raise LLSError(f"The actors' models differ: (L(theta0), D) = {found}. build() must construct "
                               f"the same model every time (seed its initialisation and its data).")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.base, self.dim = found[0]
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.workers:
            self.ray.kill(worker)
        self.workers = []
        self._session.__exit__(None, None, None)

    def _free_cpus(self) -> int:
        return int(self.ray.available_resources().get("CPU", 0))

    def best_of_n(self, n: int, sigma: float, seed: int, *, basis: torch.Tensor | None = None,
                  antithetic: bool = True, batch_size: int = 1, progress: bool = True) -> SearchResult:
        """:func:`lls.search.best_of_n` on the actors: the same arguments, the same result bit for bit.

        ``basis`` ``(D, k)`` is put in Ray's object store once. ``seconds`` in the result is the
        wall time of the candidates' evaluations.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        ray = self.ray
        size = range_size(n, len(self.workers), 2 if antithetic else 1, batch_size)
        todo = iter([(a, min(a + size, n)) for a in range(0, n, size)])
        basis_ref = None if basis is None else ray.put(basis)
        pending, found = {}, {}

        def give(worker) -> None:
            span = next(todo, None)
            if span is not None:
                pending[worker.evaluate.remote(*span, seed, sigma, antithetic, basis_ref, batch_size)] = (
                    worker, span)

        bar = tqdm(total=n, desc=f"best-of-{n} on {len(self.workers)} Ray actors", disable=not progress,
                   leave=False)
        t0 = time.perf_counter()
        for worker in self.workers:
            give(worker)
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            worker, (start, stop) = pending.pop(ref)
            found.update({(i, sign): loss for i, sign, loss in ray.get(ref)})
            bar.update(stop - start)
            give(worker)
        seconds = time.perf_counter() - t0
        bar.close()
        losses = [found[pair] for pair in candidate_pairs(range(n), antithetic)]
        return search_result(self.base, losses, antithetic=antithetic, sigma=sigma, seed=seed,
                             dim=self.dim if basis is None else int(basis.shape[1]), seconds=seconds)


def best_of_n(build: Build, n: int, sigma: float, seed: int, *, actors: int | None = None,
              threads: int | None = None, address: str | None = None, num_cpus: int | None = None,
              **options) -> SearchResult:
    """One search on a :class:`SearchActors` pool made for it (``options``: those of
    :meth:`SearchActors.best_of_n`). For several searches on one model, keep a pool instead."""
    with SearchActors(build, actors=actors, threads=threads, address=address, num_cpus=num_cpus) as pool:
        return pool.best_of_n(n, sigma, seed, **options)
