"""Unit tests of nbserve.program: running a cell's setup and its handler, with per-input errors."""

from __future__ import annotations

import asyncio
import json
import pickle
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nbserve._cell import analyze_cell, make_bundle
from nbserve._errors import DeployError, HandlerError, SetupFailedError
from nbserve.runtime.program import SETUP_TRACEBACK_BEGIN, SETUP_TRACEBACK_END, CellProgram, Outcome
from tests.support.helpers import REQUEST_TAG

MakeProgram = Callable[..., CellProgram]


def cell(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def make_program() -> Iterator[MakeProgram]:
    """Build a CellProgram from source the way a deployment does; close every one at the end."""
    programs: list[CellProgram] = []

    def make(
        source: str,
        *,
        name: str = "cell",
        batched: bool = True,
        handler: str | None = None,
        namespace: dict[str, Any] | None = None,
    ) -> CellProgram:
        info = analyze_cell(source, handler=handler, batched=batched)
        bundle = make_bundle(name, source, info, batched=batched, namespace=namespace)
        program = CellProgram(bundle)
        programs.append(program)
        return program

    yield make
    for program in programs:
        program.close()


def values(outcomes: list[Outcome]) -> list[Any]:
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return [o.value for o in outcomes]


# --- setup -----------------------------------------------------------------------------------


SETUP_COUNTER = cell(
    """
    SETUP_RUNS = 0
    SETUP_RUNS += 1
    CALLS = []

    def predict(xs):
        CALLS.append(len(xs))
        return [SETUP_RUNS for _ in xs]
    """
)


def test_setup_runs_once(make_program: MakeProgram) -> None:
    program = make_program(SETUP_COUNTER)
    assert program.module.SETUP_RUNS == 1
    assert values(asyncio.run(program.run_batch([1, 2, 3]))) == [1, 1, 1]
    assert values(asyncio.run(program.run_batch(["x"]))) == [1]
    assert program.module.SETUP_RUNS == 1
    assert program.module.CALLS == [3, 1]


def test_handler_is_the_cells_function(make_program: MakeProgram) -> None:
    program = make_program(SETUP_COUNTER, name="counter")
    assert program.handler is program.module.predict
    assert program.module.__name__ == "nbserve_cell_counter"


# --- run_batch -------------------------------------------------------------------------------


def test_batched_outputs_in_order(make_program: MakeProgram) -> None:
    program = make_program("def double(xs):\n    return [x * 2 for x in xs]\n")
    outcomes = asyncio.run(program.run_batch([3, 1, 2]))
    assert values(outcomes) == [6, 2, 4]
    assert all(o.error is None for o in outcomes)


def test_empty_batch_does_not_call_the_handler(make_program: MakeProgram) -> None:
    program = make_program("CALLS = []\n\ndef f(xs):\n    CALLS.append(xs)\n    return xs\n")
    assert asyncio.run(program.run_batch([])) == []
    assert program.module.CALLS == []


def test_batch_accepts_any_iterable_output(make_program: MakeProgram) -> None:
    program = make_program("def f(xs):\n    return (x + 1 for x in xs)\n")
    assert values(asyncio.run(program.run_batch((1, 2)))) == [2, 3]


ISOLATION_CELL = cell(
    """
    def upper(xs):
        if "bad" in xs:
            raise ValueError("cannot handle bad")
        return [x.upper() for x in xs]
    """
)


def test_failing_inputs_do_not_fail_their_batch(make_program: MakeProgram) -> None:
    program = make_program(ISOLATION_CELL)
    outcomes = asyncio.run(program.run_batch(["a", "bad", "c", "d", "bad"]))
    assert len(outcomes) == 5
    assert [i for i, o in enumerate(outcomes) if not o.ok] == [1, 4]
    assert [outcomes[i].value for i in (0, 2, 3)] == ["A", "C", "D"]
    for i in (1, 4):
        error = outcomes[i].error
        assert isinstance(error, HandlerError)
        assert error.type_name == "ValueError"
        assert error.detail == "cannot handle bad"
        assert outcomes[i].value is None


@pytest.mark.parametrize(
    "returned",
    ["xs + [None]", "[]", "xs * 2"],
)
def test_wrong_number_of_outputs_fails_every_input(make_program: MakeProgram, returned: str) -> None:
    program = make_program(f"def f(xs):\n    return {returned}\n")
    outcomes = asyncio.run(program.run_batch(["a", "b", "c"]))
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert not outcome.ok
        assert outcome.error is not None
        assert outcome.error.type_name == "ValueError"
        assert "outputs for" in outcome.error.detail
        assert "exactly one output per input" in outcome.error.detail


@pytest.mark.parametrize(("returned", "type_name"), [("42", "int"), ("None", "NoneType")])
def test_non_iterable_output_fails_every_input(make_program: MakeProgram, returned: str, type_name: str) -> None:
    program = make_program(f"def f(xs):\n    return {returned}\n")
    outcomes = asyncio.run(program.run_batch([1, 2]))
    assert len(outcomes) == 2
    for outcome in outcomes:
        assert outcome.error is not None
        assert outcome.error.type_name == "TypeError"
        assert f"f() returned {type_name}" in outcome.error.detail
        assert "--no-batch" in outcome.error.detail


@pytest.mark.parametrize(
    ("returned", "type_name"),
    [("'ab'", "str"), ("{'a': 1, 'b': 2}", "dict"), ("{x: x for x in xs}", "dict"), ("b'ab'", "bytes")],
)
def test_str_or_mapping_output_fails_every_input(make_program: MakeProgram, returned: str, type_name: str) -> None:
    # Even of the right length: iterating a str or a dict would silently give wrong outputs.
    program = make_program(f"def f(xs):\n    return {returned}\n")
    outcomes = asyncio.run(program.run_batch(["a", "b"]))
    assert len(outcomes) == 2
    for outcome in outcomes:
        assert not outcome.ok
        assert outcome.error is not None
        assert outcome.error.type_name == "TypeError"
        assert f"f() returned a {type_name}" in outcome.error.detail
        assert "--no-batch" in outcome.error.detail


def test_stop_iteration_in_a_batched_handler_fails_every_input(make_program: MakeProgram) -> None:
    program = make_program("def f(xs):\n    return next(iter([]))\n")
    outcomes = asyncio.run(asyncio.wait_for(program.run_batch([1, 2, 3]), 5))
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert not outcome.ok
        assert outcome.error is not None
        assert outcome.error.type_name == "RuntimeError"
        assert "StopIteration" in outcome.error.detail


def test_stop_iteration_is_isolated_to_its_input(make_program: MakeProgram) -> None:
    source = "def f(xs):\n    if 0 in xs:\n        raise StopIteration('zero')\n    return [x * 2 for x in xs]\n"
    program = make_program(source)
    outcomes = asyncio.run(asyncio.wait_for(program.run_batch([1, 0, 3]), 5))
    assert [o.ok for o in outcomes] == [True, False, True]
    assert [outcomes[0].value, outcomes[2].value] == [2, 6]
    error = outcomes[1].error
    assert error is not None
    assert error.type_name == "RuntimeError"
    assert "StopIteration" in error.detail
    assert "zero" in error.detail


def test_async_batched_handler(make_program: MakeProgram) -> None:
    source = cell(
        """
        import asyncio

        async def predict(xs):
            assert asyncio.get_running_loop() is not None
            return [len(x) for x in xs]
        """
    )
    program = make_program(source)
    assert program.bundle.is_async
    assert values(asyncio.run(program.run_batch(["a", "bbb"]))) == [1, 3]


def test_async_handler_failure_is_isolated(make_program: MakeProgram) -> None:
    source = "async def f(xs):\n    if 0 in xs:\n        raise KeyError('zero')\n    return [1 / x for x in xs]\n"
    program = make_program(source)
    outcomes = asyncio.run(program.run_batch([1, 0, 4]))
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[0].value == 1.0
    assert outcomes[2].value == 0.25
    assert outcomes[1].error is not None
    assert outcomes[1].error.type_name == "KeyError"


# --- run_one ---------------------------------------------------------------------------------


def test_run_one_unbatched(make_program: MakeProgram) -> None:
    program = make_program("def inc(x: int) -> int:\n    return x + 1\n", batched=False)
    outcome = asyncio.run(program.run_one(41))
    assert outcome == Outcome(42)
    assert outcome.ok
    assert outcome.unwrap() == 42


def test_run_one_passes_a_list_as_one_input(make_program: MakeProgram) -> None:
    program = make_program("def size(x):\n    return len(x)\n", batched=False)
    assert asyncio.run(program.run_one([1, 2, 3])).value == 3


def test_run_one_async(make_program: MakeProgram) -> None:
    program = make_program("async def echo(x):\n    return {'got': x}\n", batched=False)
    assert asyncio.run(program.run_one("hi")).value == {"got": "hi"}


def test_run_one_error(make_program: MakeProgram) -> None:
    program = make_program("def f(x):\n    return int(x)\n", batched=False)
    outcome = asyncio.run(program.run_one("abc"))
    assert not outcome.ok
    assert outcome.value is None
    assert outcome.error is not None
    assert outcome.error.type_name == "ValueError"
    assert "invalid literal" in outcome.error.detail
    assert asyncio.run(program.run_one("7")).value == 7


def test_run_one_stop_iteration_is_an_error(make_program: MakeProgram) -> None:
    program = make_program("def f(x):\n    return next(iter(x))\n", batched=False)
    outcome = asyncio.run(asyncio.wait_for(program.run_one([]), 5))
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.type_name == "RuntimeError"
    assert "StopIteration" in outcome.error.detail
    assert asyncio.run(asyncio.wait_for(program.run_one([5]), 5)).value == 5


def test_run_one_async_stop_iteration_is_an_error(make_program: MakeProgram) -> None:
    program = make_program("async def f(x):\n    raise StopIteration\n", batched=False)
    outcome = asyncio.run(asyncio.wait_for(program.run_one(1), 5))
    assert outcome.error is not None
    assert outcome.error.type_name == "RuntimeError"
    assert "StopIteration" in outcome.error.detail


# --- cancellation and context --------------------------------------------------------------

# Awaits a future that was cancelled under it, as a call into a used endpoint can be.
AWAITS_A_CANCELLED_CALL = cell(
    """
    import asyncio

    async def f(xs):
        if "cancelled" in xs:
            call = asyncio.get_running_loop().create_future()
            call.cancel()
            await call
        return [x.upper() for x in xs]
    """
)


def test_a_cancelled_call_inside_the_handler_fails_only_its_input(make_program: MakeProgram) -> None:
    program = make_program(AWAITS_A_CANCELLED_CALL)
    outcomes = asyncio.run(asyncio.wait_for(program.run_batch(["a", "cancelled", "c"]), 5))
    assert [o.value for o in outcomes] == ["A", None, "C"]
    error = outcomes[1].error
    assert error is not None and (error.type_name, error.detail) == (
        "CancelledError",
        "a call the handler awaited was cancelled",
    )
    unbatched = make_program(AWAITS_A_CANCELLED_CALL.replace('"cancelled" in xs', 'xs == ["cancelled"]'), batched=False)
    alone = asyncio.run(unbatched.run_one(["cancelled"])).error
    assert alone is not None and (alone.type_name, alone.detail) == (error.type_name, error.detail)


@pytest.mark.parametrize("batched", [True, False])
def test_a_run_whose_caller_cancels_it_is_cancelled(make_program: MakeProgram, batched: bool) -> None:
    program = make_program("import asyncio\n\nasync def f(x):\n    await asyncio.sleep(30)\n", batched=batched)

    async def scenario() -> None:
        run = asyncio.ensure_future(program.run_batch([1]) if batched else program.run_one(1))
        await asyncio.sleep(0.05)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, 5)

    asyncio.run(scenario())


@pytest.mark.parametrize("answer", ["return", "yield"])
def test_a_sync_handler_runs_in_its_callers_context(make_program: MakeProgram, answer: str) -> None:
    # As in an async handler: a call it makes into another endpoint is then its request's child.
    program = make_program(
        f"from tests.support.helpers import REQUEST_TAG\n\ndef f(x):\n    {answer} REQUEST_TAG.get()\n", batched=False
    )

    async def scenario() -> list[Any]:
        REQUEST_TAG.set("request 1")
        if answer == "yield":
            return [chunk async for chunk in program.stream(None)]
        return [(await program.run_one(None)).unwrap()]

    assert asyncio.run(scenario()) == ["request 1"]


# --- setup failures --------------------------------------------------------------------------


def test_setup_exception_raises_setup_failed_error(make_program: MakeProgram) -> None:
    source = cell(
        """
        import math

        def load(path):
            raise FileNotFoundError(f"no weights at {path}")

        model = load("/models/missing")

        def predict(xs):
            return xs
        """
    )
    with pytest.raises(SetupFailedError) as excinfo:
        make_program(source, name="broken")
    message = str(excinfo.value)
    assert isinstance(excinfo.value, DeployError)
    assert message.startswith(SETUP_TRACEBACK_BEGIN)
    assert message.rstrip().endswith(SETUP_TRACEBACK_END)
    assert 'model = load("/models/missing")' in message
    assert 'raise FileNotFoundError(f"no weights at {path}")' in message
    assert 'File "<serve broken>", line 6' in message
    assert 'File "<serve broken>", line 4' in message
    assert "FileNotFoundError: no weights at /models/missing" in message
    assert "nbserve/program.py" not in message
    assert "program.py" not in message


def test_setup_failure_on_a_module_level_line(make_program: MakeProgram) -> None:
    source = "x = 1\nraise RuntimeError('model did not load')\n\ndef f(xs):\n    return xs\n"
    with pytest.raises(SetupFailedError) as excinfo:
        make_program(source, name="boom")
    message = str(excinfo.value)
    assert SETUP_TRACEBACK_BEGIN in message
    assert SETUP_TRACEBACK_END in message
    assert "raise RuntimeError('model did not load')" in message
    assert "RuntimeError: model did not load" in message
    assert "nbserve/program.py" not in message


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("raises", "raise RuntimeError('model did not load')\n\ndef f(xs):\n    return xs\n"),
        ("exits", "import sys\nsys.exit(3)\n\ndef f(xs):\n    return xs\n"),
        ("imports", "import nbserve_no_such_module\n\ndef f(xs):\n    return xs\n"),
    ],
)
def test_setup_failure_unregisters_the_cell_module(make_program: MakeProgram, name: str, source: str) -> None:
    with pytest.raises(SetupFailedError):
        make_program(source, name=name)
    assert f"nbserve_cell_{name}" not in sys.modules


def test_a_failed_reload_leaves_the_running_program_registered(make_program: MakeProgram) -> None:
    """A replica reloading the cell keeps serving the running program when the new one fails."""
    import linecache

    running = make_program("VERSION = 1\ndef f(xs):\n    return [VERSION for _ in xs]\n", name="reload")
    with pytest.raises(SetupFailedError):
        make_program("raise RuntimeError('bad version')\ndef f(xs):\n    return xs\n", name="reload")
    assert sys.modules["nbserve_cell_reload"] is running.module
    assert linecache.getline("<serve reload>", 1) == "VERSION = 1\n"
    assert values(asyncio.run(running.run_batch(["x"]))) == [1]


def test_closing_a_replaced_program_keeps_the_new_one_registered(make_program: MakeProgram) -> None:
    old = make_program("def f(xs):\n    return xs\n", name="swap")
    new = make_program("def f(xs):\n    return [1 for _ in xs]\n", name="swap")
    old.close()
    assert sys.modules["nbserve_cell_swap"] is new.module


def test_handler_rebound_to_a_non_function(make_program: MakeProgram) -> None:
    source = "def f(xs):\n    return xs\n\nf = 3\n"
    with pytest.raises(SetupFailedError, match="f is not a function of the cell"):
        make_program(source)


# --- handler tracebacks ----------------------------------------------------------------------


def test_handler_error_traceback_shows_the_cell(make_program: MakeProgram) -> None:
    source = cell(
        """
        def invert(x):
            return 1 / x

        def predict(xs):
            return [invert(x) for x in xs]
        """
    )
    program = make_program(source, name="calc")
    outcomes = asyncio.run(program.run_batch([1, 0, 2]))
    assert [o.ok for o in outcomes] == [True, False, True]
    error = outcomes[1].error
    assert error is not None
    assert error.type_name == "ZeroDivisionError"
    assert error.detail == "division by zero"
    tb = error.remote_traceback
    assert tb.startswith("Traceback (most recent call last):")
    assert 'File "<serve calc>", line 2, in invert' in tb
    assert "return 1 / x" in tb
    assert "return [invert(x) for x in xs]" in tb
    assert tb.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "nbserve/program.py" not in tb
    assert "concurrent/futures" not in tb


@pytest.mark.parametrize("returned", ["xs + [None]", "'ab'", "42"])
def test_output_check_traceback_has_no_nbserve_frames(make_program: MakeProgram, returned: str) -> None:
    program = make_program(f"def f(xs):\n    return {returned}\n", name="shape")
    outcomes = asyncio.run(program.run_batch(["a", "b"]))
    for outcome in outcomes:
        error = outcome.error
        assert error is not None
        tb = error.remote_traceback
        assert "nbserve/program.py" not in tb
        assert "program.py" not in tb
        assert tb.rstrip().endswith(f"{error.type_name}: {error.detail}")


def test_unbatched_handler_error_traceback(make_program: MakeProgram) -> None:
    program = make_program("def f(x):\n    return x['missing']\n", name="lookup", batched=False)
    error = asyncio.run(program.run_one({})).error
    assert error is not None
    assert error.type_name == "KeyError"
    assert "<serve lookup>" in error.remote_traceback
    assert "return x['missing']" in error.remote_traceback


# --- constants and modules from the notebook -------------------------------------------------


def test_constants_from_the_bundle_are_visible(make_program: MakeProgram) -> None:
    source = cell(
        """
        LOOKUP = {label: i for i, label in enumerate(LABELS)}

        def predict(xs):
            return [LOOKUP[x] * SCALE for x in xs]
        """
    )
    program = make_program(source, namespace={"LABELS": ["neg", "pos"], "SCALE": 10})
    assert program.bundle.constants == {"LABELS": ["neg", "pos"], "SCALE": 10}
    assert values(asyncio.run(program.run_batch(["pos", "neg"]))) == [10, 0]


def test_modules_from_the_bundle_are_imported(make_program: MakeProgram) -> None:
    program = make_program("def f(xs):\n    return [js.dumps(x) for x in xs]\n", namespace={"js": json})
    assert program.module.js is json
    assert values(asyncio.run(program.run_batch([{"a": 1}]))) == ['{"a": 1}']


def test_cell_classes_pickle_while_open_and_close_unregisters(make_program: MakeProgram) -> None:
    source = cell(
        """
        from dataclasses import dataclass

        @dataclass
        class Point:
            x: int

        def f(xs):
            return [Point(x) for x in xs]
        """
    )
    program = make_program(source, name="points")
    [point] = values(asyncio.run(program.run_batch([5])))
    assert type(point).__module__ == "nbserve_cell_points"
    assert pickle.loads(pickle.dumps(point)) == point
    program.close()
    assert "nbserve_cell_points" not in sys.modules


# --- Outcome and HandlerError ----------------------------------------------------------------


def test_outcome_unwrap() -> None:
    assert Outcome("value").unwrap() == "value"
    assert Outcome().unwrap() is None
    error = HandlerError("ValueError", "bad input", "Traceback ...")
    outcome = Outcome(error=error)
    assert not outcome.ok
    with pytest.raises(HandlerError) as excinfo:
        outcome.unwrap()
    assert excinfo.value is error


def test_outcome_unwrap_of_a_real_failure(make_program: MakeProgram) -> None:
    program = make_program(ISOLATION_CELL)
    good, bad = asyncio.run(program.run_batch(["ok", "bad"]))
    assert good.unwrap() == "OK"
    with pytest.raises(HandlerError, match="ValueError: cannot handle bad"):
        bad.unwrap()


def test_handler_error_pickles_with_all_fields() -> None:
    error = HandlerError("KeyError", "'missing'", 'Traceback (most recent call last):\n  File "<serve x>"\n')
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is HandlerError
    assert (copy.type_name, copy.detail, copy.remote_traceback) == (
        error.type_name,
        error.detail,
        error.remote_traceback,
    )
    assert str(copy) == str(error) == "KeyError: 'missing'"


def test_outcome_with_a_real_error_pickles(make_program: MakeProgram) -> None:
    program = make_program(ISOLATION_CELL, name="iso")
    [outcome] = asyncio.run(program.run_batch(["bad"]))
    copy = pickle.loads(pickle.dumps(outcome))
    assert copy.error is not None
    assert outcome.error is not None
    assert copy.error.remote_traceback == outcome.error.remote_traceback
    assert "<serve iso>" in copy.error.remote_traceback
    assert copy.error.type_name == "ValueError"
