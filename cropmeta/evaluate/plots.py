"""PNG figures people would rather look at than numbers: crop-map previews, training curves,
accuracy against labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator
from rasterio.errors import RasterioIOError

from cropmeta.errors import InputError, atomic_output
from cropmeta.ownership import PNG_KEY, claim


def preview_map(crop_map: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Render a crop-map GeoTIFF with its own colour table and a legend of the class names
    (``out`` must not be the map, nor an existing file that is not a cropmeta preview, unless
    ``overwrite``)."""
    claim(out, "preview", inputs=[crop_map], overwrite=overwrite)
    try:
        src = rasterio.open(crop_map)
    except RasterioIOError:
        raise InputError(crop_map, "not a readable GeoTIFF") from None
    with src:
        data = src.read(1)
        try:
            cmap = src.colormap(1)
        except ValueError:
            raise InputError(crop_map, "no colour table: not a map written by cropmeta") from None
        names = {int(k[6:]): v for k, v in src.tags().items() if k.startswith("CLASS_")}
        crs = src.crs
    lut = np.zeros((256, 4))
    for code, rgba in cmap.items():
        lut[code] = np.array(rgba) / 255
    lut[0] = (1, 1, 1, 0)
    fig = Figure(figsize=(7, 6), dpi=110)
    ax = fig.subplots()
    ax.imshow(data, cmap=ListedColormap(lut), vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(f"{Path(crop_map).name}  ({crs.to_string() if crs else 'no CRS'})", fontsize=9)
    ax.set_axis_off()
    handles = [Patch(color=lut[c], label=f"{c} {n}") for c, n in sorted(names.items())]
    ax.legend(
        handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False
    )
    return _save(fig, out, "preview")


def plot_training(history: dict, out: str | Path) -> Path:
    """Meta-training query loss and accuracy per iteration, with meta-validation accuracy."""
    fig = Figure(figsize=(10, 3.5), dpi=110)
    ax_loss, ax_acc = fig.subplots(1, 2)
    it = np.asarray(history["iteration"])
    ax_loss.plot(it, history["loss"], lw=0.8)
    ax_loss.set(xlabel="iteration", ylabel="query loss", title="meta-training loss")
    ax_acc.plot(it, history["acc"], lw=0.8, label="meta-train tasks")
    if history.get("val_acc"):
        ax_acc.plot(history["val_iteration"], history["val_acc"], "o-", label="meta-validation")
    ax_acc.set(xlabel="iteration", ylabel="query accuracy", ylim=(0, 1), title="accuracy")
    ax_acc.legend(fontsize=8)
    return _save(fig, out)


def _save(fig: Figure, out: str | Path, kind: str | None = None) -> Path:
    """Save ``fig`` as a PNG at ``out``, marked as a cropmeta output of ``kind`` when given."""
    fig.tight_layout()
    with atomic_output(out) as tmp:
        marker = {PNG_KEY: kind} if kind else {}
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata=marker)
    return Path(out)


def plot_shots(summary: dict, learners: list[str], metric: str, target: str, out: Path) -> Path:
    """Save :func:`shots_figure` as a PNG at ``out``."""
    return _save(shots_figure(summary, learners, metric, target), out)


def shots_figure(summary: dict, learners: list[str], metric: str, target: str) -> Figure:
    """``metric`` of every method of ``summary`` (method → K → metric → mean and 95 % CI): a
    curve against K when several K were evaluated, bars when one was (a one-point curve shows
    neither the ranking nor the intervals)."""
    fig = Figure(figsize=(7.5, 4.5), dpi=110)
    ax = fig.subplots()
    ks = sorted({int(k) for by_k in summary.values() for k in by_k})
    name = metric.replace("_", " ")
    if len(ks) == 1:
        _shot_bars(ax, summary, learners, metric, ks[0])
        what = f"{name} at K = {ks[0]}"
    else:
        _shot_curves(ax, summary, learners, metric, ks)
        what = f"{name} vs labels"
    ax.set(ylabel=name, ylim=(0, 1))
    ax.set_title(f"{target}: {what} (mean, 95 % CI)", fontsize=10)
    return fig


def _column(entries: list[dict], metric: str, key: str) -> np.ndarray:
    """``key`` (mean, low, high) of ``metric`` in each summary entry."""
    return np.array([e[metric][key] for e in entries], dtype=float)


def _shot_curves(ax: Axes, summary: dict, learners: list[str], metric: str, ks: list[int]):
    """One line per method against K; meta-learners solid, baselines dashed; 95 % bands for the
    meta-learners and the best baseline (all bands at once would hide each other)."""
    top_k = str(ks[-1])
    baselines = [m for m in summary if m not in learners and top_k in summary[m]]
    best = max(baselines, key=lambda m: summary[m][top_k][metric]["mean"], default=None)
    for method, by_k in sorted(summary.items()):
        shots = sorted(int(k) for k in by_k)
        entries = [by_k[str(k)] for k in shots]
        mean, low, high = (_column(entries, metric, key) for key in ("mean", "low", "high"))
        style = "-" if method in learners else "--"
        (line,) = ax.plot(shots, mean, style, marker="o", ms=3, lw=1.2, label=method)
        if np.isfinite(low).all() and (method in learners or method == best):
            ax.fill_between(shots, low, high, color=line.get_color(), alpha=0.12, lw=0)
    ax.set_xscale("log")
    ax.set_xticks(ks)
    ax.get_xaxis().set_major_formatter("{x:.0f}")
    ax.get_xaxis().set_minor_locator(NullLocator())
    ax.set_xlabel("labelled samples per class (K)")
    ax.legend(fontsize=7, ncol=2, frameon=False)


def _shot_bars(ax: Axes, summary: dict, learners: list[str], metric: str, k: int):
    """One bar per method at K (best first) with its 95 % CI as error bars (none for one
    draw); meta-learners coloured, baselines grey."""
    methods = sorted(summary, key=lambda m: -summary[m][str(k)][metric]["mean"])
    entries = [summary[m][str(k)] for m in methods]
    mean, low, high = (_column(entries, metric, key) for key in ("mean", "low", "high"))
    colours = ["C0" if m in learners else "0.65" for m in methods]
    x = np.arange(len(methods))
    ax.bar(x, mean, yerr=[mean - low, high - mean], color=colours, capsize=3, ecolor="0.2")
    ax.set_xticks(x, methods, rotation=35, ha="right", fontsize=7)
    kinds = [Patch(color="C0", label="meta-learner"), Patch(color="0.65", label="baseline")]
    ax.legend(handles=kinds, fontsize=7, frameon=False)


def plot_confusions(matrices: dict[str, np.ndarray], classes: list[str], title: str, out: Path):
    """Row-normalised confusion matrices side by side (rows: true class, columns: predicted)."""
    n = len(matrices)
    fig = Figure(figsize=(3.6 * n + 0.6, 3.8), dpi=110)
    axes = np.atleast_1d(fig.subplots(1, n))
    for ax, (name, m) in zip(axes, matrices.items(), strict=True):
        rows = m.sum(axis=1, keepdims=True)
        share = np.divide(m, rows, out=np.zeros_like(m, dtype=float), where=rows > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(classes)), classes if ax is axes[0] else [], fontsize=7)
        for (i, j), v in np.ndenumerate(share):
            if v >= 0.05:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if v > 0.6 else "black")  # fmt: skip
    fig.suptitle(title, fontsize=10)
    return _save(fig, out)
