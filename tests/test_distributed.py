"""Best-of-N on Ray actors equals the single-process engine bit for bit (local Ray, 2 CPUs)."""

import os
import sys

import numpy as np
import pytest
import torch
from torch import nn

from lls import distributed, models, search
from lls.errors import LLSError
from lls.params import ParamSpace
from lls.search import Objective


def lm_loss(call, batch):
    """Next-token cross entropy of a causal LM on token ids ``(B, T)``."""
    return call(input_ids=batch, labels=batch).loss


def build():
    """A tiny GPT-2 (D = 4,656) and 8 fixed sequences: ``(space, objective)``, the same every call."""
    model, _ = models.load("synthetic-gpt2", n_layer=1, n_embd=16, n_head=2, vocab_size=20)
    batch = torch.randint(0, 20, (8, 12), generator=torch.Generator().manual_seed(3))
    return ParamSpace(model), Objective(model, lm_loss, batch)


def build_per_process():
    """A small MLP initialised from the process id: a different model in every actor."""
    torch.manual_seed(os.getpid())
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = torch.ones(5, 3), torch.zeros(5, dtype=torch.long)
    return ParamSpace(model), Objective(model, lambda call, b: nn.functional.cross_entropy(call(b[0]), b[1]),
                                        (x, y))


@pytest.fixture(scope="module")
def local_ray(request):
    """A local Ray with 2 CPUs for this module, shut down after it (no Ray outlives the module that
    needs it)."""
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    if distributed.start_ray(num_cpus=2):
        request.addfinalizer(ray.shutdown)


CASES = {"full": dict(), "subspace": dict(basis=True), "vmapped": dict(batch_size=4),
         "one-sided": dict(antithetic=False)}


def test_actors_equal_the_single_process_engine(local_ray):
    """One pool of 2 actors (one model build each), four searches, each equal to the engine's."""
    space, objective = build()
    basis = torch.linalg.qr(torch.randn(space.dim, 6, generator=torch.Generator().manual_seed(1)))[0]
    n, sigma, seed = 13, 0.05, 7  # 13 candidates: ranges of unequal length, a partial last batch
    with distributed.SearchActors(build, actors=2) as pool:
        assert len(pool.workers) == 2 and pool.threads == 1
        late = distributed.SearchActors(build, actors=1)
        late.cpu_wait_s = 0.5
        with pytest.raises(LLSError, match="0 of 2 are free"):  # the pool holds both CPUs
            late.__enter__()
        for name, case in CASES.items():
            options = {**case, "basis": basis if case.get("basis") else None}
            one = search.best_of_n(space, objective, n, sigma, seed, progress=False, **options)
            many = pool.best_of_n(n, sigma, seed, progress=False, **options)
            assert many.base == one.base, name
            assert np.array_equal(many.plus, one.plus) and len(set(one.plus)) == n, name
            assert (many.minus is None and one.minus is None) or np.array_equal(many.minus, one.minus), name
            assert (many.n, many.dim, many.sigma, many.seed) == (one.n, one.dim, one.sigma, one.seed), name


def test_actors_must_build_the_same_model(local_ray):
    with pytest.raises(LLSError, match="models differ"):
        distributed.best_of_n(build_per_process, 4, 0.1, 0, actors=2, progress=False)


def test_ranges_hold_whole_batches():
    assert distributed.range_size(100, 2, per_pair=2, batch_size=1) == 13
    for n, actors, per_pair, batch in [(13, 2, 2, 4), (50, 3, 1, 8), (7, 4, 2, 6)]:
        size = distributed.range_size(n, actors, per_pair, batch)
        assert size * per_pair % batch == 0


def test_thread_count_is_checked(local_ray):
    assert distributed.threads_per_task(4) == 1 and distributed.threads_per_task(1) == 2
    with pytest.raises(LLSError, match="largest Ray node has 2"):
        distributed.threads_per_task(1, threads=3)


def test_environment_is_set_and_restored(monkeypatch):
    monkeypatch.setenv("LLS_STALE", "1")
    with distributed.environment({"LLS_RESULTS_DIR": "/x", "OMP_NUM_THREADS": "3"}):
        assert os.environ["LLS_RESULTS_DIR"] == "/x" and "LLS_STALE" not in os.environ
    assert os.environ["LLS_STALE"] == "1" and os.environ.get("LLS_RESULTS_DIR") != "/x"
