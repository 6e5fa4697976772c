"""The provenance line each chapter prints: preset, seed, commit, library versions, device."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata

from lls.cache import PACKAGE_DIR, code_hash
from lls.presets import Config


def git_commit() -> str:
    """Short commit of the checkout holding ``lls`` (``+dirty`` if it has local changes)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty else "")


def device_name(device: str) -> str:
    """``device`` with what it is: ``cuda:0 (<GPU name>)`` or ``cpu (<n> threads, <machine>)``."""
    import torch

    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"


def versions() -> dict[str, str]:
    """Installed versions of the libraries whose behaviour the results depend on."""
    out = {}
    for name in ("torch", "transformers", "peft", "numpy", "scipy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def provenance(cfg: Config) -> dict[str, object]:
    """Everything needed to say where a result came from, as a JSON-able dict."""
    return {
        "chapter": cfg.chapter,
        "preset": cfg.preset,
        "seed": cfg.params.get("seed"),
        "overrides": cfg.overrides(),
        "commit": git_commit(),
        "lls_code": code_hash(),
        "versions": versions(),
        "device": device_name(cfg.torch_device()),
    }


def provenance_line(cfg: Config) -> str:
    """One human line, e.g. ``preset cpu · seed 0 · overrides: none · device cpu (2 threads)``."""
    p = provenance(cfg)
    extra = ", ".join(f"{k}={v}" for k, v in p["overrides"].items()) or "none"
    return f"preset {p['preset']} · seed {p['seed']} · overrides: {extra} · device {p['device']}"


def provenance_details(cfg: Config) -> str:
    """An HTML ``<details>`` block: every parameter value of the run, then where it came from."""
    p = provenance(cfg)
    rows = "".join(f"<tr><td><code>{k}</code></td><td>{v}</td></tr>" for k, v in cfg.params.items())
    vers = ", ".join(f"{k} {v}" for k, v in p["versions"].items())
    return (f"<details><summary>All parameter values and provenance</summary><table><tr><th>parameter</th>"
            f"<th>value</th></tr>{rows}</table><p>commit {p['commit']} · lls code {p['lls_code']} · {vers}</p>"
            f"</details>")
