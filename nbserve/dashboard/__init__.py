"""The live dashboard a ``%%serve`` cell shows: ``render`` draws it, ``widget`` keeps it live."""

from nbserve.dashboard.widget import Dashboard, live_dashboard, stop_all

__all__ = ["Dashboard", "live_dashboard", "stop_all"]
