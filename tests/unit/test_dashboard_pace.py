"""The dashboard asks for figures at its backend's pace: each poll of Modal is a paid API call."""

from __future__ import annotations

from nbserve._dashboard.widget import Dashboard
from nbserve._endpoint import Endpoint
from nbserve.backends.base import Backend
from nbserve.backends.modal.backend import ModalBackend
from nbserve.backends.ray.backend import RayBackend
from tests.support.helpers import endpoint_info


def endpoint_on(backend: Backend) -> Endpoint:
    return Endpoint(backend, endpoint_info(backend=backend.name))


def test_ray_dashboards_poll_every_second_and_modal_ones_slower() -> None:
    assert Dashboard(endpoint_on(RayBackend())).interval_s == 1.0
    modal_pace = Dashboard(endpoint_on(ModalBackend())).interval_s
    assert modal_pace == ModalBackend.refresh_s and modal_pace >= 10
    assert Dashboard(endpoint_on(ModalBackend()), interval_s=2.0).interval_s == 2.0
