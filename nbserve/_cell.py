"""Check a ``%%serve`` cell in the kernel, before anything is deployed.

Replicas run the cell's *source text*, never pickled notebook objects, so they do not depend
on the kernel's ``__main__``. This module finds the handler, checks that it can take what it
will be given (a batch, or one input with ``--no-batch``), and resolves the names the cell
reads from the notebook: plain values (``MODEL_DIR = "..."``) and modules (``np``) travel with
the source; anything else is refused with a message saying how to move it into the cell.
"""

from __future__ import annotations

import ast
import builtins
import pathlib
import pickle
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbserve._errors import CellError
from nbserve.runtime.bundle import CellBundle

__all__ = ["HandlerInfo", "analyze_cell", "make_bundle"]

# Annotations that say "one item", which a batched handler would wrongly be promised.
_SCALAR_ANNOTATIONS = {"str", "int", "float", "bool", "bytes", "dict"}
_MAX_CAPTURED_BYTES = 1 << 20


@dataclass(frozen=True)
class HandlerInfo:
    """The function that serves requests, as found in the cell."""

    name: str
    lineno: int
    is_async: bool
    is_generator: bool  # it yields: the endpoint streams its output
    free_names: frozenset[str]
    has_star_import: bool


def _line(source: str, lineno: int | None) -> str | None:
    lines = source.splitlines()
    if lineno is None or not 1 <= lineno <= len(lines):
        return None
    return lines[lineno - 1]


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        line = _line(source, exc.lineno)
        if line is not None and line.lstrip().startswith(("%", "!")):
            raise CellError(
                "IPython magics and shell commands (% and !) cannot run inside a replica; "
                "move them to a cell of their own",
                exc.lineno,
                line,
            ) from None
        raise CellError(f"SyntaxError: {exc.msg}", exc.lineno, line) from None


def _bound_and_loaded(tree: ast.AST) -> tuple[set[str], set[str], bool]:
    """Names bound anywhere in the cell, names read anywhere, and whether ``import *`` occurs.

    Scopes are deliberately merged: a name bound in any scope of the cell counts as defined,
    which never flags a correct cell (it may miss an error Python would raise later).
    """
    bound: set[str] = set()
    loaded: set[str] = set()
    star = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    star = True
                else:
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
    return bound, loaded, star


def analyze_cell(source: str, *, handler: str | None = None, batched: bool = True) -> HandlerInfo:
    """Find and check the handler of ``source``; raise ``CellError`` pointing at the line."""
    tree = _parse(source)
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions:
        raise CellError(
            "the cell defines no function to serve: its last top-level def (or the one named by "
            "--handler) handles requests, e.g.\n    def predict(inputs: list) -> list:\n"
            "        return [model(x) for x in inputs]"
        )
    if handler is None:
        node = functions[-1]
    else:
        matches = [n for n in functions if n.name == handler]
        if not matches:
            names = ", ".join(n.name for n in functions)
            raise CellError(f"--handler {handler}: no top-level function of that name; the cell defines {names}")
        node = matches[-1]
    _check_signature(node, source, batched)
    bound, loaded, star = _bound_and_loaded(tree)
    free = frozenset(loaded - bound - set(dir(builtins)))
    return HandlerInfo(
        name=node.name,
        lineno=node.lineno,
        is_async=isinstance(node, ast.AsyncFunctionDef),
        is_generator=_yields(node),
        free_names=free,
        has_star_import=star,
    )


def _yields(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether ``function`` itself yields (a ``yield`` in a nested def or lambda does not count)."""
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return False


def _check_signature(node: ast.FunctionDef | ast.AsyncFunctionDef, source: str, batched: bool) -> None:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    required = len(positional) - len(args.defaults)
    required_kwonly = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    what = "a batch (a list of inputs)" if batched else "one input"
    line = _line(source, node.lineno)
    if not positional and args.vararg is None:
        raise CellError(
            f"the handler {node.name}() takes no argument, but it is called with {what}; "
            f"give it one parameter, e.g. def {node.name}(inputs)",
            node.lineno,
            line,
        )
    if required > 1 or required_kwonly:
        extra = [a.arg for a in positional[1:required]] + required_kwonly
        raise CellError(
            f"the handler {node.name}() is called with {what} only, but it also requires "
            f"{', '.join(extra)}; give those parameters defaults or compute them in the cell",
            node.lineno,
            line,
        )
    if batched and positional:
        annotation = positional[0].annotation
        if isinstance(annotation, ast.Name) and annotation.id in _SCALAR_ANNOTATIONS:
            raise CellError(
                f"the handler {node.name}({positional[0].arg}: {annotation.id}) is annotated to take one "
                f"{annotation.id}, but with batching it receives a list of inputs; annotate it "
                f"list[{annotation.id}] and return a list, or add --no-batch",
                node.lineno,
                line,
            )


def _is_plain_value(value: object, depth: int = 0) -> bool:
    if depth > 8:
        return False
    if value is None or isinstance(value, (str, bytes, bool, int, float, complex, pathlib.PurePath)):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_is_plain_value(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_is_plain_value(k, depth + 1) and _is_plain_value(v, depth + 1) for k, v in value.items())
    return False


def make_bundle(
    name: str,
    source: str,
    info: HandlerInfo,
    *,
    batched: bool,
    namespace: Mapping[str, Any] | None = None,
    provided: frozenset[str] = frozenset(),
) -> CellBundle:
    """Resolve the cell's free names against the notebook ``namespace`` and bundle the cell.

    Names in ``provided`` (the endpoints of ``--uses``) are bound inside the replica instead.
    """
    namespace = namespace or {}
    constants: dict[str, Any] = {}
    modules: dict[str, str] = {}
    for var in sorted(info.free_names - provided):
        if var not in namespace:
            if info.has_star_import:
                continue  # it may come from the star import; the replica will tell.
            raise CellError(
                f"name '{var}' is not defined in the cell or the notebook; define it in the cell "
                "(the cell's code is what runs in each replica)"
            )
        value = namespace[var]
        if isinstance(value, types.ModuleType):
            modules[var] = value.__name__
        elif _is_plain_value(value) and len(pickle.dumps(value)) <= _MAX_CAPTURED_BYTES:
            constants[var] = value
        else:
            raise CellError(
                f"the cell uses '{var}' from the notebook, a {type(value).__module__}.{type(value).__qualname__}; "
                "replicas run the cell's source, not notebook objects, so create it in the cell "
                "(setup code runs once per replica) or pass a plain value (str, number, list, dict, "
                "at most 1 MiB)"
            )
    return CellBundle(
        name=name,
        source=source,
        handler=info.name,
        batched=batched,
        is_async=info.is_async,
        constants=constants,
        modules=modules,
        streams=info.is_generator,
    )
