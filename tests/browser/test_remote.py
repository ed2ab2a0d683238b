"""JupyterLab opened from another machine (Binder, JupyterHub, a remote Lab): the browser can
reach only the Jupyter server, so the sidebar shows, copies and calls the endpoint's route
through it, and the page never asks for the endpoint's own (loopback) port."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from tests.support.lab import REMOTE_HOST, Lab

NAME = "remote_echo"
ROW = f".nbserve-Endpoint[data-name='{NAME}']"


def test_a_remote_browser_calls_the_endpoint_through_the_jupyter_server(remote_lab: Lab, ray_cluster: Any) -> None:
    lab = remote_lab
    direct_port = None
    asked_direct: list[str] = []

    def watch(route: Any) -> None:
        # Anything the page sends to the endpoint's own port would fail for a remote browser.
        if direct_port is not None and urlsplit(route.request.url).port == direct_port:
            asked_direct.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    lab.page.context.route("**/*", watch)
    path = lab.write_notebook(
        "remote_demo.ipynb",
        [
            "%load_ext nbserve",
            f"%%serve {NAME} --cpus 0.1 --no-batch\nimport time\n\ndef {NAME}(x):\n    yield x\n"
            "    time.sleep(0.5)\n    yield x\n",
            f"import json\nprint(json.dumps({NAME}.urls))",
        ],
    )
    lab.open_notebook(path)
    outputs = lab.run_all_cells(timeout=180)
    urls = json.loads(outputs[2][0]["text"])
    direct_port = urlsplit(urls["direct"]).port
    # The kernel knows the Jupyter server that started it, by the URL the server knows itself by.
    assert urls["jupyter"] == f"{lab.server.url}nbserve/endpoints/{NAME}"

    lab.page.evaluate("() => window.jupyterapp.shell.activateById('nbserve-endpoints')")
    lab.wait_js(f"() => document.querySelector(\"{ROW}\")?.dataset.status === 'running'", 30, "the endpoint row")
    shown = lab.page.locator(f"{ROW} .nbserve-url")
    assert shown.get_attribute("data-route") == "jupyter"
    remote_url = f"http://{REMOTE_HOST}:{urlsplit(lab.server.url).port}/nbserve/endpoints/{NAME}"
    assert shown.get_attribute("data-url") == remote_url
    assert shown.inner_text().strip() == remote_url.removeprefix("http://")
    assert lab.page.locator(f"{ROW} .nbserve-url-other").get_attribute("data-url") == urls["direct"]
    lab.screenshot("sidebar-remote-browser")

    # The page calls the endpoint as a remote page would: the route the sidebar shows, the
    # session cookie, and Jupyter's XSRF token (read from its cookie) on POST.
    answers = lab.page.evaluate(
        """async (url) => {
            const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf='))?.split('=')[1];
            const post = (body) => fetch(url, {
                method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-XSRFToken': xsrf},
                body: JSON.stringify(body)
            });
            const one = await post({input: 'hi'});
            const stream = await post({input: 'hi', stream: true});
            const forged = await fetch(url, {method: 'POST', body: '{"input": 1}'});  // no XSRF token
            return [one.status, await one.json(), stream.headers.get('content-type'), await stream.text(),
                    forged.status];
        }""",
        shown.get_attribute("data-url"),
    )
    status, body, kind, events, forged = answers
    assert (status, body) == (200, {"output": "hihi"})
    assert kind == "text/event-stream"
    assert events == 'data: {"output":"hi"}\n\ndata: {"output":"hi"}\n\nevent: end\ndata: {}\n\n'
    assert forged == 403
    assert asked_direct == [], f"the page asked for the endpoint's loopback port: {asked_direct}"
