"""Shared test settings: one thread per test process, isolated results and cache folders."""

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Point ``lls``'s results and cache folders at a temporary directory for one test."""
    import lls.cache

    monkeypatch.setenv("LLS_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("LLS_CACHE_DIR", str(tmp_path / "cache"))
    lls.cache.memory.cache_clear()
    yield tmp_path
    lls.cache.memory.cache_clear()
