"""Who may call an endpoint: the token, the Host header, cross-site requests; and the token's file.

The rules are checked directly (``Access``), then over real HTTP on the in-process backend,
whose runtime is the one every backend answers with.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import nbserve
from nbserve import _tokens
from nbserve._errors import EndpointNotFoundError, RequestError
from nbserve.runtime import Access

TOKEN = "s3cret-token"
CELL = "def guarded(items):\n    return [x + 1 for x in items]\n"


def refusal(access: Access, **headers: str) -> RequestError:
    with pytest.raises(RequestError) as raised:
        access.check({k.replace("_", "-"): v for k, v in headers.items()})
    return raised.value


def test_the_token_is_required_and_compared_exactly() -> None:
    access = Access(lambda: TOKEN)
    access.check({"authorization": f"Bearer {TOKEN}", "host": "127.0.0.1:8000"})
    access.check({"authorization": f"bearer {TOKEN}"})  # the scheme's case does not matter
    assert refusal(access).status == 401
    assert "nbserve token" in refusal(access).message
    assert refusal(access, authorization=f"Bearer {TOKEN}x").status == 401
    assert refusal(access, authorization=f"Basic {TOKEN}").status == 401
    assert refusal(access, authorization="Bearer ").status == 401
    assert refusal(Access(lambda: None), authorization=f"Bearer {TOKEN}").status == 401  # no token anywhere
    Access(lambda: None, public=True).check({})


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "10.0.0.7", "LOCALHOST"])
def test_ip_addresses_and_localhost_are_accepted_hosts(host: str) -> None:
    Access(lambda: TOKEN, public=True).check({"host": host})


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io:8000", "[::1"])
def test_other_host_names_are_refused(host: str) -> None:
    error = refusal(Access(lambda: TOKEN, public=True), host=host)
    assert (error.status, error.type_name) == (403, "ForbiddenHost")
    Access(lambda: TOKEN, public=True, hosts=frozenset({"evil.example"})).check({"host": "evil.example:8000"})
    Access(lambda: TOKEN, public=True, check_host=False).check({"host": host})


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example", "host": "127.0.0.1:8000"},
        {"origin": "http://127.0.0.1:8888", "host": "127.0.0.1:8000"},  # JupyterLab's page, another port
        {"origin": "null", "host": "127.0.0.1:8000"},
        {"sec-fetch-site": "cross-site", "host": "127.0.0.1:8000"},
        {"sec-fetch-site": "same-site", "host": "127.0.0.1:8000"},
    ],
)
def test_requests_from_pages_of_another_origin_are_refused(headers: dict[str, str]) -> None:
    for access in (Access(lambda: TOKEN), Access(lambda: TOKEN, public=True)):
        with pytest.raises(RequestError) as raised:
            access.check({**headers, "authorization": f"Bearer {TOKEN}"})
        assert (raised.value.status, raised.value.type_name) == (403, "CrossSiteRequest")
    Access(lambda: TOKEN, public=True).check({"origin": "http://127.0.0.1:8000", "host": "127.0.0.1:8000"})


# --- over HTTP, on the in-process backend -----------------------------------------------------


@pytest.fixture
def guarded() -> Iterator[nbserve.Endpoint]:
    yield nbserve.deploy(CELL, "guarded", backend="local")
    with contextlib.suppress(EndpointNotFoundError):
        nbserve.endpoint("guarded", backend="local").down()


def test_http_needs_the_token_and_says_how_to_get_it(guarded: nbserve.Endpoint) -> None:
    missing = requests.post(guarded.url, json={"input": 1}, timeout=10)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["error"]["type"] == "Unauthorized"
    wrong = requests.post(guarded.url, json={"input": 1}, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    assert requests.get(guarded.url, timeout=10).status_code == 401  # the description too
    right = requests.post(guarded.url, json={"input": 1}, headers=guarded.headers(), timeout=10)
    assert (right.status_code, right.json()) == (200, {"output": 2})
    assert guarded.headers() == {"Authorization": f"Bearer {_tokens.read_or_create()}"}


def test_a_forged_cross_site_post_is_refused(guarded: nbserve.Endpoint) -> None:
    """What a web page can make a browser send: text/plain, a foreign Origin or Host."""
    forged = requests.post(
        guarded.url,
        data='{"input": 1}',
        headers={**guarded.headers(), "Content-Type": "text/plain", "Origin": "http://evil.example"},
        timeout=10,
    )
    assert (forged.status_code, forged.json()["error"]["type"]) == (403, "CrossSiteRequest")
    rebound = requests.post(guarded.url, json={"input": 1}, headers={**guarded.headers(), "Host": "evil.example"})
    assert (rebound.status_code, rebound.json()["error"]["type"]) == (403, "ForbiddenHost")


def test_rotation_reaches_running_endpoints_without_a_redeploy(guarded: nbserve.Endpoint) -> None:
    old = guarded.headers()
    assert requests.post(guarded.url, json={"input": 1}, headers=old, timeout=10).status_code == 200
    rotated = _tokens.rotate()
    assert requests.post(guarded.url, json={"input": 1}, headers=old, timeout=10).status_code == 401
    fresh = {"Authorization": f"Bearer {rotated}"}
    assert requests.post(guarded.url, json={"input": 1}, headers=fresh, timeout=10).status_code == 200
    assert guarded.headers() == fresh


def test_curl_reads_the_token_from_the_environment(guarded: nbserve.Endpoint) -> None:
    command = guarded.curl(41)
    assert "$NBSERVE_TOKEN" in command and _tokens.read_or_create() not in command
    env = {**os.environ, "NBSERVE_TOKEN": _tokens.read_or_create()}
    ran = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=30)
    assert ran.stdout == '{"output":42}'


def test_a_public_endpoint_answers_without_the_token_and_says_so() -> None:
    endpoint = nbserve.deploy(CELL, "open_demo", backend="local", public=True)
    try:
        assert endpoint.public and endpoint.headers() == {}
        assert "public" in endpoint.info().resources
        assert requests.post(endpoint.url, json={"input": 1}, timeout=10).json() == {"output": 2}
        assert "Authorization" not in endpoint.curl(1)
        forged = requests.post(endpoint.url, json={"input": 1}, headers={"Origin": "http://evil.example"})
        assert forged.status_code == 403  # public is not open to other pages
    finally:
        endpoint.down()


def test_the_token_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "home" / "token"
    token = _tokens.read_or_create(path)
    assert len(token) >= 40 and _tokens.read_or_create(path) == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)
    _tokens.read_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # a copy made with the umask's mode is tightened
    assert _tokens.rotate(path) != token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
