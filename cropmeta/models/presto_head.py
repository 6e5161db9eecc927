"""A classifier on frozen Presto embeddings, saved and mapped like every other adapted model.

The operational recipe behind ESA WorldCereal: Presto's pretrained encoder, frozen, turns each
series into a 128-d embedding, and an ordinary classifier fitted on the reference labels reads
it (Tseng et al., 2023, "Lightweight, Pre-trained Transformers for Remote Sensing Timeseries",
arXiv:2304.14065, evaluate Presto this way with a random forest and logistic regression).
:class:`PrestoFeatureClassifier` takes the series every model takes — standardised, with their
days of year — and returns log-probabilities, so it maps, ensembles and is scored unchanged.

Its config (:class:`PrestoHeadConfig`, head kind ``"presto"``) records what feeds Presto (band
names, the standardisation to undo, the region's location) and the inner head's own config; the
bundle's weights file holds the inner head only. Presto's weights are not copied into every
bundle: they are the packaged file (:data:`cropmeta.models.presto.WEIGHTS`), identified by the
SHA-256 the config records and checked when the model is built.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import BaseModel, Field, model_validator
from torch import nn

from cropmeta.models.forest import ForestHead, ForestHeadConfig
from cropmeta.models.presto import EMBED, WEIGHTS_SHA256
from cropmeta.models.presto_inputs import PrestoFeatures, embed_in_batches
from cropmeta.models.sizes import Width


class PrestoLinearConfig(BaseModel):
    """A linear layer (logistic regression) over the embedding."""

    kind: Literal["linear"] = "linear"
    classes: Width = Field(description="rows of the layer: one per class")


InnerHead = Annotated[ForestHeadConfig | PrestoLinearConfig, Field(discriminator="kind")]


class PrestoHeadConfig(BaseModel):
    """A frozen Presto and the head reading its embedding (the bundle's ``encoder`` unused)."""

    kind: Literal["presto"] = "presto"
    inner: InnerHead
    bands: list[str] = Field(max_length=1000, description="the series' bands, in order")
    mean: list[float] = Field(description="per band: the standardisation of the inputs")
    std: list[float]
    latlon: tuple[float, float] | None = Field(
        None, description="the region's location in degrees; None: unknown (no location)"
    )
    presto_sha256: str = Field(
        WEIGHTS_SHA256, description="SHA-256 of the Presto weights the head was fitted on"
    )

    @model_validator(mode="after")
    def _consistent(self) -> PrestoHeadConfig:
        if not len(self.bands) == len(self.mean) == len(self.std):
            raise ValueError("bands, mean and std must be equally long")
        if self.presto_sha256 != WEIGHTS_SHA256:
            raise ValueError(
                f"fitted on other Presto weights (SHA-256 {self.presto_sha256[:12]}…) than this "
                f"cropmeta ships ({WEIGHTS_SHA256[:12]}…)"
            )
        return self


def not_saved(parent: nn.Module, name: str) -> None:
    """Leave ``parent``'s submodule ``name`` out of ``parent.state_dict()`` and keep its tensors
    on ``parent.load_state_dict`` (fixed tensors a config identifies, like packaged weights)."""

    def drop(module: nn.Module, state: dict, prefix: str, meta: dict) -> None:
        for key in [k for k in state if k.startswith(f"{prefix}{name}.")]:
            del state[key]

    def keep(module: nn.Module, state: dict, prefix: str, *args) -> None:
        for key, value in getattr(module, name).state_dict().items():
            state.setdefault(f"{prefix}{name}.{key}", value)

    parent.register_state_dict_post_hook(drop)
    parent.register_load_state_dict_pre_hook(keep)


class PrestoFeatureClassifier(nn.Module):
    """``model(x, doy)``: log-probabilities (sample, class) of a head on frozen Presto
    embeddings of standardised series ``x`` (sample, step, band) on days ``doy``."""

    def __init__(self, cfg: PrestoHeadConfig, features: PrestoFeatures | None = None) -> None:
        """``features``: the embedding module ``cfg`` describes, when one is at hand."""
        super().__init__()
        self.cfg = cfg
        if features is None:
            features = PrestoFeatures(cfg.bands, cfg.mean, cfg.std, cfg.latlon)
        self.features = features.requires_grad_(False).eval()
        not_saved(self, "features")
        inner = cfg.inner
        self.head = ForestHead(inner) if inner.kind == "forest" else nn.Linear(EMBED, inner.classes)

    def embed(self, x: torch.Tensor, doy: torch.Tensor, batch: int = 4096) -> torch.Tensor:
        """Presto's embeddings (sample, 128), ``batch`` samples at a time, without gradients."""
        return embed_in_batches(self.features, x, doy, batch)

    def scores(self, emb: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (sample, class), float32, of embeddings ``emb``."""
        if self.cfg.inner.kind == "forest":
            return self.head(emb).log().to(torch.float32)
        return torch.log_softmax(self.head(emb), dim=-1)

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        return self.scores(self.embed(x, doy))
