"""The results cache: hits, keys on arguments and code, corrupt entries recomputed."""

import pytest

import lls.cache
from lls.cache import cached
from lls.presets import CHAPTERS

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
    # metrics imports claims, presets and provenance; presets imports config; provenance imports cache
    assert {"metrics.py", "claims.py", "presets.py", "config.py", "provenance.py", "cache.py", "errors.py"} <= deps
    assert "plots.py" not in deps and "runner.py" not in deps


def test_a_submodule_import_does_not_pull_in_its_package_reexports():
    from lls.cache import lls_references

    source = "from lls.protocols import forget_recover\nfrom lls.protocols.forget_recover import Phases\n"
    assert lls_references(source) == {"lls.protocols.forget_recover"}
    relative = "from . import forget_recover\nfrom .forget_recover import Phases\n"
    assert lls_references(relative, "lls.protocols") == {"lls.protocols.forget_recover"}
    assert "lls.protocols" in lls_references("from lls.protocols import something_defined_in_init\n")


def _copied_package(tmp_path, monkeypatch):
    import shutil

    pkg = tmp_path / "lls"
    shutil.copytree(lls.cache.PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(lls.cache, "PACKAGE_DIR", pkg)
    for f in (lls.cache.code_hash, lls.cache.dependencies):
        f.cache_clear()
    return pkg


def _edited_hash(pkg, path: str, module: str) -> str:
    target = pkg / path
    target.write_text(target.read_text() + "\n# an edit\n")
    for f in (lls.cache.code_hash, lls.cache.dependencies):
        f.cache_clear()
    return lls.cache.code_hash(module)


def test_module_hash_ignores_unrelated_code_but_not_dependencies(tmp_path, monkeypatch):
    pkg = _copied_package(tmp_path, monkeypatch)
    before = lls.cache.code_hash("lls.metrics")
    assert _edited_hash(pkg, "plots.py", "lls.metrics") == before
    assert _edited_hash(pkg, "presets.py", "lls.metrics") != before
    for f in (lls.cache.code_hash, lls.cache.dependencies):
        f.cache_clear()


@pytest.mark.parametrize("chapter", list(CHAPTERS))
def test_chapter_cache_is_keyed_on_protocol_code_only(chapter, tmp_path, monkeypatch):
    """Editing figures, claims, analysis, the package's __init__, lls.plots or the runner keeps a
    chapter's cached experiments; editing its protocol or a core module the protocol uses does not."""
    package = CHAPTERS[chapter]
    folder = package.split(".")[-1]
    protocol = f"{package}.protocol"
    pkg = _copied_package(tmp_path, monkeypatch)
    before = lls.cache.code_hash(protocol)
    for room in ("figures.py", "claims.py", "analysis.py", "__init__.py"):
        assert _edited_hash(pkg, f"chapters/{folder}/{room}", protocol) == before, room
    for spine in ("plots.py", "runner.py", "book.py", "scorecard.py", "notebook.py"):
        assert _edited_hash(pkg, spine, protocol) == before, spine
    assert _edited_hash(pkg, f"chapters/{folder}/protocol.py", protocol) != before
    after_protocol = lls.cache.code_hash(protocol)
    assert _edited_hash(pkg, "params.py", protocol) != after_protocol  # every protocol trains or evaluates
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
