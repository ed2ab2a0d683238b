"""The browser fixtures themselves: JupyterLab starts, a notebook opens, its cells run."""

from __future__ import annotations

from tests.support.lab import Lab


def test_notebook_runs_in_jupyterlab(lab: Lab) -> None:
    path = lab.write_notebook("smoke.ipynb", ["import os\nos.environ.get('JPY_SESSION_NAME')", "6 * 7"])
    lab.open_notebook(path)
    outputs = lab.run_all_cells(timeout=60)
    # Jupyter Server 2 tells a kernel which notebook it belongs to (the registry relies on it).
    assert outputs[0][0]["data"]["text/plain"].endswith("smoke.ipynb'")
    assert outputs[1][0]["data"]["text/plain"] == "42"
    assert lab.screenshot("smoke").exists()
