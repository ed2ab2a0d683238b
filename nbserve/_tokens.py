"""The endpoint token of this user's machine: one secret that every HTTP endpoint asks for.

Kept in ``NBSERVE_HOME/token``, readable by its owner only (0600, in a 0700 folder), made on
first need and never printed except by ``nbserve token``. The embedded Ray cluster and the
in-process backend use it; a cluster named by ``--address`` keeps a token of its own, in the
cluster (``nbserve.backends.ray.token``), so every kernel that reaches the cluster finds it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from nbserve._config import nbserve_home, private_folder

__all__ = ["FileToken", "new_token", "read_or_create", "rotate", "token_path"]

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_path(environ: Mapping[str, str] = os.environ) -> Path:
    return nbserve_home(environ) / "token"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a file only its owner can read, replacing it atomically."""
    private_folder(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text + "\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_or_create(path: Path | None = None) -> str:
    """The token in ``path`` (this user's, by default), made now if there is none."""
    path = path or token_path()
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if token:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # a copy made by hand with the umask's mode
        return token
    token = new_token()
    _write_private(path, token)
    return token


def rotate(path: Path | None = None) -> str:
    """Replace the token; what holds the old one stops being let in."""
    token = new_token()
    _write_private(path or token_path(), token)
    return token


class FileToken:
    """The current token of a file, read again only when the file changed (one ``stat`` a call)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or token_path()
        self._seen: tuple[float, str | None] = (-1.0, None)

    def __call__(self) -> str | None:
        try:
            changed = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if changed != self._seen[0]:
            self._seen = (changed, self.path.read_text().strip() or None)
        return self._seen[1]
