"""Temporal encoders by name: TempCNN, the sequence encoders (LSTM, Transformer, L-TAE) and
the pretrained Presto encoder."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cropmeta.models.encoders import EncoderConfig
from cropmeta.models.presto_inputs import presto_encoder
from cropmeta.models.sequence import SEQUENCE_ENCODERS
from cropmeta.models.tempcnn import TempCNN

Builder = Callable[[int, int, EncoderConfig], nn.Module]


#: Every encoder by name (:data:`~cropmeta.models.encoders.EncoderName`).
ENCODERS: dict[str, Builder] = {
    "tempcnn": TempCNN,
    **SEQUENCE_ENCODERS,
    "presto": presto_encoder,
}


def build_encoder(cfg: EncoderConfig, n_bands: int, n_steps: int) -> nn.Module:
    """The encoder ``cfg.name`` for series of ``n_steps`` steps and ``n_bands`` bands."""
    if cfg.name not in ENCODERS:
        raise ValueError(f"encoder {cfg.name!r} is not available (have: {', '.join(ENCODERS)})")
    return ENCODERS[cfg.name](n_bands, n_steps, cfg)
