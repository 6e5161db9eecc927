"""The adapt stage's names, importable without torch: the CLI builds its choices from them
(the baselines' names are in :mod:`cropmeta.baselines.names`)."""

#: ``--method best``: the method cross-validation ranks first.
BEST = "best"
#: How `suggest-labels` chooses fields.
SUGGEST_METHODS = ("kcenter", "kmeans")
