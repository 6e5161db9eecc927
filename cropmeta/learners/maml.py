"""MAML and first-order MAML.

Finn, Abbeel & Levine (2017), "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML. FOMAML, from the same paper, drops the second derivatives of the inner updates
from the outer gradient: cheaper, and often as good. The head is a single row copied to every
class of a task (Ye & Chao, 2022), so adaptation works for any number of target classes.
"""

from __future__ import annotations

from typing import Literal

from cropmeta.learners.base import GradientConfig, GradientLearner


class MAMLConfig(GradientConfig):
    name: Literal["maml"] = "maml"


class FOMAMLConfig(GradientConfig):
    name: Literal["fomaml"] = "fomaml"
    first_order: bool = True


class MAML(GradientLearner):
    """Second-order MAML (set ``first_order`` for its first-order approximation)."""

    name = "maml"


class FOMAML(GradientLearner):
    """First-order MAML: the outer gradient is the query gradient at the adapted parameters."""

    name = "fomaml"
