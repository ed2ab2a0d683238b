"""The live dashboard a ``%%serve`` cell shows: ``render`` draws it (pure), ``widget`` keeps it
live (ipywidgets, imported only where a dashboard is shown)."""
