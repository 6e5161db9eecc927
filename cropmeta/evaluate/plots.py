"""PNG figures people would rather look at than numbers: crop-map previews, training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from rasterio.errors import RasterioIOError

from cropmeta.errors import InputError, atomic_output


def preview_map(crop_map: str | Path, out: str | Path) -> Path:
    """Render a crop-map GeoTIFF with its own colour table and a legend of the class names."""
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
    return _save(fig, out)


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


def _save(fig: Figure, out: str | Path) -> Path:
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return Path(out)
