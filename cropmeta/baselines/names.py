"""The baselines' names, importable without torch: the CLI builds its ``--method`` choices from
them, and reports list methods in this order."""

#: Baselines that need the source classifier a meta-model stores.
TRANSFER_METHODS = ("transfer_head", "transfer_all", "source_only")
#: Baselines fitted on the source regions' samples (stored in the meta-model) plus the shots:
#: what a practitioner with source labels does first (:mod:`cropmeta.baselines.pooled`).
POOLED_METHODS = ("pooled_forest", "pooled_boosting", "transfer_pooled")
#: Baselines on frozen embeddings of the pretrained Presto encoder (the WorldCereal recipe),
#: pooled with the source samples when the meta-model stores them (:mod:`cropmeta.baselines.
#: presto`).
PRESTO_METHODS = ("presto_forest", "presto_linear")
#: Every baseline, in report order; ``cropmeta adapt --method`` saves any of them as the
#: adapted model.
BASELINES = ("from_scratch", "random_forest", *TRANSFER_METHODS, *POOLED_METHODS, *PRESTO_METHODS)
