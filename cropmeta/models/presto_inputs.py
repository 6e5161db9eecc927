"""cropmeta's series → Presto's inputs: band mapping, units, monthly steps, location.

Presto (:mod:`cropmeta.models.presto`; Tseng et al., 2023) reads 12 monthly values of 17 bands.
cropmeta's series are prepared on a regular day-of-year grid (``Preparation.grid``, e.g. every
10 days) in the bands a region has (``Preparation.bands``: Sentinel-2 ``B02``…``B12``, often
``NDVI`` alone on real data sets), standardised per band
(:class:`~cropmeta.ingest.prepare.Normaliser`) before any model reads them. Here:

* **Bands** map by name, ignoring case and a leading zero (``b02`` = ``B2``); a band Presto does
  not read (``B1``, ``B9``, ``EVI``, MODIS ``blue``…) is ignored. A channel group is fed only when
  all its bands are present; a group with some bands missing is masked as a whole, as Presto
  masks a group when any of its bands is missing (:func:`band_map` says which).
* **Units**: cropmeta's optical bands are already reflectance (0–1; digital numbers are scaled
  when tiles are read, :func:`cropmeta.ingest.prepare.mask_invalid`), which is what Presto's
  division of Sentinel-2 digital numbers by 10,000 yields, so no division is applied again.
  The other bands take Presto's own normalisation (S1 in dB, ERA5 in K and m, SRTM in m and
  degrees; NDVI unchanged).
* **Months**: each month's value is the mean of the grid steps in it (non-leap calendar); an
  empty month between two covered ones is interpolated linearly; months after the season's
  last covered month are masked (Presto was pretrained with masked runs of time steps,
  its "chunk_timesteps" strategy) rather than invented. ``month`` is the first step's month.
  Steps beyond 12 months after the first month (a grid longer than a year's months) are
  dropped. All of it is one fixed linear map of the steps, computed with tensor operations, so
  gradients flow through it when Presto is fine-tuned.
* **Location** is a (lat, lon) in degrees; unknown → the zero vector. Presto always reads a
  location token (the authors' model cannot mask it); the zero vector, the centre of the
  sphere, is no place on it and lies at the same distance from every place, so its token (the
  location embedding's bias) carries no location.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cropmeta.models.encoders import EncoderConfig
from cropmeta.models.presto import BANDS, EMBED, GROUPS, MONTHS, cartesian, load_presto

#: Presto's normalisation ``(v + shift) / div`` for each band in cropmeta's units (see the
#: module docstring: Sentinel-2 is reflectance already, so shift 0 and div 1).
SHIFT = {"VV": 25.0, "VH": 25.0, "temperature_2m": -272.15}
DIV = {
    "VV": 25.0,
    "VH": 25.0,
    "temperature_2m": 35.0,
    "total_precipitation": 0.03,
    "elevation": 2000.0,
    "slope": 50.0,
}
#: Day of year of each month's first day (non-leap year).
MONTH_STARTS = (1, 32, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335)
_CANONICAL = {b.casefold(): b for b in BANDS}


def presto_band(name: str) -> str | None:
    """Presto's name for cropmeta band ``name`` (case ignored; ``B02`` = ``B2``), or None."""
    key = name.strip().casefold()
    if m := re.fullmatch(r"b0*(\d+a?)", key):
        key = f"b{m.group(1)}"
    return _CANONICAL.get(key)


@dataclass(frozen=True)
class BandMap:
    """How a band list feeds Presto: ``source[j]`` is the position of Presto band ``j`` in the
    list (−1: absent); ``groups`` are the channel groups fed; ``notes`` say what is left out."""

    source: tuple[int, ...]
    groups: tuple[str, ...]
    notes: tuple[str, ...]


def band_map(bands: Sequence[str]) -> BandMap:
    """Map cropmeta ``bands`` to Presto's inputs; ValueError when no channel group is complete."""
    source, notes, ignored = [-1] * len(BANDS), [], []
    for i, name in enumerate(bands):
        target = presto_band(name)
        if target is None:
            ignored.append(name)
        elif source[BANDS.index(target)] >= 0:
            notes.append(f"{name}: a second {target}, ignored")
        else:
            source[BANDS.index(target)] = i
    if ignored:
        notes.append(f"not Presto inputs, ignored: {', '.join(ignored)}")
    groups = []
    for group, members in GROUPS.items():
        have = [b for b in members if source[BANDS.index(b)] >= 0]
        if len(have) == len(members):
            groups.append(group)
        elif have:
            lacking = ", ".join(b for b in members if b not in have)
            notes.append(f"{group} masked: {lacking} missing")
    if not groups:
        raise ValueError(f"none of the bands {list(bands)} completes a Presto channel group")
    return BandMap(tuple(source), tuple(groups), tuple(notes))


def monthly(doy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The linear map from grid steps to Presto's 12 months, for steps on days ``doy`` (step,)
    in season order (a season may cross New Year).

    Returns ``weights`` (month, step) — a month's value is ``weights @ series`` — ``valid``
    (month,), False for the masked months after the season, and the first step's month (0 =
    January, a 0-d tensor).
    """
    day = doy.to(torch.float64)
    starts = torch.tensor(MONTH_STARTS, dtype=torch.float64, device=doy.device)
    month = torch.bucketize(day, starts, right=True) - 1
    years = torch.cat([torch.zeros_like(month[:1]), (day[1:] < day[:-1]).long().cumsum(0)])
    since = month + MONTHS * years - month[0]  # months since the first step's month
    member = nn.functional.one_hot(since.clamp(max=MONTHS), MONTHS + 1)[:, :MONTHS].T.double()
    count = member.sum(1)
    mean = member / count.clamp(min=1)[:, None]
    k = torch.arange(MONTHS, device=doy.device)
    seen = count > 0
    prev = torch.cummax(torch.where(seen, k, -1), 0).values
    nxt = torch.cummin(torch.where(seen, k, MONTHS).flip(0), 0).values.flip(0)
    valid = nxt < MONTHS
    t = ((k - prev) / (nxt - prev).clamp(min=1)).double()[:, None]
    weights = (1 - t) * mean[prev.clamp(min=0)] + t * mean[nxt.clamp(max=MONTHS - 1)]
    weights = torch.where(valid[:, None], weights, 0.0)
    return weights.float(), valid, month[0]


class PrestoFeatures(nn.Module):
    """Presto's embedding (sample, 128) of cropmeta series ``x`` (sample, step, band) as models
    receive them: standardised with ``mean`` and ``std`` (the bundle's normaliser), which this
    module undoes before Presto's own normalisation (both are one affine map per band).

    ``location`` is the region's (lat, lon) in degrees, None when unknown (the zero vector).
    """

    supports_vmap = True

    def __init__(
        self,
        bands: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        location: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if not len(bands) == len(mean) == len(std):
            raise ValueError(f"{len(bands)} bands but {len(mean)} means and {len(std)} stds")
        self.bands = band_map(bands)
        self.presto = load_presto()
        source = torch.tensor(self.bands.source)
        # per Presto band, its cropmeta band's statistics (an absent band, -1, picks the 0 added)
        mean_, std_ = (torch.tensor([*v, 0.0], dtype=torch.float64)[source] for v in (mean, std))
        shift = torch.tensor([SHIFT.get(b, 0.0) for b in BANDS], dtype=torch.float64)
        div = torch.tensor([DIV.get(b, 1.0) for b in BANDS], dtype=torch.float64)
        point = None if location is None else cartesian(*torch.tensor(location).double())
        # not saved: derived from the config (bands, normaliser, location)
        buffers = {
            "column": source.clamp(min=0),
            "present": source >= 0,
            "scale": (std_ / div).float(),
            "offset": ((mean_ + shift) / div).float(),
            "location": torch.zeros(3) if point is None else point.float(),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)
        self.has_location = location is not None

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        """``x`` (sample, step, band) standardised, ``doy`` (step,) → embedding (sample, 128)."""
        weights, valid, first = monthly(doy)
        values = x[..., self.column] * self.scale + self.offset
        months = torch.einsum("ms,nsb->nmb", weights.to(values), values)
        mask = ~(valid[:, None] & self.present)
        location = self.location if self.has_location else None
        return self.presto(months, mask, first, location, groups=self.bands.groups)


def embed_in_batches(
    features: PrestoFeatures, x: torch.Tensor, doy: torch.Tensor, batch: int = 4096
) -> torch.Tensor:
    """``features(x, doy)`` for ``batch`` samples at a time, without gradients: (sample, 128)."""
    with torch.no_grad():
        parts = [features(x[i : i + batch], doy) for i in range(0, len(x), batch)]
    return torch.cat(parts) if parts else x.new_zeros(0, EMBED)


def presto_embeddings(
    x_raw: np.ndarray | torch.Tensor,
    bands: list[str],
    doy: np.ndarray,
    latlon: tuple[float, float] | None,
    batch: int = 4096,
) -> torch.Tensor:
    """Presto's embeddings (sample, 128) of prepared, not standardised, series ``x_raw``
    (sample, step, band) on days ``doy``, located at ``latlon`` (degrees; None: unknown) —
    deterministic, ``batch`` samples at a time, without gradients."""
    x = torch.as_tensor(np.asarray(x_raw, dtype=np.float32))
    features = PrestoFeatures(bands, [0.0] * len(bands), [1.0] * len(bands), latlon).eval()
    return embed_in_batches(features, x, torch.as_tensor(np.asarray(doy)), batch)


def presto_encoder(n_bands: int, n_steps: int, cfg: EncoderConfig) -> PrestoFeatures:
    """The ``presto`` encoder of :mod:`cropmeta.models.encoder_registry`: Presto with its
    pretrained weights, trainable, reading standardised series of the bands ``cfg.bands`` with
    ``cfg.normaliser``'s statistics. Meta-training draws tasks from several regions, so it
    reads no location (the zero vector)."""
    if not cfg.bands or cfg.normaliser is None:
        raise ValueError(
            "the presto encoder needs the band names and the normaliser statistics (encoder "
            "'bands' and 'normaliser': meta-training fills them in)"
        )
    if len(cfg.bands) != n_bands:
        raise ValueError(f"the presto encoder was set up for {len(cfg.bands)} bands, not {n_bands}")
    return PrestoFeatures(cfg.bands, cfg.normaliser.mean, cfg.normaliser.std)
