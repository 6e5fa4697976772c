"""The results cache: hits, keys on arguments and code, corrupt entries recomputed."""

import pytest

import lls.cache
from lls.cache import cached

CALLS = []


@cached
def square(x):
    CALLS.append(x)
    return x * x


def test_second_call_is_served_from_cache(isolated):
    CALLS.clear()
    assert square(3) == 9 and square(3) == 9 and square(4) == 16
    assert CALLS == [3, 4]


def test_corrupt_entry_is_reported_and_recomputed(isolated, capsys):
    CALLS.clear()
    square(5)
    outputs = list((isolated / "cache").rglob("output.pkl"))
    assert len(outputs) == 1
    outputs[0].write_bytes(b"\x80\x04garbage")
    assert square(5) == 25
    assert CALLS == [5, 5]
    assert "corrupt cache entry of square" in capsys.readouterr().out
    assert square(5) == 25 and CALLS == [5, 5]  # the rewritten entry is served again


def test_cache_location_is_keyed_on_lls_code(isolated, monkeypatch):
    first = lls.cache.memory().location
    lls.cache.memory.cache_clear()
    monkeypatch.setattr(lls.cache, "code_hash", lambda: "changedcode0")
    assert lls.cache.memory().location != first
    assert "changedcode0" in str(lls.cache.memory().location)


def test_no_cache_switch(isolated, monkeypatch):
    monkeypatch.setenv("LLS_NO_CACHE", "1")
    lls.cache.memory.cache_clear()
    CALLS.clear()
    square(6), square(6)
    assert CALLS == [6, 6]


@pytest.mark.parametrize("name", ["code_hash"])
def test_code_hash_is_stable(name):
    assert getattr(lls.cache, name)() == getattr(lls.cache, name)()
