"""The learners' names, importable without torch: the CLI builds its ``--algorithm`` choices from
them and imports a learner only when a command runs one (:mod:`cropmeta.learners.registry` maps
each name to its class; a test keeps the two in step)."""

ALGORITHMS = (
    "maml",
    "fomaml",
    "anil",
    "metasgd",
    "reptile",
    "alfa",
    "timl",
    "protonet",
    "matching",
    "relation",
    "snail",
)
