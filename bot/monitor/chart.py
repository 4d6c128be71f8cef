"""The trend chart: deferred messages by reason class over an incident's window, as a PNG.

matplotlib's object API with the Agg canvas (no pyplot, no display, no global state), so
it is safe to call from a worker thread. Imported lazily: it costs half a second at start.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from bot.postfix.reasons import ReasonClass
from bot.stores.samples import SampleView
from bot.text import utc

WIDTH, HEIGHT, DPI = 8.0, 3.6, 100


def classes_of(samples: Sequence[SampleView]) -> list[str]:
    """Reason classes present in the window, largest peak first."""
    peaks: dict[str, int] = {}
    for sample in samples:
        for name, count in sample.by_class.items():
            peaks[name] = max(peaks.get(name, 0), count)
    return sorted(peaks, key=lambda name: (-peaks[name], name))


def label(name: str) -> str:
    return ReasonClass(name).label if name in ReasonClass.__members__ else name


def render_png(samples: Sequence[SampleView], title: str, opened_at: float) -> bytes:
    """A stacked area chart of deferred messages per reason class; the opening marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    times = [(s.at - opened_at) / 60 for s in samples]  # minutes from the opening
    names = classes_of(samples)
    if names:
        series = [[s.by_class.get(name, 0) for s in samples] for name in names]
        axes.stackplot(times, series, labels=[label(n) for n in names], alpha=0.85)
        axes.legend(loc="upper left", fontsize=7, framealpha=0.8)
    axes.plot(times, [s.deferred for s in samples], color="black", linewidth=1.2)
    axes.axvline(0.0, color="red", linestyle="--", linewidth=1)
    axes.set_title(title, fontsize=10)
    axes.set_ylabel("deferred messages")
    axes.set_xlabel(f"minutes from the opening ({utc(opened_at)})")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
