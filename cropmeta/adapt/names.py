"""The adapt stage's names, importable without torch: the CLI builds its ``--method`` choices
from them (:mod:`cropmeta.adapt.baselines` and :mod:`cropmeta.adapt.suggest` use the same)."""

#: Baselines that need the source classifier a meta-model stores.
TRANSFER_METHODS = ("transfer_head", "transfer_all", "source_only")
#: Every baseline, in report order; ``cropmeta adapt --method`` saves any of them as the
#: adapted model (the transfer methods need the meta-model's pre-trained source classifier).
BASELINES = ("from_scratch", "random_forest", *TRANSFER_METHODS)
#: ``--method best``: the method cross-validation ranks first.
BEST = "best"
#: How `suggest-labels` chooses fields.
SUGGEST_METHODS = ("kcenter", "kmeans")
