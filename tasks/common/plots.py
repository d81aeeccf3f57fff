"""Plots for the evaluation report, rendered off-screen (Agg) to base64 PNG so the page needs no other files."""
import base64
import functools
import io
import logging
from collections.abc import Sequence

import numpy as np
import matplotlib

matplotlib.use("Agg")  # no display on servers and workers
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

# CJK fonts often ship one "medium" weight only; matplotlib warns about it on every plot.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

LABEL_COLORS = {"base": "#9aa5b1", "candidate": "#3867d6", "champion": "#f39c12", "classical": "#8e44ad", "majority": "#c8ccd2",
                "stratified": "#e3e6ea", "reference": "#1e8449"}
_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
              "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback", "AR PL UMing CN", "SimHei", "PingFang SC")
CJK_FONT_HINT = "no CJK font installed: Chinese labels in the plots show as boxes (install fonts-noto-cjk)"


@functools.lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The first installed font that draws Chinese (a known name, else any whose name says CJK), or None."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    known = [name for name in _CJK_FONTS if name in installed]
    return (known or sorted(name for name in installed if "CJK" in name) or [None])[0]


def font_note() -> str | None:
    """What a report says when its plots cannot draw Chinese (None when a CJK font is installed)."""
    return None if cjk_font() else CJK_FONT_HINT


def _font_family() -> list[str]:
    """DejaVu Sans, then a CJK font where one is installed (slice names and answers may be Chinese)."""
    return ["DejaVu Sans", *([cjk_font()] if cjk_font() else [])]


def plot_style():
    """The plots' font settings as a context (`with plot_style(): ...`), for plots drawn outside this module."""
    return plt.rc_context({"font.family": _font_family(), "axes.unicode_minus": False})


def integer_ticks(axis) -> None:
    """Whole-number ticks on a count axis (no 0.5 records)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def png_data_uri(fig, dpi: int = 110) -> str:
    """The figure as a PNG data: URI (and closed, so long-running workers do not leak figures); the data report uses it too."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _style(ax, title: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)


def grouped_bars(groups: Sequence[str], series: dict[str, Sequence[float | None]], title: str, ylabel: str = "score (0-1)",
                 threshold: tuple[str, float] | None = None) -> str:
    """Bars per group (metric or slice), one colour per model label; an optional threshold tick on one group."""
    with plot_style():
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, len(series)) / 2 + 2), 3.6))
        width = 0.8 / max(1, len(series))
        for i, (label, values) in enumerate(series.items()):
            xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
            heights = [v if v is not None else 0.0 for v in values]
            bars = ax.bar(xs, heights, width, label=label, color=LABEL_COLORS.get(label, f"C{i}"))
            for bar, value in zip(bars, values):
                if value is not None:
                    ax.annotate(f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                                fontsize=7, xytext=(0, 1), textcoords="offset points")
        if threshold and threshold[0] in groups:
            g = list(groups).index(threshold[0])
            ax.hlines(threshold[1], g - 0.45, g + 0.45, colors="#c0392b", linestyles="--", label=f"threshold {threshold[1]:g}")
        ax.set_xticks(range(len(groups)), list(groups), rotation=20 if len(groups) > 6 else 0, ha="right" if len(groups) > 6 else "center")
        top = max([v for values in series.values() for v in values if v is not None] + [threshold[1] if threshold else 0, 0.01])
        ax.set_ylim(0, top * 1.15 if top > 1 else min(1.08, top * 1.15 + 0.05))
        _style(ax, title, ylabel)
        ax.legend(fontsize=8, frameon=False, ncol=4, loc="upper left", bbox_to_anchor=(0, -0.12 if len(groups) <= 6 else -0.25))
        return png_data_uri(fig)


def loss_curves(log_history: list[dict]) -> str | None:
    """Training loss (as logged every N steps) and validation loss against the step; None when there is no loss."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    val = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    if not train and not val:
        return None
    with plot_style():
        fig, ax = plt.subplots(figsize=(8.0, 3.4))
        if train:
            ax.plot(*zip(*train), color=LABEL_COLORS["candidate"], lw=1.6, label="train loss (mean of the last logging window)")
        if val:
            ax.plot(*zip(*val), color=LABEL_COLORS["champion"], lw=1.6, marker="o", ms=4, label="validation loss")
        ax.set_xlabel("step")
        integer_ticks(ax.xaxis)
        _style(ax, "Training loss", "loss")
        ax.legend(fontsize=8, frameon=False)
        return png_data_uri(fig)


def horizontal_counts(counts: dict[str, int], title: str) -> str:
    """A horizontal bar per category with its count (badcase causes)."""
    names = list(counts)[::-1]
    with plot_style():
        fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(names) + 1.0))
        bars = ax.barh(names, [counts[n] for n in names], color="#c0392b", alpha=0.8)
        ax.bar_label(bars, fontsize=8, padding=2)
        ax.set_title(title, fontsize=11, loc="left")
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_xlabel("cases")
        integer_ticks(ax.xaxis)
        return png_data_uri(fig)


def confusion_matrix(labels: Sequence[str], matrix: Sequence[Sequence[int]], classes: int, title: str) -> str:
    """A confusion matrix heat map: reference values down, answered values across (columns past `classes` are wrong values)."""
    counts = np.asarray(matrix, dtype=float)
    rows = list(labels[:classes])
    with plot_style():
        fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(labels), 1.0 + 0.55 * len(rows)))
        shown = counts[:classes]
        share = shown / np.maximum(shown.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for i in range(shown.shape[0]):
            for j in range(shown.shape[1]):
                if shown[i, j]:
                    ax.text(j, i, f"{int(shown[i, j])}", ha="center", va="center", fontsize=9,
                            color="white" if share[i, j] > 0.6 else "#1d2430", fontweight="bold" if i == j else "normal")
        ax.set_xticks(range(len(labels)), list(labels), rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xlabel("answered")
        ax.set_ylabel("reference")
        ax.set_title(title, fontsize=10, loc="left")
        return png_data_uri(fig)
