"""The embedded cluster's settings from the environment."""

from __future__ import annotations

import pytest

from nbserve._config import embedded_settings
from nbserve._errors import ConfigError


def test_cluster_sizes_come_from_the_environment() -> None:
    settings = embedded_settings({"NBSERVE_NUM_CPUS": "2", "NBSERVE_OBJECT_STORE_MB": "100", "NBSERVE_NUM_GPUS": "1"})
    assert (settings.num_cpus, settings.object_store_mb, settings.num_gpus) == (2, 100, 1)
    unset = embedded_settings({})
    assert (unset.num_cpus, unset.object_store_mb, unset.num_gpus) == (None, None, None)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NBSERVE_NUM_CPUS", "1.5"),
        ("NBSERVE_NUM_CPUS", "0"),
        ("NBSERVE_NUM_GPUS", "-1"),
        ("NBSERVE_OBJECT_STORE_MB", "64"),
        ("NBSERVE_OBJECT_STORE_MB", "1G"),
    ],
)
def test_a_bad_size_names_the_variable_and_the_rule(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}='{value}' is not a whole number.*unset it"):
        embedded_settings({key: value})


def test_prestart_is_off_with_the_opt_out_and_for_a_named_cluster() -> None:
    import nbserve

    assert nbserve._prestart({"NBSERVE_PRESTART": "0"}) is None
    assert nbserve._prestart({"RAY_ADDRESS": "ray://10.0.0.5:10001"}) is None


def test_a_failed_prestart_is_reported_by_the_first_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbserve.backends.ray.backend import RayBackend

    monkeypatch.setenv("NBSERVE_NUM_CPUS", "many")  # the start fails before Ray is asked
    backend = RayBackend()
    backend.prestart()  # as %load_ext's thread runs it: quiet
    said: list[str] = []
    with pytest.raises(ConfigError, match="NBSERVE_NUM_CPUS"):
        backend.connect(said.append)
    assert said and said[0].startswith("starting the cluster at %load_ext failed (ConfigError: NBSERVE_NUM_CPUS=")
    assert said[0].endswith("trying again")
