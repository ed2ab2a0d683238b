"""The Endpoints sidebar end to end: a notebook deploys, the sidebar shows it live, delete tears it down."""

from __future__ import annotations

import time
from typing import Any

import requests

from nbserve._endpoint import Endpoint
from tests.support.helpers import wait_for
from tests.support.lab import Lab

NAME = "sidebar_echo"
ROW = f".nbserve-Endpoint[data-name='{NAME}']"


def _row_text(lab: Lab, part: str) -> str:
    text: str = lab.page.locator(f"{ROW} {part}").inner_text()
    return text.strip()


# The line boxes of each text node of a URL element: a part of the path (a text node between
# <wbr>s) laid out on more than one line was cut inside.
_LINES = """(node) => [...node.childNodes].filter(n => n.nodeType === Node.TEXT_NODE).map(n => {
    const range = document.createRange();
    range.selectNodeContents(n);
    return {text: n.textContent, tops: [...new Set([...range.getClientRects()].map(r => Math.round(r.top)))]};
})"""


def _parts_cut_inside(lab: Lab, part: str) -> list[str]:
    lines = lab.page.locator(f"{ROW} {part}").evaluate(_LINES)
    return [line["text"] for line in lines if len(line["tops"]) > 1]


def _wrapped_lines(lab: Lab, part: str) -> int:
    lines = lab.page.locator(f"{ROW} {part}").evaluate(_LINES)
    return len({top for line in lines for top in line["tops"]})


def test_endpoint_appears_live_and_delete_tears_it_down(lab: Lab, ray_cluster: Any) -> None:
    lab.page.evaluate("() => window.jupyterapp.shell.activateById('nbserve-endpoints')")
    lab.wait_js(
        "() => ['empty', 'ready'].includes(document.querySelector('#nbserve-endpoints')?.dataset.state)",
        60,
        "the Endpoints panel to list (it must not say the server extension is missing)",
    )
    path = lab.write_notebook(
        "sidebar_demo.ipynb",
        [
            "%load_ext nbserve",
            f"%%serve {NAME} --cpus 0.1\ndef {NAME}(items):\n    return items\n",
            f"[{NAME}(i) for i in range(20)]\n{NAME}.url",
        ],
    )
    lab.open_notebook(path)
    outputs = lab.run_all_cells(timeout=180)
    url = outputs[2][0]["data"]["text/plain"].strip("'")
    deployed = time.monotonic()

    lab.wait_js(
        f"() => document.querySelector(\"{ROW}\")?.dataset.status === 'running'",
        10,
        "the new endpoint to show as running in the sidebar within 10 s",
    )
    shown_after = time.monotonic() - deployed
    assert _row_text(lab, ".nbserve-figure-replicas .nbserve-figure-value") == "1/1"
    shown = lab.page.locator(f"{ROW} .nbserve-url")
    assert shown.get_attribute("data-url") == url  # what Copy copies
    assert _row_text(lab, ".nbserve-url") == url.removeprefix("http://")
    # Whole, wrapped where needed: nothing of the URL is cut off at the sidebar's default width.
    assert shown.evaluate("node => node.scrollWidth <= node.clientWidth + 1")
    # and wrapped between the parts of its path, never inside a name ("remote_e" / "cho").
    assert _wrapped_lines(lab, ".nbserve-url-other") > 1  # the Jupyter route is wider than the column
    for part in (".nbserve-url", ".nbserve-url-other"):
        assert _parts_cut_inside(lab, part) == [], f"the sidebar cut {part} inside a part of its path"
    assert _row_text(lab, ".nbserve-Endpoint-backend") == "ray"
    assert _row_text(lab, ".nbserve-notebook") == "sidebar_demo.ipynb"
    if hasattr(Endpoint, "stats"):
        # The 20 calls above show up as latency and throughput once the replica reports them.
        lab.wait_js(
            f"() => document.querySelector(\"{ROW} .nbserve-figure-p50 .nbserve-figure-value\")?.textContent !== '—'",
            15,
            "the sidebar to show the endpoint's p50 latency",
        )
        assert _row_text(lab, ".nbserve-figure-rate .nbserve-figure-value").endswith("/s")
        # The sparkline draws once two polls have figures (the panel polls every 2 s).
        lab.wait_js(
            f'() => Number(document.querySelector("{ROW} .nbserve-Endpoint-trend")?.dataset.lines) >= 1',
            15,
            "the row's sparkline to draw a line",
        )
    lab.screenshot("sidebar-endpoint-live")
    print(f"endpoint shown in the sidebar {shown_after:.1f} s after its cell finished")

    # The owning notebook's link opens it (it is already open: the link makes it current again).
    lab.execute("launcher:create")
    lab.page.locator(f"{ROW} .nbserve-notebook").click()
    lab.wait_js(
        "() => window.jupyterapp.shell.currentWidget?.context?.path === 'sidebar_demo.ipynb'",
        10,
        "the notebook link to open the notebook",
    )

    lab.page.locator(f"{ROW} .nbserve-delete").click()
    dialog = lab.page.locator(".jp-Dialog")
    assert NAME in dialog.inner_text()
    lab.screenshot("sidebar-delete-confirmation")
    dialog.locator("button.jp-mod-warn").click()
    lab.wait_js(f'() => !document.querySelector("{ROW}")', 30, "the deleted endpoint to leave the sidebar")
    wait_for(
        lambda: requests.post(url, json={"input": 1}, timeout=30).status_code == 404,
        30,
        "the deleted endpoint's URL to stop answering",
    )
    lab.screenshot("sidebar-after-delete")
