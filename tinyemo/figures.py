"""Saving figures: the one place that fixes the house format of every figure the package writes.

Plotting code builds a figure with `pyplot()` and hands it to `save_figure`, which lays it
out, writes a PNG at the house resolution (creating the folder) and closes the figure, so a
long stage never accumulates open figures. No module chooses a matplotlib backend: the
environment does (`MPLBACKEND=Agg` in the Makefile, the test suite and the stage runner),
and without one matplotlib itself falls back to Agg where there is no display.
Matplotlib is imported only when a figure is made, so importing `tinyemo` or running
`tinyemo --help` does not load it.
"""
from __future__ import annotations

from pathlib import Path

DPI = 120  # dots per inch of every saved figure


def pyplot():
    """`matplotlib.pyplot`, imported on first use."""
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path | str, *, dpi: int = DPI) -> Path:
    """Lay out `fig`, save it as a PNG at `path` (parent folders created), close it; return the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are saved as PNG; {path} does not end in .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, format="png")
    pyplot().close(fig)
    return path
