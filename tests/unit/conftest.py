"""Fixtures shared by the fast lane's tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

import nbserve
from nbserve import EndpointNotFoundError


@pytest.fixture
def local() -> Iterator[Any]:
    """``local(source, name, **flags)`` deploys on the in-process backend; all are deleted afterwards."""
    made: list[str] = []

    def deploy(source: str, name: str, **flags: Any) -> nbserve.Endpoint:
        made.append(name)
        return nbserve.deploy(source, name, backend="local", on_event=lambda event: None, **flags)

    yield deploy
    for name in made:
        with contextlib.suppress(EndpointNotFoundError):
            nbserve.endpoint(name, backend="local").down()
