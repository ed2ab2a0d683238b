"""Exceptions raised by nbserve.

Hierarchy::

    NbserveError                 base of everything nbserve raises on purpose
    ├── SpecError                a flag or value on the magic line is invalid
    ├── CellError                the cell cannot be served (syntax, no handler, bad signature)
    ├── ClusterError             the Ray cluster cannot be started or reached
    ├── CredentialsError         the backend's account credentials are missing (Modal)
    ├── DeployError              a deployment did not come up; nothing is left half-deployed
    │   ├── SetupFailedError     the cell's setup code raised inside a replica
    │   └── InsufficientResourcesError  the cluster cannot place a replica
    ├── EndpointNotFoundError    no endpoint of that name exists
    ├── EndpointInUseError       deleting an endpoint that others use (``--uses``) without force
    ├── HandlerError             the handler raised for one input (other inputs are unaffected)
    └── MapError                 some inputs of ``Endpoint.map`` failed; the others' outputs are kept

The magics turn ``SpecError`` and ``CellError`` into IPython ``UsageError`` so a user sees the
message, not a traceback into nbserve. ``DeployError`` renders only the replica's traceback.
"""

from __future__ import annotations

__all__ = [
    "CellError",
    "ClusterError",
    "CredentialsError",
    "DeployError",
    "EndpointInUseError",
    "EndpointNotFoundError",
    "HandlerError",
    "InsufficientResourcesError",
    "MapError",
    "NbserveError",
    "SetupFailedError",
    "SpecError",
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


class ClusterError(NbserveError, RuntimeError):
    """The Ray cluster could not be started, found or connected to."""


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
