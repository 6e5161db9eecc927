"""Sequence encoders beyond TempCNN, registered by name for :func:`build_encoder`.

Every encoder has the TempCNN interface: built from ``(n_bands, n_steps, cfg)``, called as
``forward(x (sample, step, band), doy (step,)) -> (sample, cfg.embed)``, ending in a LayerNorm,
with no batch statistics and no dropout (so it is a pure per-sample function under
``torch.func.vmap`` and ``torch.func.grad``). The class attribute ``supports_vmap`` tells the
learners whether a meta-batch of tasks can be vmapped or must be looped.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cropmeta.models.encoders import EncoderConfig
from cropmeta.models.lstm import LSTMEncoder
from cropmeta.models.ltae import LTAE
from cropmeta.models.transformer import TransformerEncoder

__all__ = ["LSTMEncoder", "LTAE", "SEQUENCE_ENCODERS", "TransformerEncoder"]

SEQUENCE_ENCODERS: dict[str, Callable[[int, int, EncoderConfig], nn.Module]] = {
    "lstm": LSTMEncoder,
    "transformer": TransformerEncoder,
    "ltae": LTAE,
}
