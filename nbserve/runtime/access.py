"""Who may call an endpoint: the bearer token, the Host header, and no cross-site requests.

Checked by the runtime's HTTP contract before anything else, the same for every backend:

- **Host.** A request's ``Host`` must be an IP address, ``localhost``, or a name the endpoint
  was told to accept. A web page on another domain that rebinds its name to 127.0.0.1
  (DNS rebinding) sends its own name, and is refused.
- **Cross-site.** A browser sends ``Origin`` (and ``Sec-Fetch-Site``) with a request from a
  page of another origin; such requests are refused, whatever their body, so a page the
  user visits cannot make the browser post to an endpoint on loopback.
- **Token.** Unless the endpoint is public, ``Authorization: Bearer <token>`` must carry the
  cluster's token, compared in constant time. The token is asked for on every request (the
  provider caches it), so a rotation takes effect without a redeploy.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from nbserve._errors import RequestError

__all__ = ["TOKEN_HELP", "Access"]

TOKEN_HELP = (
    'send the header "Authorization: Bearer $NBSERVE_TOKEN"; `nbserve token` prints the token, '
    "and nbserve's own clients (the notebook, %serve bench) send it by themselves"
)


@dataclass(frozen=True)
class Access:
    """The rules one endpoint applies to every HTTP request, ``GET`` included.

    ``token`` gives the current token (``None`` when none can be found: then only a public
    endpoint answers); ``public`` turns the token check off; ``check_host`` is off where the
    platform fronts the endpoint with a domain of its own (Modal).
    """

    token: Callable[[], str | None]
    public: bool = False
    check_host: bool = True
    hosts: frozenset[str] = frozenset()  # names accepted besides IP addresses and localhost

    def check(self, headers: Mapping[str, str]) -> None:
        """Raise ``RequestError`` (403 or 401) for a request these rules refuse."""
        host = headers.get("host", "")
        if self.check_host and host and not self._host_allowed(host):
            raise RequestError(
                403,
                "ForbiddenHost",
                f"the Host header {host!r} names no address this endpoint serves on; call it by its IP "
                "address or localhost (a name can be allowed with NBSERVE_ALLOWED_HOSTS)",
            )
        if _cross_site(headers, host):
            raise RequestError(
                403,
                "CrossSiteRequest",
                "requests from web pages of another origin are refused; call the endpoint from code, "
                "or from JupyterLab through the Jupyter server's route",
            )
        if not self.public:
            self._check_token(headers.get("authorization", ""))

    def _host_allowed(self, host: str) -> bool:
        name = _hostname(host)
        if name in ("localhost", *self.hosts):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def _check_token(self, header: str) -> None:
        expected = self.token()
        scheme, _, given = header.partition(" ")
        if not header:
            raise RequestError(401, "Unauthorized", f"this endpoint needs a token: {TOKEN_HELP}")
        if scheme.lower() != "bearer" or not given.strip():
            raise RequestError(401, "Unauthorized", f"the Authorization header is not a bearer token: {TOKEN_HELP}")
        if expected is None or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise RequestError(
                401, "Unauthorized", "the token is not this cluster's (it may have been rotated); " + TOKEN_HELP
            )


def _hostname(host: str) -> str:
    """``host`` without its port; IPv6 literals without their brackets."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, sep, port = host.rpartition(":")
    return name.lower() if sep and port.isdigit() else host.lower()


def _cross_site(headers: Mapping[str, str], host: str) -> bool:
    """Whether a browser sent this request from a page of another origin."""
    if headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    if origin == "null":  # sandboxed frames, file:// pages, some redirects
        return True
    return urlsplit(origin).netloc.lower() != host.lower()
