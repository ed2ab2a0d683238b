"""What runs wherever a cell serves: a Ray replica, a Modal container, an exported app, or
the kernel itself (``--backend local``).

Backend-neutral and light: it imports only the standard library and nbserve's errors, so a
container that carries the cell's packages and nbserve runs it. Exported apps import it by
name, so its public names (below) are kept stable.

- ``CellBundle``, ``RuntimeOptions``: what travels (the cell; how to serve it);
- ``CellProgram``, ``Outcome``: the cell's setup and handler, one outcome per input;
- ``Batcher``: batches formed when the handler is free;
- ``ServedCell``: one version of the cell serving calls and HTTP;
- ``http``: the HTTP contract (``answer``; its request and response types are in ``wire``), and
  ``Access``: who may call (the bearer token, the Host header, no cross-site requests);
- ``Recorder``: the request samples the dashboard's figures come from.
"""

from nbserve.runtime.access import Access
from nbserve.runtime.batcher import Batcher
from nbserve.runtime.bundle import DEFAULT_BATCH_WAIT_S, DEFAULT_MAX_BATCH_SIZE, CellBundle, RuntimeOptions
from nbserve.runtime.http import answer
from nbserve.runtime.program import CellProgram, Outcome
from nbserve.runtime.recorder import Recorder, RequestSample
from nbserve.runtime.served import ServedCell
from nbserve.runtime.wire import HttpRequest, HttpResponse

__all__ = [
    "DEFAULT_BATCH_WAIT_S",
    "DEFAULT_MAX_BATCH_SIZE",
    "Access",
    "Batcher",
    "CellBundle",
    "CellProgram",
    "HttpRequest",
    "HttpResponse",
    "Outcome",
    "Recorder",
    "RequestSample",
    "RuntimeOptions",
    "ServedCell",
    "answer",
]
