"""Unit tests of nbserve.protocol: request parsing, JSON conversion of outputs, response bodies."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from nbserve._errors import HandlerError, RequestError
from nbserve.runtime.program import Outcome
from nbserve.runtime.wire import (
    MAX_BODY_BYTES,
    MAX_INPUTS,
    ParsedRequest,
    check_length,
    error_body,
    parse_request,
    render_outcomes,
    to_jsonable,
)


def request_error(body: bytes) -> RequestError:
    with pytest.raises(RequestError) as excinfo:
        parse_request(body)
    return excinfo.value


def check_request_error(error: RequestError, status: int, type_name: str, *fragments: str) -> None:
    assert error.status == status
    assert error.type_name == type_name
    assert error_body(error.type_name, error.message) == {"error": {"type": type_name, "message": error.message}}
    assert str(error) == error.message
    for fragment in fragments:
        assert fragment in error.message


# --- parse_request ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "items"),
    [
        (b'{"input": 3}', [3]),
        (b'{"input": "text"}', ["text"]),
        (b'{"input": null}', [None]),
        (b'{"input": [1, 2]}', [[1, 2]]),
        (b'  {"input": {"a": 1}}\n', [{"a": 1}]),
        ('{"input": "caf\u00e9"}'.encode(), ["caf\u00e9"]),
    ],
)
def test_single_input(body: bytes, items: list[Any]) -> None:
    assert parse_request(body) == ParsedRequest(items, single=True)


@pytest.mark.parametrize(
    ("body", "items"),
    [
        (b'{"inputs": [1, "a", null]}', [1, "a", None]),
        (b'{"inputs": [[1], [2]]}', [[1], [2]]),
        (b'{"inputs": []}', []),
    ],
)
def test_inputs_list(body: bytes, items: list[Any]) -> None:
    assert parse_request(body) == ParsedRequest(items, single=False)


def test_exactly_max_inputs_is_accepted() -> None:
    parsed = parse_request(json.dumps({"inputs": [0] * MAX_INPUTS}).encode())
    assert len(parsed.items) == MAX_INPUTS
    assert not parsed.single


@pytest.mark.parametrize("body", [b"", b"   ", b"\n\t "])
def test_empty_body(body: bytes) -> None:
    check_request_error(request_error(body), 400, "EmptyBody", "body is empty", '{"input": x}')


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"input": 1', "line 1 column 12"),
        (b'{\n  "input": [1, 2,]\n}', "line 2 column 18"),
        (b"{'input': 1}", "line 1 column 2"),
        (b"not json", "line 1 column 1"),
    ],
)
def test_malformed_json(body: bytes, where: str) -> None:
    check_request_error(request_error(body), 400, "MalformedJSON", f"malformed JSON at {where}", '{"inputs": [x, ...]}')


@pytest.mark.parametrize(
    "body",
    [
        b'{"input": "\xff"}',
        b"\xff\xfe\xfd\xfc\xfb",
        b'{"input": "caf\xe9"}',
        '{"input": 1}'.encode("utf-16"),
        '{"inputs": ["caf\u00e9"]}'.encode("utf-16"),
        '{"input": 1}'.encode("utf-32"),
    ],
)
def test_non_utf8_body(body: bytes) -> None:
    check_request_error(request_error(body), 400, "MalformedJSON", "not UTF-8")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_body_without_bom_is_refused(encoding: str) -> None:
    error = request_error('{"input": 1}'.encode(encoding))
    assert (error.status, error.type_name) == (400, "MalformedJSON")


@pytest.mark.parametrize(
    ("body", "json_type"),
    [
        (b"[1, 2]", "array"),
        (b'"text"', "string"),
        (b"3", "number"),
        (b"2.5", "number"),
        (b"null", "null"),
        (b"true", "boolean"),
    ],
)
def test_body_that_is_not_an_object(body: bytes, json_type: str) -> None:
    check_request_error(request_error(body), 422, "WrongShape", f"the body is a JSON {json_type}", '{"input": x}')


@pytest.mark.parametrize(
    ("payload", "type_name", "fragments"),
    [
        ({"input": 1, "inputs": [1]}, "WrongShape", ['"input" or "inputs", not both']),
        ({"input": 1, "inputs": [1], "extra": 0}, "WrongShape", ["not both"]),
        ({}, "MissingInput", ['no "input" or "inputs" key', "got []"]),
        ({"data": [1]}, "MissingInput", ['no "input" or "inputs" key', "got ['data']"]),
        ({"input": 1, "extra": 2}, "WrongShape", ["unknown key(s) ['extra']", '{"input": x}']),
        ({"inputs": [1], "b": 0, "a": 0}, "WrongShape", ["unknown key(s) ['a', 'b']"]),
        ({"inputs": "abc"}, "WrongShape", ['"inputs" must be a JSON array, got a string']),
        ({"inputs": {"a": 1}}, "WrongShape", ['"inputs" must be a JSON array', "object"]),
        ({"inputs": 5}, "WrongShape", ['"inputs" must be a JSON array', "number"]),
        ({"inputs": None}, "WrongShape", ['"inputs" must be a JSON array', "null"]),
    ],
)
def test_wrong_keys(payload: dict[str, Any], type_name: str, fragments: list[str]) -> None:
    check_request_error(request_error(json.dumps(payload).encode()), 422, type_name, *fragments)


def test_too_many_inputs() -> None:
    error = request_error(json.dumps({"inputs": [0] * (MAX_INPUTS + 1)}).encode())
    check_request_error(error, 413, "TooManyInputs", f"{MAX_INPUTS + 1} inputs", f"limit of {MAX_INPUTS}", "split")


def test_body_over_the_size_limit() -> None:
    body = bytes(MAX_BODY_BYTES + 1)
    error = request_error(body)
    check_request_error(error, 413, "PayloadTooLarge", f"{MAX_BODY_BYTES + 1} bytes", f"limit of {MAX_BODY_BYTES}")


# --- check_length ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "0", "100", str(MAX_BODY_BYTES)])
def test_check_length_ok(value: str | None) -> None:
    assert check_length(value) is None


@pytest.mark.parametrize("value", [str(MAX_BODY_BYTES + 1), str(10 * MAX_BODY_BYTES)])
def test_check_length_too_large(value: str) -> None:
    with pytest.raises(RequestError) as excinfo:
        check_length(value)
    check_request_error(excinfo.value, 413, "PayloadTooLarge", f"{value} bytes", f"limit of {MAX_BODY_BYTES}")


@pytest.mark.parametrize("value", ["abc", "", "1e3", "12.5"])
def test_check_length_not_a_number(value: str) -> None:
    with pytest.raises(RequestError) as excinfo:
        check_length(value)
    check_request_error(excinfo.value, 400, "BadRequest", "invalid Content-Length", repr(value))


@pytest.mark.parametrize("value", ["-5", "-1"])
def test_check_length_negative(value: str) -> None:
    with pytest.raises(RequestError) as excinfo:
        check_length(value)
    check_request_error(excinfo.value, 400, "BadRequest", "invalid Content-Length", repr(value))


# --- to_jsonable -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "text", True, False, 0, -7, 2.5, [1, "a"], {"k": [None]}])
def test_json_values_pass_through(value: Any) -> None:
    assert to_jsonable(value) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ((1, 2), [1, 2]),
        ((1, (2, (3,))), [1, [2, [3]]]),
        ([(1, 2), ()], [[1, 2], []]),
        ({"a": (1, 2)}, {"a": [1, 2]}),
        ({1: "x", None: "y"}, {"1": "x", "None": "y"}),
    ],
)
def test_tuples_and_keys_are_converted(value: Any, expected: Any) -> None:
    result = to_jsonable(value)
    assert result == expected
    assert json.loads(json.dumps(result)) == expected


def test_numpy_arrays() -> None:
    result = to_jsonable(np.array([[1, 2], [3, 4]], dtype=np.int64))
    assert result == [[1, 2], [3, 4]]
    assert type(result) is list
    assert type(result[0][0]) is int
    assert to_jsonable(np.array([0.5, 1.5], dtype=np.float32)) == [0.5, 1.5]
    assert to_jsonable({"embedding": np.zeros(3)}) == {"embedding": [0.0, 0.0, 0.0]}


@pytest.mark.parametrize(
    ("value", "expected", "python_type"),
    [
        (np.int64(7), 7, int),
        (np.int32(-3), -3, int),
        (np.float32(0.5), 0.5, float),
        (np.float64(1.25), 1.25, float),
        (np.bool_(True), True, bool),
    ],
)
def test_numpy_scalars(value: Any, expected: Any, python_type: type) -> None:
    result = to_jsonable(value)
    assert result == expected
    assert isinstance(result, python_type)
    assert json.dumps(result) == json.dumps(expected)


def test_torch_tensors() -> None:
    assert to_jsonable(torch.tensor([[1.0, 2.0], [3.0, 4.5]])) == [[1.0, 2.0], [3.0, 4.5]]
    scalar = to_jsonable(torch.tensor(3))
    assert scalar == 3
    assert type(scalar) is int
    assert to_jsonable([torch.tensor([1, 2]), torch.tensor(0.5)]) == [[1, 2], 0.5]
    with pytest.raises(TypeError, match="not a finite number"):
        to_jsonable(torch.tensor([1.0, float("nan")]))


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        [1.0, float("nan")],
        {"score": float("inf")},
        np.float64("nan"),
        np.array([1.0, np.inf]),
    ],
)
def test_non_finite_numbers_are_refused(value: Any) -> None:
    with pytest.raises(TypeError, match="not a finite number"):
        to_jsonable(value)


class Opaque:
    pass


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "object"),
        (Opaque(), "Opaque"),
        ({1, 2}, "set"),
        (b"bytes", "bytes"),
        ([1, object()], "object"),
        ({"k": Opaque()}, "Opaque"),
    ],
)
def test_arbitrary_objects_are_refused(value: Any, type_name: str) -> None:
    with pytest.raises(TypeError) as excinfo:
        to_jsonable(value)
    assert f"an output of type {type_name} cannot be sent as JSON" in str(excinfo.value)


# --- render_outcomes -------------------------------------------------------------------------


def failure(type_name: str = "ValueError", detail: str = "bad input") -> Outcome:
    return Outcome(error=HandlerError(type_name, detail, "Traceback (most recent call last):\n"))


def check_json(body: dict[str, Any]) -> None:
    assert json.loads(json.dumps(body, allow_nan=False)) == body


def test_single_ok() -> None:
    status, body = render_outcomes([Outcome((1, 2))], single=True)
    assert (status, body) == (200, {"output": [1, 2]})
    check_json(body)


def test_single_ok_none_output() -> None:
    assert render_outcomes([Outcome(None)], single=True) == (200, {"output": None})


def test_single_error() -> None:
    status, body = render_outcomes([failure("KeyError", "'label'")], single=True)
    assert status == 500
    assert body == {"error": {"type": "HandlerError", "message": "KeyError: 'label'", "exception": "KeyError"}}
    check_json(body)


def test_single_unserializable_output() -> None:
    status, body = render_outcomes([Outcome(object())], single=True)
    assert status == 500
    assert body["error"]["type"] == "HandlerError"
    assert body["error"]["exception"] == "OutputNotSerializable"
    assert "cannot be sent as JSON" in body["error"]["message"]
    check_json(body)


def test_single_self_referencing_output() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    status, body = render_outcomes([Outcome(cyclic)], single=True)
    assert status == 500
    assert body["error"]["type"] == "HandlerError"
    assert body["error"]["exception"] == "OutputNotSerializable"
    check_json(body)


def test_many_all_ok() -> None:
    outcomes = [Outcome(1), Outcome((2, 3)), Outcome(np.int64(4)), Outcome(None)]
    status, body = render_outcomes(outcomes, single=False)
    assert (status, body) == (200, {"outputs": [1, [2, 3], 4, None]})
    check_json(body)


def test_many_empty() -> None:
    assert render_outcomes([], single=False) == (200, {"outputs": []})


def test_many_with_one_failure() -> None:
    outcomes = [Outcome("a"), failure("ZeroDivisionError", "division by zero"), Outcome("c")]
    status, body = render_outcomes(outcomes, single=False)
    assert status == 500
    assert body == {
        "error": {"type": "HandlerError", "message": "the handler raised for 1 of 3 inputs"},
        "outputs": ["a", None, "c"],
        "errors": [{"index": 1, "exception": "ZeroDivisionError", "message": "division by zero"}],
    }
    check_json(body)


def test_many_with_several_failures() -> None:
    outcomes = [failure("KeyError", "k"), Outcome(1), Outcome(2), failure("TypeError", "t")]
    status, body = render_outcomes(outcomes, single=False)
    assert status == 500
    assert body["outputs"] == [None, 1, 2, None]
    assert [(e["index"], e["exception"], e["message"]) for e in body["errors"]] == [
        (0, "KeyError", "k"),
        (3, "TypeError", "t"),
    ]
    assert "2 of 4 inputs" in body["error"]["message"]


@pytest.mark.parametrize("bad", [object(), float("nan"), {1, 2}])
def test_unserializable_output_fails_only_its_item(bad: Any) -> None:
    outcomes = [Outcome([1.0]), Outcome(np.array([2, 3])), Outcome(bad)]
    status, body = render_outcomes(outcomes, single=False)
    assert status == 500
    assert body["outputs"] == [[1.0], [2, 3], None]
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["index"] == 2
    assert error["exception"] == "OutputNotSerializable"
    assert error["message"]
    check_json(body)


def test_self_referencing_output_fails_only_its_item() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    outcomes = [Outcome([1]), Outcome(cyclic), Outcome({"ok": True})]
    status, body = render_outcomes(outcomes, single=False)
    assert status == 500
    assert body["outputs"] == [[1], None, {"ok": True}]
    assert [(e["index"], e["exception"]) for e in body["errors"]] == [(1, "OutputNotSerializable")]
    assert "RecursionError" not in json.dumps(body)
    check_json(body)
