"""The adapt stage's names, importable without torch: the CLI builds its choices from them
(the baselines' names are in :mod:`cropmeta.baselines.names`)."""

#: ``--method best``: the method cross-validation ranks first. (A one-standard-error rule that
#: kept `pooled_forest` unless the leader was clearly above it was tried and measured no better
#: on fresh real-data draws: docs/studies/adaptation-and-automatic-choice.md, "The automatic
#: choice, steadier".)
BEST = "best"
#: How `suggest-labels` chooses fields.
SUGGEST_METHODS = ("kcenter", "kmeans")
#: Transductive corrections with the region's unlabelled samples, each scored (and saved) as
#: ``<method>+<how>`` (:mod:`cropmeta.adapt.transductive`).
TRANSDUCTIONS = ("label_shift", "bbse", "self_training", "timematch", "soft_kmeans")
SEPARATOR = "+"
#: The correction ``--method best`` adds to the method cross-validation picks when the region's
#: unlabelled samples are at hand and it applies (None: none). Chosen on real data by the rule
#: pre-registered in docs/studies/adaptation-and-automatic-choice.md ("Transductive corrections,
#: Presto and the automatic choice on real data"): self-training was the only correction to
#: raise the mean overall accuracy and macro-F1 of the methods it applies to over gee-tsda, Mato
#: Grosso → Amazon and TiSeLaC at K = 5 and 20 (+0.012 / +0.020), and again on fresh draws
#: (+0.012 / +0.017).
DEFAULT_TRANSDUCTION: str | None = "self_training"
