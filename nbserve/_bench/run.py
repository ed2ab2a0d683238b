"""Run a load test with a live view: a widget in a Jupyter kernel, progress lines elsewhere."""

from __future__ import annotations

import sys
from typing import Any

from nbserve._aio import run_sync
from nbserve._bench import report
from nbserve._bench.loadgen import BenchProgress, BenchResult, LoadPlan, run_load
from nbserve._progress import in_kernel

__all__ = ["run_bench"]


class _WidgetView:
    """A progress bar and the running figures, then the summary table and the histogram."""

    def __init__(self, plan: LoadPlan) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self.bar = widgets.FloatProgress(min=0.0, max=1.0, description="bench", bar_style="info")
        self.figures = widgets.HTML(f"<code>{plan.concurrency} clients starting…</code>")
        self.box = widgets.VBox([widgets.HBox([self.bar, self.figures])])
        display(self.box)

    def progress(self, progress: BenchProgress) -> None:
        self.bar.value = progress.fraction_done
        self.figures.value = report.progress_html(progress)

    def finish(self, result: BenchResult) -> None:
        import ipywidgets as widgets

        self.bar.value = 1.0
        self.bar.bar_style = "danger" if result.failures else "success"
        self.box.children = [
            *self.box.children,
            widgets.HTML(report.summary_html(result) + report.histogram_svg(result.latencies_ms)),
        ]


class _TextView:
    def __init__(self, plan: LoadPlan, stream: Any) -> None:
        self.stream = stream
        self.last_tenth = -1

    def progress(self, progress: BenchProgress) -> None:
        tenth = int(progress.fraction_done * 10)
        if tenth != self.last_tenth:  # ten lines at most, not one per tick
            self.last_tenth = tenth
            print(report.progress_text(progress), file=self.stream, flush=True)

    def finish(self, result: BenchResult) -> None:
        pass


def run_bench(plan: LoadPlan, *, widget: bool | None = None, stream: Any = None) -> BenchResult:
    """Run ``plan``; show progress live (a widget when ``widget``, default: inside a kernel)."""
    use_widget = in_kernel() if widget is None else widget
    view: _WidgetView | _TextView = _WidgetView(plan) if use_widget else _TextView(plan, stream or sys.stderr)
    result = run_sync(run_load(plan, on_progress=view.progress))
    view.finish(result)
    return result
