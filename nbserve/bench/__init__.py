"""``%serve bench`` / ``nbserve bench``: load-test an endpoint and show what the clients saw.

``loadgen`` sends the requests, ``payload`` turns ``--payload`` into inputs, ``report``
renders the figures, ``run`` ties them to a live view (a widget in notebooks, lines on a
terminal).
"""

from nbserve.bench.loadgen import BenchProgress, BenchResult, LoadPlan
from nbserve.bench.payload import PayloadError, load_payloads
from nbserve.bench.run import run_bench

__all__ = ["BenchProgress", "BenchResult", "LoadPlan", "PayloadError", "load_payloads", "run_bench"]
