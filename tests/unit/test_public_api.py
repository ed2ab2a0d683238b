"""The public surface: what ``import nbserve`` offers, pinned, and what it costs to import."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
import types

import pytest

import nbserve
from tests.support.helpers import free_port

PUBLIC = {
    "CellError",
    "ClusterError",
    "CommandError",
    "ConfigError",
    "CredentialsError",
    "DeployError",
    "DeployEvent",
    "Endpoint",
    "EndpointInUseError",
    "EndpointInfo",
    "EndpointNotFoundError",
    "EndpointOverloadedError",
    "EndpointStats",
    "EndpointTimeoutError",
    "EndpointUnavailableError",
    "EndpointStatus",
    "HandlerError",
    "InsufficientResourcesError",
    "MapError",
    "MonitorError",
    "NbserveError",
    "PayloadError",
    "ReplicaCounts",
    "RequestError",
    "SeriesPoint",
    "ServeSpec",
    "SetupFailedError",
    "SpecError",
    "__version__",
    "build_spec",
    "deploy",
    "endpoint",
    "export",
    "list_endpoints",
    "load_ipython_extension",
}
# Third-party packages that only some parts of nbserve need; `import nbserve` loads none of them.
HEAVY = ("ray", "IPython", "ipywidgets", "aiohttp", "psutil", "modal", "starlette", "tqdm", "yaml", "torch")


def every_module() -> list[str]:
    names = ["nbserve"]
    for info in pkgutil.walk_packages(nbserve.__path__, "nbserve."):
        if info.name != "nbserve.__main__":
            names.append(info.name)
    return names


def test_the_public_names_are_exactly_these() -> None:
    assert set(nbserve.__all__) == PUBLIC
    assert set(dir(nbserve)) >= PUBLIC
    for name in PUBLIC:
        assert getattr(nbserve, name) is not None


def test_importing_every_module_shadows_no_public_name() -> None:
    """``nbserve.export`` and ``nbserve.endpoint`` stay functions after their modules load.

    (A subpackage ``nbserve.export`` once rebound the attribute on first use.)"""
    before = {name: getattr(nbserve, name) for name in PUBLIC}
    for name in every_module():
        importlib.import_module(name)
    for name, value in before.items():
        assert getattr(nbserve, name) is value, f"nbserve.{name} was rebound"
        assert not isinstance(value, types.ModuleType), f"nbserve.{name} is a module"


def test_every_exception_nbserve_defines_is_an_nbserve_error() -> None:
    defined = [
        cls
        for name in every_module()
        for cls in vars(importlib.import_module(name)).values()
        if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__.startswith("nbserve")
    ]
    assert len(defined) >= 17
    assert [cls for cls in defined if not issubclass(cls, nbserve.NbserveError)] == []


@pytest.mark.parametrize("module", ["nbserve", "nbserve.runtime"])
def test_importing_nbserve_or_its_runtime_loads_only_the_standard_library(module: str) -> None:
    """A Modal container carries nbserve's source and only the cell's packages."""
    code = f"import sys, {module}; print(sorted(set(m.split('.')[0] for m in sys.modules) & set({HEAVY!r})))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_command_line_does_not_import_widgets() -> None:
    code = (
        "import sys\nfrom nbserve._cli import main\nmain(['cluster', 'status'])\n"
        "print('LOADED', sorted({'ipywidgets', 'IPython'} & set(m.split('.')[0] for m in sys.modules)))"
    )
    # A port where nothing listens: the status says so and starts nothing.
    env = {**os.environ, "NBSERVE_RAY_PORT": str(free_port())}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "LOADED []" in run.stdout, run.stdout + run.stderr
    assert "not running" in run.stdout
