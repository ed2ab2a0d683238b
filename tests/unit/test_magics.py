"""``%%serve`` and ``%serve`` in an IPython shell, on the in-process backend: what a user
types, and what the magics make of it (no cluster, no kernel)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbserve
from nbserve._bench.loadgen import BenchResult
from nbserve._errors import EndpointNotFoundError

CELL = "def shout(items):\n    return [x.upper() for x in items]\n"
FLAKY = "def flaky(items):\n    return [1 / x for x in items]\n"


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbserve")
    yield shell
    for name in ("shout", "named", "flaky", "bench_me"):
        with contextlib.suppress(EndpointNotFoundError):
            nbserve.endpoint(name, backend="local").down()


def serve(shell: InteractiveShell, line: str, cell: str = CELL) -> Any:
    return shell.run_cell_magic("serve", line, cell)


def test_a_cell_becomes_the_endpoint_named_after_its_handler(shell: InteractiveShell) -> None:
    serve(shell, "--backend local --max-batch-size 4")
    shout = shell.user_ns["shout"]
    assert isinstance(shout, nbserve.Endpoint)
    assert shout("a") == "A"
    assert shout.info().resources.endswith("batch 4 / 5 ms · replicas 1")
    serve(shell, "named --backend local")
    assert shell.user_ns["named"]("b") == "B"


def test_values_the_cell_reads_from_the_notebook_travel_with_it(shell: InteractiveShell) -> None:
    shell.user_ns["SUFFIX"] = "!"
    serve(shell, "named --backend local", "def named(items):\n    return [x + SUFFIX for x in items]\n")
    assert shell.user_ns["named"]("hi") == "hi!"


@pytest.mark.parametrize(
    ("line", "cell", "message"),
    [
        ("--backend local --gpu lots", CELL, "--gpu lots"),
        ("--backend local --replicas 4:1", CELL, "--replicas 4:1"),
        ("--backend local --frobnicate", CELL, "unrecognized arguments"),
        ("--backend local", "x = 1\ny = (\ndef f(xs):\n    return xs\n", "line 3"),
        ("--backend local", "def f(text: str):\n    return text\n", re.escape("list[str]")),
        ("--backend local", "y = undefined_name\ndef f(xs):\n    return xs\n", "undefined_name"),
        ("--backend kubernetes", CELL, "--backend kubernetes"),
        ("--backend local --replicas 2", CELL, "one copy of the cell"),
        ("--backend local", "raise ValueError('in setup')\n" + CELL, "in setup"),
    ],
)
def test_mistakes_are_usage_errors_and_deploy_nothing(
    shell: InteractiveShell, line: str, cell: str, message: str
) -> None:
    shell.user_ns.pop("f", None)
    with pytest.raises((UsageError, nbserve.SetupFailedError), match=message):
        serve(shell, f"bad_one {line}", cell)
    assert "bad_one" not in shell.user_ns
    with pytest.raises(EndpointNotFoundError):
        nbserve.endpoint("bad_one", backend="local")


def test_the_help_lists_the_flags_and_the_verbs() -> None:
    doc = InteractiveShell.instance().find_cell_magic("serve").__doc__ or ""
    for text in ("--max-batch-size", "--backend", "--restart", "%serve ls", "%serve bench"):
        assert text in doc


def test_the_verbs_manage_local_endpoints(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    serve(shell, "--backend local")
    capsys.readouterr()
    shell.run_line_magic("serve", "ls --backend local")
    listing = capsys.readouterr().out
    assert "shout" in listing and "running" in listing and "local" not in listing.split("\n")[0]
    shell.user_ns["shout"]("x")
    shell.run_line_magic("serve", "status shout --backend local")
    status = capsys.readouterr().out
    assert "shout (local) · running" in status and "requests served (total)" in status
    shell.run_line_magic("serve", "logs shout --backend local")
    assert "deployed" in capsys.readouterr().out
    shell.run_line_magic("serve", "down shout --backend local")
    assert "deleted shout" in capsys.readouterr().out
    with pytest.raises(UsageError, match="no local endpoint named 'shout'"):
        shell.run_line_magic("serve", "status shout --backend local")
    with pytest.raises(UsageError, match="name the endpoints to delete, or pass --all"):
        shell.run_line_magic("serve", "down --backend local")


def test_bench_counts_every_request_and_every_failure(shell: InteractiveShell) -> None:
    serve(shell, "bench_me --backend local", "def bench_me(items):\n    return items\n")
    shell.run_line_magic("serve", "bench bench_me --backend local --payload 7 -c 4 -n 40")
    result: BenchResult = shell.user_ns["_bench"]
    assert (result.sent, result.ok, sum(result.failures.values())) == (40, 40, 0)
    assert nbserve.endpoint("bench_me", backend="local").stats().requests == 40

    serve(shell, "flaky --backend local", FLAKY)
    shell.user_ns["inputs"] = [0]
    shell.run_line_magic("serve", "bench flaky --backend local --payload inputs[0] -c 2 -n 10")
    failed: BenchResult = shell.user_ns["_bench"]
    assert (failed.ok, failed.failures["HTTP 500"]) == (0, 10)
    with pytest.raises(UsageError, match="--concurrency must be at least 1"):
        shell.run_line_magic("serve", "bench flaky --backend local --payload 1 -c 0")
