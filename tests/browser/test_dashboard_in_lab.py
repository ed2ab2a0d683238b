"""The %%serve cell's live dashboard in JupyterLab, rendered by the real widget manager."""

from __future__ import annotations

import threading
from typing import Any

import requests

from nbserve import _api as api
from tests.support.lab import Lab

NAME = "browser_dash"
DASHBOARD = f".nbserve-dashboard:has(.nbserve-header[data-endpoint='{NAME}'])"


def _shown(lab: Lab, stat: str) -> str:
    text: str = lab.page.locator(f"{DASHBOARD} [data-stat='{stat}']").first.inner_text()
    return text.strip()


def _requests_shown(lab: Lab) -> int:
    return int(_shown(lab, "requests"))


def test_dashboard_renders_and_its_numbers_move(lab: Lab, ray_cluster: Any) -> None:
    path = lab.write_notebook(
        "dashboard_demo.ipynb",
        [
            "%load_ext nbserve",
            f"%%serve {NAME} --cpus 0.1 --max-batch-size 8\nimport time\n"
            f"def {NAME}(items):\n    time.sleep(0.01)\n    return [x + 1 for x in items]\n",
            f"{NAME}.url",
        ],
    )
    lab.open_notebook(path)
    outputs = lab.run_all_cells(timeout=180)
    url = outputs[2][0]["data"]["text/plain"].strip("'")
    lab.wait_js(
        "(sel) => document.querySelector(sel + \" [data-stat='state']\")?.textContent === 'running'",
        30,
        "the dashboard widget to render with its endpoint running",
        arg=DASHBOARD,
    )
    assert _shown(lab, "replicas") == "1/1"
    assert _shown(lab, "url") == url
    assert _requests_shown(lab) == 0

    # Load from outside the notebook, as a client with the token; the widget's numbers move.
    stop = threading.Event()
    headers = api.endpoint(NAME).headers()
    answers: list[int] = []

    def load() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                answers.append(session.post(url, json={"input": 1}, headers=headers, timeout=30).status_code)

    clients = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        seen = []
        for _ in range(3):
            floor = seen[-1] if seen else 0
            lab.wait_js(
                "([sel, floor]) => Number(document.querySelector(sel + \" [data-stat='requests']\")"
                "?.textContent) > floor",
                10,
                f"the request count to move past {floor}",
                arg=[DASHBOARD, floor],
            )
            seen.append(_requests_shown(lab))
        assert seen == sorted(set(seen)), seen
        assert _shown(lab, "latency").count("/") == 2 and not _shown(lab, "latency").startswith("-")
        assert _shown(lab, "throughput").split()[0] != "0.0"
        # Every request was answered (a load without the token once showed 100 % errors here).
        assert set(answers) == {200}, f"statuses of the load: {sorted(set(answers))}"
        assert _shown(lab, "error_rate") == "0.0%"
        assert _shown(lab, "batch") != "-"
        assert lab.page.locator(f"{DASHBOARD} .nbserve-plot svg polyline").count() >= 1
        live = lab.screenshot("dashboard-live")  # the whole page, then the widget alone
        lab.page.locator(DASHBOARD).screenshot(path=str(live.with_name("dashboard.png")))
    finally:
        stop.set()
        for client in clients:
            client.join(30)

    api.endpoint(NAME).down()
    lab.wait_js(
        "(sel) => document.querySelector(sel + \" [data-stat='state']\")?.textContent === 'deleted'",
        20,
        "the dashboard to show the endpoint deleted",
        arg=DASHBOARD,
    )
    lab.screenshot("dashboard-deleted")
