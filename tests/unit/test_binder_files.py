"""What Binder installs: the pinned environment, the build steps, and the prebuilt sidebar."""

from __future__ import annotations

import hashlib
import os
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"
LABEXTENSION = ROOT / "labextension"
# Must list what labextension/stamp.js hashes, in the same way.
SIDEBAR_SOURCES = ("package.json", "src", "style", "tsconfig.json", "yarn.lock")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if match := re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip()):
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def test_ci_runs_the_versions_binder_installs() -> None:
    """The Makefile installs with binder/constraints.txt, so this environment is Binder's."""
    pinned = pins(BINDER / "constraints.txt")
    assert {"ray", "torch", "jupyterlab", "ipywidgets", "transformers"} <= pinned.keys()
    differ = {}
    for name, wanted in pinned.items():
        try:
            have = version(name)
        except PackageNotFoundError:
            continue  # pinned for Binder, not installed here (none today; harmless)
        if have != wanted:
            differ[name] = (wanted, have)
    assert not differ, f"installed versions differ from binder/constraints.txt (run `make install`): {differ}"


def test_binder_takes_the_cpu_build_of_the_pinned_torch() -> None:
    requirements = (BINDER / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    assert pins(BINDER / "requirements.txt")["torch"] == pins(BINDER / "constraints.txt")["torch"] == "2.13.0+cpu"
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"


def test_build_scripts_stop_at_the_first_failure_and_are_executable() -> None:
    for name in ("postBuild", "start"):
        script = BINDER / name
        assert os.access(script, os.X_OK), f"binder/{name} must be executable"
    assert "set -euo pipefail" in (BINDER / "postBuild").read_text()
    assert "SKIP_JUPYTER_BUILDER=1" in (BINDER / "postBuild").read_text()
    assert (BINDER / "start").read_text().rstrip().endswith('exec "$@"')


def test_the_prebuilt_sidebar_in_git_matches_its_sources() -> None:
    digest = hashlib.sha256()
    files = []
    for entry in SIDEBAR_SOURCES:
        path = LABEXTENSION / entry
        files += [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for file in sorted(files, key=lambda p: p.relative_to(LABEXTENSION).as_posix()):
        digest.update(file.relative_to(LABEXTENSION).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
        digest.update(b"\0")
    stamp = (ROOT / "nbserve" / "labextension" / "sources.sha256").read_text().strip()
    assert stamp == digest.hexdigest(), (
        "nbserve/labextension was built from other sources: run `jlpm build` in labextension/ "
        "(or `pip install -e .`) and commit nbserve/labextension"
    )
