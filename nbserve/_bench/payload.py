"""What ``--payload`` means: a file of JSON lines (one input per line), or a Python expression
(one input, sent with every request)."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbserve._errors import PayloadError

__all__ = ["load_payloads"]


def load_payloads(text: str, namespace: Mapping[str, Any] | None = None) -> list[Any]:
    """The inputs ``--payload TEXT`` names.

    An existing file is read as JSON lines, one input per line. Anything else is a Python
    expression: a literal everywhere, and any expression over the notebook's names when
    ``namespace`` is given (``%serve bench``). Every input must be JSON-serialisable.
    """
    path = Path(text).expanduser()
    if path.suffix in (".jsonl", ".json", ".ndjson") or path.is_file():
        return _json_lines(path)
    try:
        value = eval(text, {}, dict(namespace)) if namespace is not None else ast.literal_eval(text)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the same clear message
        hint = "" if namespace is not None else " (the command line takes literals only: '\"a text\"', 3, [1, 2])"
        raise PayloadError(f"--payload {text}: not a file, and not a valid expression{hint}: {exc}") from None
    _check_json(value, f"--payload {text}")
    return [value]


def _json_lines(path: Path) -> list[Any]:
    if not path.is_file():
        raise PayloadError(f"--payload {path}: no such file (give a file of JSON lines, or a Python expression)")
    inputs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            inputs.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise PayloadError(f"--payload {path}, line {number}: not JSON ({exc.msg}); one input per line") from None
    if not inputs:
        raise PayloadError(f"--payload {path}: the file holds no inputs (one JSON value per line)")
    return inputs


def _check_json(value: Any, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{where}: the input must be JSON ({exc}); HTTP carries JSON only") from None
