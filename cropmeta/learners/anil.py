"""ANIL: almost no inner loop — adapt only the head, meta-learn the encoder.

Raghu, Raghu, Bengio & Vinyals (2020), "Rapid Learning or Feature Reuse? Towards Understanding
the Effectiveness of MAML", ICLR. MAML's success is mostly feature reuse, so the inner loop can
leave the encoder fixed: much cheaper, and the encoder's features must serve every task as is.
"""

from __future__ import annotations

from typing import Literal

from cropmeta.learners.base import GradientConfig, GradientLearner
from cropmeta.learners.inner_loop import HEAD, Params


class ANILConfig(GradientConfig):
    name: Literal["anil"] = "anil"


class ANIL(GradientLearner):
    name = "anil"

    def inner_keys(self, params: Params) -> tuple[str, ...]:
        return HEAD
