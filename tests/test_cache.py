"""The results cache: hits, keys on arguments and code, corrupt entries recomputed."""

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
    first = lls.cache.memory(__name__).location
    lls.cache.memory.cache_clear()
    monkeypatch.setattr(lls.cache, "code_hash", lambda module=None: "changedcode0")
    assert lls.cache.memory(__name__).location != first
    assert "changedcode0" in str(lls.cache.memory(__name__).location)


def test_dependencies_follow_lls_imports_transitively():
    from lls.cache import PACKAGE_DIR, dependencies

    deps = {p.relative_to(PACKAGE_DIR).as_posix() for p in dependencies("lls.metrics")}
    # metrics imports presets and provenance; provenance imports cache
    assert {"metrics.py", "presets.py", "provenance.py", "cache.py", "errors.py"} <= deps
    assert "plots.py" not in deps and "runner.py" not in deps


def test_module_hash_ignores_unrelated_code_but_not_dependencies(tmp_path, monkeypatch):
    import shutil

    pkg = tmp_path / "lls"
    shutil.copytree(lls.cache.PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(lls.cache, "PACKAGE_DIR", pkg)
    for f in (lls.cache.code_hash, lls.cache.dependencies):
        f.cache_clear()
    before = lls.cache.code_hash("lls.metrics")
    (pkg / "plots.py").write_text((pkg / "plots.py").read_text() + "\n# unrelated edit\n")
    lls.cache.code_hash.cache_clear()
    assert lls.cache.code_hash("lls.metrics") == before
    (pkg / "presets.py").write_text((pkg / "presets.py").read_text() + "\n# a dependency changed\n")
    lls.cache.code_hash.cache_clear()
    assert lls.cache.code_hash("lls.metrics") != before
    for f in (lls.cache.code_hash, lls.cache.dependencies):
        f.cache_clear()


def test_no_cache_switch(isolated, monkeypatch):
    monkeypatch.setenv("LLS_NO_CACHE", "1")
    lls.cache.memory.cache_clear()
    CALLS.clear()
    square(6), square(6)
    assert CALLS == [6, 6]


def test_code_hash_is_stable():
    assert lls.cache.code_hash() == lls.cache.code_hash() and len(lls.cache.code_hash()) == 12
