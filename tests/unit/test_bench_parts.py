"""The load generator's plain parts: payloads, plans, histogram and report."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from nbserve._bench import report
from nbserve._bench.loadgen import BenchResult, LoadPlan, histogram
from nbserve._bench.payload import load_payloads
from nbserve._errors import PayloadError


def test_payload_literals_expressions_and_json_lines(tmp_path: Path) -> None:
    assert load_payloads('"a cat on a mat"') == ["a cat on a mat"]
    assert load_payloads("[1, 2.5, None]") == [[1, 2.5, None]]
    assert load_payloads("texts[1].upper()", {"texts": ["a", "b"]}) == ["B"]
    lines = tmp_path / "inputs.jsonl"
    lines.write_text('"first"\n\n{"x": 1}\n[1, 2]\n')
    assert load_payloads(str(lines)) == ["first", {"x": 1}, [1, 2]]


@pytest.mark.parametrize(
    ("text", "namespace", "message"),
    [
        ("os.getcwd()", None, "literals only"),
        ("undefined_name", {}, "not a valid expression"),
        ("object()", {}, "must be JSON"),
        ("missing.jsonl", None, "no such file"),
    ],
)
def test_bad_payloads_say_what_is_wrong(text: str, namespace: dict[str, object] | None, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        load_payloads(text, namespace)


def test_bad_json_lines_name_the_line(tmp_path: Path) -> None:
    lines = tmp_path / "bad.jsonl"
    lines.write_text('"ok"\n{not json}\n')
    with pytest.raises(PayloadError, match="line 2: not JSON"):
        load_payloads(str(lines))
    lines.write_text("\n\n")
    with pytest.raises(PayloadError, match="holds no inputs"):
        load_payloads(str(lines))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "--concurrency"),
        ({"duration_s": None}, "either --duration or --requests"),
        ({"requests": 10}, "either --duration or --requests"),
        ({"duration_s": -1.0}, "--duration"),
        ({"duration_s": None, "requests": 0}, "--requests"),
        ({"payloads": []}, "no inputs"),
    ],
)
def test_plans_are_validated(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"url": "http://127.0.0.1:1/x", "payloads": [1], **kwargs}
    with pytest.raises(ValueError, match=message):
        LoadPlan(**arguments)  # type: ignore[arg-type]


def test_histogram_counts_every_value_once() -> None:
    values = [1.0, 1.5, 2.0, 9.9, 10.0, 5.0]
    bins = histogram(values, bins=3)
    assert [count for _, _, count in bins] == [3, 1, 2]
    assert bins[0][0] == 1.0 and bins[-1][1] == pytest.approx(10.0)
    assert histogram([]) == [] and sum(c for _, _, c in histogram([4.0, 4.0])) == 2


def test_report_shows_percentiles_and_every_failure_cause() -> None:
    result = BenchResult(LoadPlan("http://127.0.0.1:1/x", ["a"], 4, duration_s=2.0))
    result.latencies_ms = [float(v) for v in range(1, 101)]
    result.failures = Counter({"HTTP 500": 3, "HTTP 422": 1})
    result.elapsed_s = 2.0
    rows = dict(report.summary_rows(result))
    assert rows["requests"] == "104 sent, 100 ok, 4 failed"
    assert rows["throughput"] == "52.0 requests/s over 2.0 s"
    assert rows["latency p50"] == "50.5 ms" and rows["latency p99"] == "99.0 ms"
    assert rows["errors: HTTP 500"] == "3" and rows["errors: HTTP 422"] == "1"
    assert "<svg" in report.histogram_svg(result.latencies_ms)
    assert "data-bench='errors: HTTP 500'>3<" in report.summary_html(result)
    json.dumps(rows)  # plain strings, fit for any front end
