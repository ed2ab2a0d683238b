"""The magics in real Jupyter kernels: what a notebook user types and sees."""

from __future__ import annotations

import re

import pytest
import requests

from tests.support.helpers import auth, wait_for
from tests.support.kernels import Kernel

pytestmark = [pytest.mark.integration, pytest.mark.kernel]

CELL = """%%serve kecho --cpus 0.1 --max-batch-size 8
import os
PID = os.getpid()
def kecho(items):
    return [f"{x}@{PID}" for x in items]
"""


def test_cell_deploys_and_the_name_is_a_callable_endpoint(kernel: Kernel) -> None:
    deployed = kernel.ok(CELL)
    assert "kecho: deployed at http://127.0.0.1:" in deployed.text
    assert "kecho (ray) · running · http://127.0.0.1:" in deployed.text  # the dashboard, as text

    # A sync call inside a cell, where an event loop is already running.
    assert kernel.ok("print(kecho('a'))").stdout.startswith("a@")
    assert kernel.ok("print(await kecho.acall('b'))").stdout.startswith("b@")
    mapped = kernel.ok("out = kecho.map([str(i) for i in range(20)], progress=False)\nprint(len(out), out[0][:2])")
    assert mapped.stdout.split() == ["20", "0@"]
    url = kernel.ok("print(kecho.url)").stdout.strip()
    assert requests.post(url, json={"input": "c"}, headers=auth(), timeout=30).json()["output"].startswith("c@")

    listing = kernel.ok("%serve ls").stdout
    assert "kecho" in listing and "running" in listing
    status = kernel.ok("%serve status kecho").stdout
    assert "kecho (ray) · running" in status
    assert re.search(r"replicas running/target\s+1/1", status)
    # The calls above are counted once the replica ships its samples (every second).
    served = r"requests served \(total\)\s+6\b"  # call, acall, map (3 chunks of 8), one HTTP POST
    wait_for(lambda: re.search(served, kernel.ok("%serve status kecho").stdout), 10, "the calls in %serve status")

    # Re-running the cell reloads it in the running replica; --restart starts a new one.
    pid = kernel.ok("print(kecho('a'))").stdout.strip().split("@")[1]
    assert "reloading in place" in kernel.ok(CELL).text
    assert kernel.ok("print(kecho('a'))").stdout.strip() == f"a@{pid}"
    restarted = kernel.ok(CELL.replace("--max-batch-size 8", "--max-batch-size 8 --restart"))
    assert "replacing replicas" in restarted.text
    assert kernel.ok("print(kecho('a'))").stdout.strip() != f"a@{pid}"


def test_bad_flags_and_cells_are_usage_errors_and_deploy_nothing(kernel: Kernel) -> None:
    cases = {
        "%%serve bad --gpu lots\ndef f(xs):\n    return xs\n": "--gpu lots",
        "%%serve bad --replicas 4:1\ndef f(xs):\n    return xs\n": "--replicas 4:1",
        "%%serve bad --frobnicate\ndef f(xs):\n    return xs\n": "unrecognized arguments",
        "%%serve bad --cpus 0.1\nx = 1\ny = (\ndef f(xs):\n    return xs\n": "line 3",
        "%%serve bad --cpus 0.1\ndef f(text: str):\n    return text\n": "list[str]",
        "%%serve bad --cpus 0.1\nMODEL_PATH\ndef f(xs):\n    return xs\n": "MODEL_PATH",
    }
    for cell, expected in cases.items():
        reply = kernel.run(cell)
        assert reply.status == "error", cell
        assert reply.ename == "UsageError", (cell, reply.text)
        assert expected in reply.evalue, (cell, reply.evalue)
        assert "Traceback" not in reply.traceback
    assert "bad" not in kernel.ok("%serve ls").stdout.split()


def test_failing_setup_shows_the_replica_traceback(kernel: Kernel) -> None:
    reply = kernel.run("%%serve broken --cpus 0.1\nimport math\nvalue = math.sqrt(-1)\ndef f(xs):\n    return xs\n")
    assert reply.ename == "SetupFailedError"
    # The magic line is line 1 of the cell, so the failing line is line 3, as shown in Jupyter.
    assert 'File "<serve broken>", line 3' in reply.traceback
    assert "ValueError: math domain error" in reply.traceback
    assert "broken" not in kernel.ok("%serve ls").stdout.split()


def test_another_kernel_sees_the_endpoint_and_it_outlives_its_kernel(kernel: Kernel) -> None:
    kernel.ok(CELL)
    other = Kernel()
    try:
        other.ok("%load_ext nbserve")
        assert "kecho" in other.ok("%serve ls").stdout
        other.ok("import nbserve\nremote = nbserve.endpoint('kecho')")
        assert other.ok("print(remote('z'))").stdout.startswith("z@")

        kernel.manager.restart_kernel(now=True)  # the deploying kernel goes away
        kernel.client.wait_for_ready(timeout=60)
        assert other.ok("print(remote('after restart'))").stdout.startswith("after restart@")
        kernel.ok("%load_ext nbserve")
        assert "kecho" in kernel.ok("%serve ls").stdout
    finally:
        other.shutdown()
