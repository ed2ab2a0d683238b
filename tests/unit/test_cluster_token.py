"""When the embedded cluster's start may skip generating Ray's token (a Python start saved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbserve.backends.ray.cluster import _token_available


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    return tmp_path


def test_no_token_anywhere_means_generate(home: Path) -> None:
    assert not _token_available()
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("")  # empty: Ray would not accept it either
    assert not _token_available()


def test_each_place_ray_reads_a_token_from(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("x" * 64)
    assert _token_available()
    (home / ".ray" / "auth_token").unlink()
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(home / "elsewhere"))
    assert not _token_available()
    (home / "elsewhere").write_text("y" * 64)
    assert _token_available()
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "z" * 64)
    assert _token_available()
