"""Figures for print: a column-wide size, 8 pt type, 300 dpi PNG beside a vector SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Figures for print: a column-wide size, 8 pt type, 300 dpi PNG beside a vector SVG. SVG ids and
# metadata are fixed so that the same run writes the same bytes.
PRINT_DPI = 300


FIGURE_FORMATS = ("svg", "png")


def figure_style() -> None:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(
        {
            "font.size": 8,
            "axes.titlesize": 8,
            "axes.labelsize": 8,
            "legend.fontsize": 7,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "svg.hashsalt": "blindmatch-sim",
            "svg.fonttype": "none",
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


def save_figure(fig: Any, out: Path, stem: str) -> list[str]:
    """Write ``stem.svg`` and ``stem.png`` (300 dpi); returns the file names."""
    import matplotlib.pyplot as plt

    names = []
    for fmt in FIGURE_FORMATS:
        meta = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(out / f"{stem}.{fmt}", dpi=PRINT_DPI, metadata=meta, bbox_inches="tight")
        names.append(f"{stem}.{fmt}")
    plt.close(fig)
    return names
