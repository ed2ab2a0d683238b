"""Unit tests of nbserve.cell: finding and checking the handler, resolving the cell's free names."""

from __future__ import annotations

import json
import json.decoder
import textwrap
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from nbserve._cell import HandlerInfo, analyze_cell, make_bundle
from nbserve._errors import CellError
from nbserve.runtime import CellBundle


def cell(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def bundle(source: str, namespace: dict[str, Any] | None = None, *, batched: bool = True) -> CellBundle:
    info = analyze_cell(source, batched=batched)
    return make_bundle("embed", source, info, batched=batched, namespace=namespace)


# --- analyze_cell: parsing ---------------------------------------------------------------------


def test_syntax_error_points_at_the_bad_line() -> None:
    source = cell(
        """
        import math

        def predict(xs):
            return [math.sqrt(x) for x in xs
        """
    )
    with pytest.raises(CellError) as excinfo:
        analyze_cell(source)
    assert excinfo.value.lineno == 4
    assert excinfo.value.line == "    return [math.sqrt(x) for x in xs"
    assert "SyntaxError" in str(excinfo.value)
    assert str(excinfo.value).startswith("line 4: ")


def test_syntax_error_on_an_inner_line() -> None:
    source = "x = 1\ny = = 2\ndef f(xs):\n    return xs\n"
    with pytest.raises(CellError) as excinfo:
        analyze_cell(source)
    assert excinfo.value.lineno == 2
    assert "y = = 2" in str(excinfo.value)


@pytest.mark.parametrize(
    ("bad_line", "lineno"),
    [
        ("%time model = 1", 2),
        ("!pip install numpy", 2),
        ("    %timeit f(1)", 2),
        ("%%capture", 1),
        ("%time x", 4),
        ("!pip install y", 4),
        ("    !pip install y", 3),
    ],
)
def test_magics_and_shell_commands_are_refused(bad_line: str, lineno: int) -> None:
    lines = ["import os", "def f(xs):", "    return xs"]
    lines.insert(lineno - 1, bad_line)
    with pytest.raises(CellError) as excinfo:
        analyze_cell("\n".join(lines) + "\n")
    error = excinfo.value
    assert error.lineno == lineno
    assert error.line == bad_line
    assert bad_line.strip() in str(error)
    assert "% and !" in str(error)
    assert "cell of their own" in str(error)


@pytest.mark.parametrize(
    "prelude",
    [
        'msg = ("%s"\n       % "x")',
        'msg = ("%d items"\n    %len([1]))',
        'CSS = """\n!important\n"""',
        "TEMPLATE = '''\n  %time x\n'''",
        "ok = (1\n      != 2)",
        "ok = (1\n!= 2)",
    ],
)
def test_percent_and_bang_lines_of_valid_python_are_fine(prelude: str) -> None:
    source = f"{prelude}\n\ndef f(xs):\n    return xs\n"
    info = analyze_cell(source)
    assert info.name == "f"
    assert info.lineno == prelude.count("\n") + 3


def test_magic_line_as_comment_is_fine() -> None:
    source = "# %%serve embed --gpu 0.25\ndef embed(xs):\n    return xs\n"
    assert analyze_cell(source).name == "embed"


@pytest.mark.parametrize(
    "source",
    [
        "x = 1\n",
        "",
        "class Model:\n    def predict(self, xs):\n        return xs\n",
        "if True:\n    def f(xs):\n        return xs\n",
        "f = lambda xs: xs\n",
    ],
)
def test_no_top_level_function(source: str) -> None:
    with pytest.raises(CellError) as excinfo:
        analyze_cell(source)
    assert excinfo.value.lineno is None
    assert "defines no function" in str(excinfo.value)
    assert "def predict(inputs: list) -> list:" in str(excinfo.value)


# --- analyze_cell: choosing the handler ------------------------------------------------------


TWO_DEFS = cell(
    """
    def load(path):
        return path

    def predict(xs):
        return xs
    """
)


def test_default_handler_is_the_last_top_level_def() -> None:
    info = analyze_cell(TWO_DEFS)
    assert info == HandlerInfo(
        name="predict", lineno=4, is_async=False, is_generator=False, free_names=frozenset(), has_star_import=False
    )


def test_nested_def_after_the_last_top_level_def_is_not_chosen() -> None:
    source = TWO_DEFS + "class Helper:\n    def later(self, xs):\n        return xs\n"
    assert analyze_cell(source).name == "predict"


def test_handler_flag_picks_a_named_def() -> None:
    info = analyze_cell(TWO_DEFS, handler="load")
    assert info.name == "load"
    assert info.lineno == 1


def test_handler_flag_picks_the_last_of_redefined_functions() -> None:
    source = "def f(xs):\n    return 1\n\ndef f(xs):\n    return 2\n\ndef g(xs):\n    return xs\n"
    info = analyze_cell(source, handler="f")
    assert (info.name, info.lineno) == ("f", 4)


@pytest.mark.parametrize("missing", ["nope", "Predict"])
def test_handler_flag_naming_a_missing_function(missing: str) -> None:
    with pytest.raises(CellError) as excinfo:
        analyze_cell(TWO_DEFS, handler=missing)
    message = str(excinfo.value)
    assert f"--handler {missing}" in message
    assert "no top-level function" in message
    assert "the cell defines load, predict" in message


def test_async_handler_is_detected() -> None:
    source = "import asyncio\n\nasync def predict(xs):\n    return xs\n"
    info = analyze_cell(source)
    assert info.is_async
    assert info.name == "predict"
    assert info.lineno == 3
    assert not analyze_cell(TWO_DEFS).is_async


# --- analyze_cell: the handler's signature ---------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "batched", "fragments"),
    [
        ("def f():", True, ["takes no argument", "a batch (a list of inputs)", "def f(inputs)"]),
        ("def f():", False, ["takes no argument", "one input", "def f(inputs)"]),
        ("def f(**options):", True, ["takes no argument", "def f(inputs)"]),
        ("def f(*, k=1):", True, ["takes no argument"]),
        ("def f(a, b):", True, ["also requires b", "give those parameters defaults"]),
        ("def f(a, b, c, d=1):", False, ["also requires b, c", "one input"]),
        ("def f(a, /, b):", True, ["also requires b"]),
        ("def f(xs, *, k):", True, ["also requires k", "give those parameters defaults"]),
        ("def f(xs, *, k, j=2, m):", True, ["also requires k, m"]),
        ("async def f(a, b):", True, ["also requires b"]),
    ],
)
def test_bad_signatures(signature: str, batched: bool, fragments: list[str]) -> None:
    source = f"import os\n\n{signature}\n    return []\n"
    with pytest.raises(CellError) as excinfo:
        analyze_cell(source, batched=batched)
    error = excinfo.value
    assert error.lineno == 3
    assert error.line == signature
    for fragment in fragments:
        assert fragment in str(error)


@pytest.mark.parametrize("annotation", ["str", "int", "float", "bool", "bytes", "dict"])
def test_scalar_annotation_with_batching(annotation: str) -> None:
    source = f"def f(x: {annotation}):\n    return x\n"
    with pytest.raises(CellError) as excinfo:
        analyze_cell(source)
    message = str(excinfo.value)
    assert excinfo.value.lineno == 1
    assert f"list[{annotation}]" in message
    assert "--no-batch" in message
    assert analyze_cell(source, batched=False).name == "f"


@pytest.mark.parametrize(
    "signature",
    [
        "def f(xs, k=3):",
        "def f(*xs):",
        "def f(xs):",
        "def f(xs, *, k=1):",
        "def f(xs, *rest, **options):",
        "def f(xs=None):",
        "def f(xs: list[str]) -> list[int]:",
        "def f(xs: list):",
    ],
)
def test_good_signatures(signature: str) -> None:
    source = f"{signature}\n    return []\n"
    info = analyze_cell(source)
    assert info.name == "f"
    assert info.lineno == 1


def test_unbatched_single_argument() -> None:
    info = analyze_cell("def one(x: str) -> int:\n    return len(x)\n", batched=False)
    assert info.name == "one"
    assert info.free_names == frozenset()


# --- analyze_cell: free names ----------------------------------------------------------------


def test_free_names_are_the_names_read_but_never_bound() -> None:
    source = cell(
        """
        tokenizer = TOKENIZER_CLASS(MODEL_DIR)

        def predict(xs):
            return [tokenizer(x, max_length=MAX_LEN) for x in xs]
        """
    )
    info = analyze_cell(source)
    assert info.free_names == frozenset({"TOKENIZER_CLASS", "MODEL_DIR", "MAX_LEN"})
    assert not info.has_star_import


@pytest.mark.parametrize(
    "binding",
    [
        "import used",
        "import used.sub.mod",
        "import os.path as used",
        "from os import path as used",
        "from os import used",
        "def used(): pass",
        "async def used(): pass",
        "class used: pass",
        "used = 1",
        "used: int = 1",
        "used, other = 1, 2",
        "for used in range(3): pass",
        "with open('weights.bin') as used: pass",
        "xs = [used for used in range(3)]",
        "xs = {used: 1 for used in range(3)}",
        "xs = list(used for used in range(3))",
        "try:\n    pass\nexcept Exception as used:\n    pass",
        "def g(used): return used",
        "def g(*used): return used",
        "def g(**used): return used",
        "def g(*, used=1): return used",
        "g = lambda used: used",
        "if (used := 3): pass",
        "def g():\n    global used\n    used = 1",
        "match 1:\n    case [*used]: pass",
        "match 1:\n    case {**used}: pass",
        "match 1:\n    case int() as used: pass",
    ],
)
def test_names_bound_anywhere_in_the_cell_are_not_free(binding: str) -> None:
    source = f"{binding}\n\ndef predict(xs):\n    return [used for _ in xs]\n"
    info = analyze_cell(source)
    assert info.free_names == frozenset()
    made = bundle(source, namespace={})
    assert made.constants == {}
    assert made.modules == {}


@pytest.mark.parametrize("builtin", ["len", "print", "range", "ValueError", "sorted", "__name__"])
def test_builtins_are_not_free(builtin: str) -> None:
    source = f"def predict(xs):\n    return [{builtin} for _ in xs]\n"
    assert analyze_cell(source).free_names == frozenset()
    assert bundle(source).constants == {}


def test_star_import_is_recorded() -> None:
    source = "from math import *\n\ndef predict(xs):\n    return [sqrt(x) for x in xs]\n"
    info = analyze_cell(source)
    assert info.has_star_import
    assert info.free_names == frozenset({"sqrt"})


# --- make_bundle -----------------------------------------------------------------------------


CONSTANT_CELL = "def predict(xs):\n    return [(VALUE, x) for x in xs]\n"


@pytest.mark.parametrize(
    "value",
    [
        "/models/minilm",
        16,
        2.5,
        True,
        None,
        b"raw",
        [1, 2, 3],
        ("a", 1),
        {"labels": ["neg", "pos"], "threshold": 0.5},
        {1, 2},
        frozenset({"x"}),
        Path("/models/minilm"),
        PurePosixPath("weights/model.bin"),
        [{"nested": [1, {"deeper": (2, 3)}]}],
    ],
)
def test_plain_values_are_captured_as_constants(value: Any) -> None:
    made = bundle(CONSTANT_CELL, namespace={"VALUE": value, "UNUSED": object()})
    assert made.constants == {"VALUE": value}
    assert made.constants["VALUE"] is value
    assert made.modules == {}


def test_modules_are_recorded_by_name() -> None:
    source = "def predict(xs):\n    return [js.dumps(x) for x in xs]\n"
    made = bundle(source, namespace={"js": json})
    assert made.modules == {"js": "json"}
    assert made.constants == {}


def test_submodule_is_recorded_by_its_full_name() -> None:
    source = "def predict(xs):\n    return [dec.JSONDecoder() for _ in xs]\n"
    made = bundle(source, namespace={"dec": json.decoder})
    assert made.modules == {"dec": "json.decoder"}


def test_constants_and_modules_together() -> None:
    source = "def predict(xs):\n    return [js.dumps({KEY: x}) for x in xs]\n"
    made = bundle(source, namespace={"js": json, "KEY": "value", "OTHER": 1})
    assert made.modules == {"js": "json"}
    assert made.constants == {"KEY": "value"}


@pytest.mark.parametrize("namespace", [None, {}, {"model": 1}])
def test_undefined_name(namespace: dict[str, Any] | None) -> None:
    source = "def predict(xs):\n    return [MODEL_PATH for _ in xs]\n"
    info = analyze_cell(source)
    with pytest.raises(CellError) as excinfo:
        make_bundle("embed", source, info, batched=True, namespace=namespace)
    message = str(excinfo.value)
    assert "'MODEL_PATH'" in message
    assert "not defined" in message
    assert "define it in the cell" in message


class Model:
    pass


def _function(x: Any) -> Any:
    return x


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "builtins.object"),
        (lambda x: x, "builtins.function"),
        (_function, "builtins.function"),
        (Model(), f"{__name__}.Model"),
        (Model, "builtins.type"),
        ([1, object()], "builtins.list"),
        ({"k": Model()}, "builtins.dict"),
        ({Model(): 1}, "builtins.dict"),
        ("x" * (1 << 20), "builtins.str"),
        ([[[[[[[[[[[1]]]]]]]]]]], "builtins.list"),
    ],
)
def test_non_plain_values_are_refused(value: Any, type_name: str) -> None:
    with pytest.raises(CellError) as excinfo:
        bundle(CONSTANT_CELL, namespace={"VALUE": value})
    message = str(excinfo.value)
    assert "'VALUE'" in message
    assert type_name in message
    assert "create it in the cell" in message


def test_star_import_suppresses_undefined_name_errors() -> None:
    source = "from math import *\n\ndef predict(xs):\n    return [sqrt(x) * SCALE for x in xs]\n"
    made = bundle(source, namespace={"SCALE": 2})
    assert made.constants == {"SCALE": 2}
    assert made.modules == {}


def test_star_import_does_not_excuse_unplain_values() -> None:
    source = "from math import *\n\ndef predict(xs):\n    return [sqrt(x) * SCALE for x in xs]\n"
    with pytest.raises(CellError, match="create it in the cell"):
        bundle(source, namespace={"SCALE": object()})


def test_bundle_fields() -> None:
    source = "async def predict(xs):\n    return xs\n"
    made = bundle(source, batched=False)
    assert made == CellBundle(name="embed", source=source, handler="predict", batched=False, is_async=True)
    assert made.filename == "<serve embed>"


def test_used_endpoints_are_provided_in_the_replica_not_captured() -> None:
    source = "async def rank(items):\n    return await embed.map(items)\n"
    info = analyze_cell(source)
    assert "embed" in info.free_names
    with pytest.raises(CellError, match="embed"):
        make_bundle("rank", source, info, batched=True, namespace={})
    bundle = make_bundle("rank", source, info, batched=True, namespace={}, provided=frozenset({"embed"}))
    assert "embed" not in bundle.constants and "embed" not in bundle.modules
