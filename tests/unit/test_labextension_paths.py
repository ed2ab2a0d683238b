"""The built sidebar is where ``jupyter labextension develop`` looks for it."""

from __future__ import annotations

import json
from pathlib import Path

import nbserve


def test_labextension_paths_point_at_the_built_extension() -> None:
    (entry,) = nbserve._jupyter_labextension_paths()
    built = Path(nbserve.__file__).parent / entry["src"]
    manifest = json.loads((built / "package.json").read_text())
    assert manifest["name"] == entry["dest"] == "nbserve"
    assert (built / "static").is_dir()  # the prebuilt bundle (jupyter-builder's output)
