"""The adapt stage's names, importable without torch: the CLI builds its choices from them
(the baselines' names are in :mod:`cropmeta.baselines.names`)."""

#: ``--method best``: the method cross-validation ranks first, unless that is within noise of
#: :data:`DEFAULT_METHOD`.
BEST = "best"
#: What ``--method best`` keeps unless cross-validation ranks another method above it by more
#: than that leader's standard error (the one-standard-error rule: Breiman et al. 1984,
#: "Classification and Regression Trees", §3.4.3; Hastie et al. 2009, "The Elements of
#: Statistical Learning", §7.10). With 5 labelled fields a class the cross-validated macro-F1
#: has a standard error near 0.05-0.08, and on issue 18's real-data runs the plain leader was a
#: draw of that noise: it never was the forest on source samples + shots, which scored highest
#: on half the targets. The practitioners' baseline is the prior choice; evidence must move it.
DEFAULT_METHOD = "pooled_forest"
#: How `suggest-labels` chooses fields.
SUGGEST_METHODS = ("kcenter", "kmeans")
#: Transductive corrections with the region's unlabelled samples, each scored (and saved) as
#: ``<method>+<how>`` (:mod:`cropmeta.adapt.transductive`).
TRANSDUCTIONS = ("label_shift", "self_training", "timematch", "soft_kmeans")
SEPARATOR = "+"
#: The correction ``--method best`` adds to a meta-learner's adapted network when the region's
#: unlabelled samples are at hand (None: none). Chosen on real data by the rule pre-registered
#: in BENCHMARKS.md ("Transductive corrections, Presto and the automatic choice on real data"):
#: self-training was the only correction to raise the mean overall accuracy and macro-F1 of
#: the methods it applies to over gee-tsda, Mato Grosso → Amazon and TiSeLaC at K = 5 and 20
#: (+0.012 / +0.020). Per method it helped the meta-learned networks (maml, anil, protonet:
#: +0.034 / +0.042) and not the forests (random and pooled: -0.006 / -0.002), so it is added
#: to the learners only (BENCHMARKS.md, "The automatic choice, steadier").
DEFAULT_TRANSDUCTION: str | None = "self_training"
