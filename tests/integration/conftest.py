"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.kernels import Kernel


@pytest.fixture
def kernel(ray_cluster: Any) -> Iterator[Kernel]:
    """A real kernel with nbserve loaded, on the test cluster; its endpoints go with it."""
    kernel = Kernel()
    kernel.ok("%load_ext nbserve")
    yield kernel
    kernel.run("%serve down --all")
    kernel.shutdown()
