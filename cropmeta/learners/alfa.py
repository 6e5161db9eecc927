"""ALFA: inner-loop learning rates and weight decay generated per task and per step.

Baik, Choi, Choi, Kim & Lee (2020), "Meta-Learning with Adaptive Hyperparameters for Fast
Adaptation", NeurIPS. At inner step j the task's state τ = (layer-wise means of the gradient,
layer-wise means of the weights) — a "layer" being one parameter tensor — is fed to a small
meta-network g_φ (three linear layers, ReLU between) that outputs one multiplier pair per layer;
the update is θ ← β ⊙ θ − α ⊙ ∇L with

    α_{j,l} = η^α_{j,l} · gα_l(τ),    β_{j,l} = 1 − η^β_{j,l} · gβ_l(τ),

where η^α, η^β are per-step, per-layer meta-learned scales (the paper's "learnable
per-step per-layer" terms, initialised at the inner rate and at rate × weight decay). φ and η live
in ``state``: meta-trained with the model and saved in its bundle. g_φ's last layer starts at
zero with outputs offset by one (a deviation: the authors' code initialises it like any linear
layer), so ALFA starts as MAML with a slight weight decay and learns away from it.

Adaptation to a region follows the project's rule for the other learners (the meta-trained path,
walked in finer steps, :class:`GradientConfig`): ``adapt_steps`` steps, each a fraction
r = inner_steps / adapt_steps of the generated update, θ ← θ − r [(1 − β) ⊙ θ + α ⊙ ∇L], with the
scales η of meta-trained step ⌊j r⌋ at step j. With ``adapt_steps = inner_steps`` this is the
paper's test-time procedure exactly; ``adapt_lr`` is not used (the rates are generated).
Meta-training may learn negative late-step rates (gradient ascent on some layers, which helps
on tasks like the sources'); on a target unlike them those steps can undo the adaptation
(Mato Grosso → Amazon: support loss 1.61 → 1.00 → 2.07 over the 20 steps), so adaptation keeps
the iterate with the lowest support loss, as for every gradient learner (:func:`inner_loop`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from cropmeta.learners.base import GradientConfig, GradientLearner
from cropmeta.learners.inner_loop import Params, Update
from cropmeta.models.classifier import CropClassifier


class ALFAConfig(GradientConfig):
    name: Literal["alfa"] = "alfa"
    weight_decay: float = Field(5e-4, ge=0, description="initial weight decay (× inner_lr)")


class ALFA(GradientLearner):
    name = "alfa"
    cfg: ALFAConfig

    def setup(self, model: CropClassifier) -> None:
        super().setup(model)
        layers, steps = len(list(model.parameters())), self.cfg.inner_steps
        width = 2 * layers  # input, hidden and output widths as in the authors' code
        net = [nn.Linear(width, width) for _ in range(3)]
        nn.init.zeros_(net[2].weight)  # g_φ ≡ 1 at first (see above)
        nn.init.zeros_(net[2].bias)
        state = {
            f"{kind}{i}": nn.Parameter(getattr(linear, attr).detach().clone())
            for i, linear in enumerate(net)
            for kind, attr in (("w", "weight"), ("b", "bias"))
        }
        state["lr"] = nn.Parameter(torch.full((steps, layers), self.cfg.inner_lr))
        decay = self.cfg.inner_lr * self.cfg.weight_decay
        state["decay"] = nn.Parameter(torch.full((steps, layers), decay))
        self.state.update(state)

    def hyperparameters(
        self, fast: Params, grads: Params, step: int, state: Params | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(α, β), one value per parameter tensor of ``fast`` (in its order), at ``step``."""
        s = dict(self.state) if state is None else state
        tau = torch.stack([*(grads[k].mean() for k in fast), *(p.mean() for p in fast.values())])
        h = F.relu(F.linear(tau, s["w0"], s["b0"]))
        h = F.relu(F.linear(h, s["w1"], s["b1"]))
        g_alpha, g_beta = (1 + F.linear(h, s["w2"], s["b2"])).chunk(2)
        j = min(step, len(s["lr"]) - 1)  # past the meta-trained steps: the last step's scales
        return s["lr"][j] * g_alpha, 1 - s["decay"][j] * g_beta

    def inner_update(self, adapting: bool = False) -> Update:
        state = {k: v.detach() if adapting else v for k, v in self.state.items()}
        r = self.cfg.inner_steps / self.cfg.adapt_steps if adapting else 1.0

        def update(fast: Params, grads: Params, step: int) -> Params:
            alpha, beta = self.hyperparameters(fast, grads, int(step * r), state)
            return {
                k: p - r * ((1 - beta[i]) * p + alpha[i] * grads[k])
                for i, (k, p) in enumerate(fast.items())
            }

        return update
