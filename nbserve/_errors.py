"""Every exception nbserve raises on purpose, in one tree.

Hierarchy::

    NbserveError                     base of everything nbserve raises on purpose
    ├── SpecError                    a flag or value of %%serve breaks a rule (rule, value, fix)
    ├── CellError                    the cell cannot be served (syntax, no handler, bad signature)
    ├── CommandError                 a command's arguments are wrong (a %serve verb, a method's)
    │   └── PayloadError             bench --payload is not a file of JSON lines or an expression
    ├── ConfigError                  an NBSERVE_* environment variable holds a bad value
    ├── ClusterError                 the Ray cluster cannot be started or reached
    ├── CredentialsError             the backend's account credentials are missing (Modal)
    ├── DeployError                  a deployment did not come up; nothing is left half-deployed
    │   ├── SetupFailedError         the cell's setup code raised inside a replica
    │   └── InsufficientResourcesError  the cluster cannot place a replica
    ├── EndpointNotFoundError        no endpoint of that name exists
    ├── EndpointInUseError           deleting an endpoint that others use (--uses) without force
    ├── HandlerError                 the handler raised for one input (other inputs are unaffected)
    ├── EndpointTimeoutError         an input got no answer within the endpoint's --timeout (HTTP 504)
    ├── EndpointOverloadedError      the endpoint's queue is full (--max-queued): retry later (HTTP 503)
    ├── EndpointUnavailableError     the endpoint could not be reached (its replica died, its cluster went)
    ├── MapError                     some inputs of Endpoint.map failed; the others' outputs are kept
    ├── RequestError                 an HTTP request the endpoint refuses, with its status
    └── MonitorError                 the Jupyter server's window on the cluster did not answer

The magics turn the errors a user fixes by editing the line or the cell into IPython's
``UsageError`` (a message, no traceback); ``DeployError`` and ``HandlerError`` render only
the replica's traceback. The Jupyter server extension maps these types to HTTP statuses in
one table (``nbserve.server.handlers``); errors that cross a process boundary by name are
rebuilt with ``from_wire``.
"""

from __future__ import annotations

__all__ = [
    "CellError",
    "ClusterError",
    "CommandError",
    "ConfigError",
    "CredentialsError",
    "DeployError",
    "EndpointInUseError",
    "EndpointNotFoundError",
    "EndpointOverloadedError",
    "EndpointTimeoutError",
    "EndpointUnavailableError",
    "HandlerError",
    "InsufficientResourcesError",
    "MapError",
    "MonitorError",
    "NbserveError",
    "PayloadError",
    "RequestError",
    "SetupFailedError",
    "SpecError",
    "from_wire",
]


class NbserveError(Exception):
    """Base class of every error nbserve raises on purpose."""


class SpecError(NbserveError, ValueError):
    """A flag of ``%%serve`` (or its value) breaks a rule.

    The message states the rule, the value given and how to fix it.
    """

    def __init__(self, flag: str, value: object, rule: str, fix: str) -> None:
        self.flag = flag
        self.value = value
        self.rule = rule
        self.fix = fix
        super().__init__(f"{flag} {value!s}: {rule}. {fix}")

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, object, str, str]]:
        return (SpecError, (self.flag, self.value, self.rule, self.fix))


class CellError(NbserveError, ValueError):
    """The cell cannot become an endpoint; ``lineno`` points at the offending line."""

    def __init__(self, message: str, lineno: int | None = None, line: str | None = None) -> None:
        self.lineno = lineno
        self.line = line
        text = message
        if lineno is not None:
            text = f"line {lineno}: {message}"
            if line is not None and line.strip():
                text += f"\n    {line.rstrip()}"
        super().__init__(text)


class CommandError(NbserveError, ValueError):
    """A command's arguments are wrong: a verb's (``down`` with names and ``--all``), or a
    method's (``map(chunk_size=0)``)."""


class PayloadError(CommandError):
    """``--payload`` could not be turned into JSON inputs."""


class ConfigError(NbserveError, ValueError):
    """An ``NBSERVE_*`` environment variable holds a value nbserve cannot use."""


class ClusterError(NbserveError, RuntimeError):
    """The Ray cluster could not be started, found or connected to."""

    def _render_traceback_(self) -> list[str]:
        # A failure, not a usage mistake: an error output (which stops "Run All" and fails
        # nbval) that reads as the message alone, not nbserve's own stack.
        return [f"{type(self).__name__}: {self}"]


class CredentialsError(NbserveError, RuntimeError):
    """The backend needs account credentials that are not set; the message says how to set them."""


class DeployError(NbserveError, RuntimeError):
    """A deployment did not become healthy. It has been removed (or rolled back)."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing nbserve's own stack: the user's problem is
        # in the replica, and the message already carries the replica's traceback.
        return [f"{type(self).__name__}: {self}"]


class SetupFailedError(DeployError):
    """The cell's setup code raised inside a replica; the message holds its traceback."""


class InsufficientResourcesError(DeployError):
    """The cluster has no node that can hold one replica of the requested size."""


class EndpointNotFoundError(NbserveError, LookupError):
    """No endpoint of that name is deployed."""


class EndpointInUseError(NbserveError, RuntimeError):
    """Other endpoints use this one (``--uses``); ``users`` names them."""

    def __init__(self, name: str, users: list[str]) -> None:
        self.name = name
        self.users = users
        super().__init__(
            f"{name} is used by {', '.join(users)}; delete {'them' if len(users) > 1 else 'it'} first, "
            f"or force it (`%serve down {name} --force`, `down(force=True)`): their calls to {name} will then fail"
        )

    def __reduce__(self) -> tuple[type[EndpointInUseError], tuple[str, list[str]]]:
        return (EndpointInUseError, (self.name, self.users))


class HandlerError(NbserveError, RuntimeError):
    """The handler raised for one input.

    ``type_name`` and ``detail`` describe the original exception; ``remote_traceback`` is its
    traceback inside the replica (cell frames only).
    """

    def __init__(self, type_name: str, detail: str, remote_traceback: str = "") -> None:
        self.type_name = type_name
        self.detail = detail
        self.remote_traceback = remote_traceback
        super().__init__(f"{type_name}: {detail}")

    def __reduce__(self) -> tuple[type[HandlerError], tuple[str, str, str]]:
        return (HandlerError, (self.type_name, self.detail, self.remote_traceback))

    def _render_traceback_(self) -> list[str]:
        lines = ["HandlerError: the endpoint's handler raised for this input"]
        if self.remote_traceback:
            lines.extend(self.remote_traceback.rstrip().splitlines())
        else:
            lines.append(f"{self.type_name}: {self.detail}")
        return lines


class EndpointTimeoutError(NbserveError, TimeoutError):
    """An input got no answer within the endpoint's time limit (``--timeout``); the endpoint
    goes on serving others, and a handler call that never returns is left behind."""

    def __init__(self, message: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(message)

    def __reduce__(self) -> tuple[type[EndpointTimeoutError], tuple[str, float]]:
        return (EndpointTimeoutError, (str(self), self.timeout_s))


class EndpointOverloadedError(NbserveError, RuntimeError):
    """The endpoint's queue is full (``--max-queued``): nothing was run; try again in
    ``retry_after_s`` seconds (``Endpoint.map`` does by itself)."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)

    def __reduce__(self) -> tuple[type[EndpointOverloadedError], tuple[str, float]]:
        return (EndpointOverloadedError, (str(self), self.retry_after_s))


class EndpointUnavailableError(NbserveError, ConnectionError):
    """The endpoint could not be reached: the replica that had the call died (it is re-run
    once, unless ``--no-retry``), or its cluster went away."""


class MapError(NbserveError, RuntimeError):
    """Some inputs of ``Endpoint.map`` failed. ``results`` holds every output, with the
    ``HandlerError`` in place of each failed one; ``failed`` lists their indices."""

    def __init__(self, results: list[object], failed: list[int]) -> None:
        self.results = results
        self.failed = failed
        first = results[failed[0]]
        shown = ", ".join(map(str, failed[:10])) + (", ..." if len(failed) > 10 else "")
        super().__init__(
            f"{len(failed)} of {len(results)} inputs failed (indices {shown}); the first: {first}. "
            "Pass return_exceptions=True to get the other outputs with the errors in place."
        )


class RequestError(NbserveError):
    """A request the endpoint refuses: the HTTP ``status`` and a JSON error's ``type_name``."""

    def __init__(self, status: int, type_name: str, message: str) -> None:
        self.status = status
        self.type_name = type_name
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[type[RequestError], tuple[int, str, str]]:
        return (RequestError, (self.status, self.type_name, self.message))


class MonitorError(NbserveError, RuntimeError):
    """The Jupyter server's monitor process did not answer (it died, or took too long)."""


def from_wire(type_name: str, message: str) -> NbserveError:
    """Rebuild an error that crossed a process boundary as its type's name and its message.

    Unknown names give a plain ``NbserveError``; the message is kept as it was written.
    """
    cls = next((c for c in _all_errors() if c.__name__ == type_name), NbserveError)
    error = Exception.__new__(cls)
    Exception.__init__(error, message)
    return error


def _all_errors() -> list[type[NbserveError]]:
    found: list[type[NbserveError]] = []
    pending: list[type[NbserveError]] = [NbserveError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found
