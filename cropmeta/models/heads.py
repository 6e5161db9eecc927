"""Pluggable classifier heads: the linear default and heads that read a stored support set.

A metric or model-based learner adapts by *remembering* the support set rather than by gradient
steps, so its adapted head is a non-linear function of stored tensors. Every such head keeps that
memory as buffers whose names and shapes its config records (``memory``); the config travels in
the bundle's JSON, so :func:`build_head` recreates the buffers at their recorded shapes and
safetensors fills them — nothing is pickled, and an adapted model maps like any other. Before
adaptation (a meta-trained bundle) the memory is empty and the head only holds its meta-learned
weights; during meta-training it reads each task's support set, given as ``forward``'s
``support`` argument.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from cropmeta.models.adjusted import AdjustedHeadConfig
from cropmeta.models.encoders import LayerNorm
from cropmeta.models.ensemble import EnsembleHeadConfig
from cropmeta.models.forest import ForestHeadConfig
from cropmeta.models.presto_head import PrestoHeadConfig
from cropmeta.models.sizes import MAX_WIDTH, Count, Shapes, Width

Memory = dict[str, torch.Tensor]


class LinearHeadConfig(BaseModel):
    kind: Literal["linear"] = "linear"


class SupportHeadConfig(BaseModel):
    memory: Shapes = Field(
        default_factory=dict,
        description="name → shape of each stored support tensor (empty before adaptation)",
    )


class MatchingHeadConfig(SupportHeadConfig):
    kind: Literal["matching"] = "matching"
    scale: float = Field(10.0, gt=0, description="(initial) inverse temperature of the softmax")
    learn_scale: bool = True


class RelationHeadConfig(SupportHeadConfig):
    kind: Literal["relation"] = "relation"
    hidden: Width = Field(64, description="hidden units of the relation module")


class SnailHeadConfig(SupportHeadConfig):
    kind: Literal["snail"] = "snail"
    width: int = Field(
        64, ge=4, le=MAX_WIDTH, description="token width inside the attention layers"
    )
    heads: Count = 4
    layers: Count = 2


HeadConfig = Annotated[
    LinearHeadConfig
    | MatchingHeadConfig
    | RelationHeadConfig
    | SnailHeadConfig
    | ForestHeadConfig
    | EnsembleHeadConfig
    | AdjustedHeadConfig
    | PrestoHeadConfig,
    Field(discriminator="kind"),
]


def class_means(emb: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """Prototypes (class, embed): the mean embedding of each class (Snell et al., 2017)."""
    return (onehot.T @ emb) / onehot.sum(0).clamp(min=1).unsqueeze(1)


def prototype_head(
    emb: torch.Tensor, y: torch.Tensor, n_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear head (weight, bias) equal to nearest prototype by squared Euclidean distance:
    logit_c = 2 p_c·e − |p_c|² (the |e|² term is the same for every class; Snell et al., 2017)."""
    protos = class_means(emb, F.one_hot(y, n_classes).to(emb.dtype))
    return 2 * protos, -(protos**2).sum(1)


class LinearHead(nn.Linear):
    """The default head: logits = W e + b (parameters ``weight`` and ``bias`` as ever)."""

    def __init__(self, cfg: LinearHeadConfig, embed: int, n_classes: int) -> None:
        super().__init__(embed, n_classes)
        self.cfg = cfg


class SupportHead(nn.Module):
    """A head that predicts by reading memory derived from a support set.

    Subclasses say what to remember (:meth:`memory`) and how to read it (:meth:`read`).
    """

    cfg: SupportHeadConfig

    def __init__(self, cfg: SupportHeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        for name, shape in cfg.memory.items():
            self.register_buffer(name, torch.zeros(shape))

    def memory(self, emb: torch.Tensor, onehot: torch.Tensor) -> Memory:
        """What to store of a support set: embeddings (n, embed), one-hot labels (n, class)."""
        raise NotImplementedError

    def read(self, emb: torch.Tensor, **memory: torch.Tensor) -> torch.Tensor:
        """Scores (sample, class) of query embeddings given the memory."""
        raise NotImplementedError

    def forward(
        self, emb: torch.Tensor, support: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Read ``support`` (embeddings, one-hot labels) when given, else the stored memory."""
        if support is not None:
            return self.read(emb, **self.memory(*support))
        if not self.cfg.memory:
            raise ValueError("this head holds no support set: adapt the model first")
        return self.read(emb, **{name: getattr(self, name) for name in self.cfg.memory})


class MatchingHead(SupportHead):
    """Matching Networks: attention over the support set (Vinyals et al., 2016, NeurIPS).

    a(q, s_i) = softmax_i(τ · cos(q, s_i)); P(c | q) = Σ_i a(q, s_i) y_ic. The output is
    log P, so argmax and cross-entropy apply to it as to logits. The inverse temperature τ
    (learnt unless ``learn_scale`` is off) sharpens the cosine, which lies in [−1, 1].
    """

    def __init__(self, cfg: MatchingHeadConfig, embed: int, n_classes: int) -> None:
        super().__init__(cfg)
        log_scale = torch.tensor(math.log(cfg.scale))
        if cfg.learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def memory(self, emb, onehot):
        return {"support": emb, "labels": onehot}

    def read(self, emb, support, labels):
        cos = F.normalize(emb, dim=-1) @ F.normalize(support, dim=-1).T
        attention = torch.softmax(self.log_scale.exp() * cos, dim=-1)
        return (attention @ labels).clamp(min=1e-12).log()


class RelationHead(SupportHead):
    """Relation Networks: a learnt relation score g([p_c, q]) per class (Sung et al., 2018, CVPR).

    p_c is the mean support embedding of class c; g is a two-layer perceptron here, the
    embeddings being vectors rather than the paper's feature maps. The output is the score
    before the paper's sigmoid (the same argmax).
    """

    def __init__(self, cfg: RelationHeadConfig, embed: int, n_classes: int) -> None:
        super().__init__(cfg)
        self.relation = nn.Sequential(
            nn.Linear(2 * embed, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1)
        )

    def memory(self, emb, onehot):
        return {"prototypes": class_means(emb, onehot)}

    def read(self, emb, prototypes):
        n, c = emb.shape[0], prototypes.shape[0]
        pairs = torch.cat([prototypes.expand(n, c, -1), emb[:, None].expand(n, c, -1)], dim=-1)
        return self.relation(pairs).squeeze(-1)


class ReadLayer(nn.Module):
    """Pre-norm layer: tokens attend to context tokens (multi-head), then a feed-forward."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width={width} does not split into heads={heads} equal groups")
        self.heads = heads
        self.norm_x, self.norm_ctx, self.norm_ff = (LayerNorm(width) for _ in range(3))
        self.q, self.kv, self.out = (nn.Linear(width, n * width) for n in (1, 2, 1))
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """``x`` (m, width) attends to ``ctx`` (n, width) → (m, width)."""
        (m, w), h = x.shape, self.heads
        q = self.q(self.norm_x(x)).reshape(m, h, w // h).transpose(0, 1)
        k, v = self.kv(self.norm_ctx(ctx)).reshape(-1, 2, h, w // h).permute(1, 2, 0, 3)
        mixed = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(w // h), dim=-1) @ v
        x = x + self.out(mixed.transpose(0, 1).reshape(m, w))
        return x + self.ff(self.norm_ff(x))


class SnailHead(SupportHead):
    """A model-based head after SNAIL (Mishra et al., 2018, ICLR): prediction by attention.

    Each support sample is a token [embedding, label token]; a query is a token [embedding, 0]
    placed last, as in SNAIL's episode sequence. Support tokens attend to each other (the set
    has no order, so no causal mask among them); each query attends to the support tokens only,
    its own content passing through the residual, so queries are predicted independently.
    The label token of class c is its prototype (mean support embedding): it fits any number
    of classes, is indifferent to how labels are numbered, and needs no random codes. The
    query's output is scored against each class's projected label token. SNAIL's temporal
    convolutions are left out: they aggregate along an order the support set does not have.
    """

    def __init__(self, cfg: SnailHeadConfig, embed: int, n_classes: int) -> None:
        super().__init__(cfg)
        self.tokens_in = nn.Linear(2 * embed, cfg.width)
        self.layers = nn.ModuleList(ReadLayer(cfg.width, cfg.heads) for _ in range(cfg.layers))
        self.norm = LayerNorm(cfg.width)
        self.label_keys = nn.Linear(embed, cfg.width)

    def memory(self, emb, onehot):
        prototypes = class_means(emb, onehot)
        return {"tokens": torch.cat([emb, onehot @ prototypes], dim=-1), "prototypes": prototypes}

    def read(self, emb, tokens, prototypes):
        s = self.tokens_in(tokens)
        q = self.tokens_in(torch.cat([emb, torch.zeros_like(emb)], dim=-1))
        for layer in self.layers:
            s, q = layer(s, s), layer(q, s)
        return self.norm(q) @ self.label_keys(prototypes).T / math.sqrt(q.shape[-1])


HEADS: dict[str, type[nn.Module]] = {
    "linear": LinearHead,
    "matching": MatchingHead,
    "relation": RelationHead,
    "snail": SnailHead,
}


def build_head(cfg: HeadConfig, embed: int, n_classes: int) -> nn.Module:
    """The head ``cfg.kind`` over ``embed``-long embeddings (``n_classes``: linear head rows)."""
    return HEADS[cfg.kind](cfg, embed, n_classes)
