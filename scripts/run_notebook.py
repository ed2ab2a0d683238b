"""Run a notebook headless and print what each cell prints, as it runs.

python scripts/run_notebook.py notebooks/01_quickstart.ipynb
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def _print_outputs(cell: Any, **_: Any) -> None:
    if cell.cell_type != "code":
        return
    source = cell.source.splitlines()[0] if cell.source else ""
    print(f"\n>>> {source}")
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            print(output.text, end="")
        elif output.output_type in ("execute_result", "display_data"):
            print(output.data.get("text/plain", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args()
    notebook = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(notebook, timeout=args.timeout, kernel_name="python3", on_cell_executed=_print_outputs)
    started = time.monotonic()
    try:
        client.execute()
    except CellExecutionError as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 1
    print(f"\n{args.notebook}: all cells ran in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
