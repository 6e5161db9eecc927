"""A fitted random forest or gradient boosting held as tensors, so that either can be an adapted
model.

The random forest on the flattened series is the workhorse of operational crop mapping and, on
the far gee-tsda domains, the strongest method at k = 5 (BENCHMARKS.md). To save it without a
pickle and map it like a network, :meth:`ForestClassifier.from_sklearn` copies each fitted tree's
arrays (split feature, threshold, children, leaf class fractions) into buffers that safetensors
stores and the bundle's JSON describes; prediction walks the trees with tensor operations.

It reproduces scikit-learn's ``RandomForestClassifier.predict_proba`` exactly: inputs are cast
to float32 and split as sklearn's tree code splits them (a float32 value against a float64
threshold, here against that threshold rounded down to float32: the same decision), a missing
value follows the tree's ``missing_go_to_left``, and the trees' leaf fractions are summed one
tree after another in float64 before the division by the number of trees. Stored as tensors
rather than with ``skops``: the house rule is tensors plus a JSON config.

The walk itself runs in scikit-learn's compiled tree code: on first use the stored arrays are
rebuilt into scikit-learn ``Tree`` objects (plain arrays through ``Tree.__setstate__``; nothing
is unpickled, no code is loaded), whose ``apply`` finds each sample's leaf at scikit-learn's own
speed (about 3× the tensor walk's, which stays as the fallback where the rebuild is refused).
The leaf is the same either way: ``apply`` compares a float32 input with a float64 threshold,
and the thresholds are stored as float32 values. BENCHMARKS.md ("A saved random forest's map
speed") has the figures.

:meth:`ForestClassifier.from_sklearn_boosting` holds a ``HistGradientBoostingClassifier`` the
same way: the same walk (its splits are ``x <= threshold`` on float64 data, a missing value
following ``missing_go_to_left``), each tree's single leaf score added to its class's raw score
in sklearn's order, from the fit's baseline. The raw scores are sklearn's ``decision_function``
bit for bit; the probabilities are its softmax (or, for two classes, its sigmoid) computed with
sklearn's operations in sklearn's order, equal to ``predict_proba`` up to the last bits of
``exp`` (torch's and numpy's float64 ``exp`` differ by one ulp for a few percent of inputs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch import nn

from cropmeta.models.sizes import MAX_TREE_DEPTH, Shapes

#: The tensors a forest stores, by name: one row per node (all trees' nodes end to end), or
#: one per tree (``roots``). ``branches`` holds each node's (right, left) child, a leaf's being
#: itself; ``threshold`` is sklearn's float64 threshold rounded down to float32, which splits
#: float32 inputs exactly as the float64 comparison does. ``value`` holds a random forest's
#: class fractions (node, class), or a boosted tree's leaf score (node, 1).
FOREST_TENSORS = ("feature", "threshold", "branches", "missing_left", "value", "roots")
#: What gradient boosting stores besides: ``bias``, each class's baseline raw score (−inf for
#: a class absent from the fit), and ``classes``, the class whose raw score each tree adds to.
BOOSTING_TENSORS = ("bias", "classes")
WALK_PAIRS = 2**18
#: Samples per ``Tree.apply`` call of the compiled walk (its leaves: 8 bytes per sample and tree).
COMPILED_CHUNK = 2**16
DTYPES = {
    "threshold": torch.float32,
    "value": torch.float64,
    "missing_left": torch.bool,
    "bias": torch.float64,
}
Combine = Literal["mean", "softmax", "sigmoid"]
EMPTY = {"value": [0, 0], "branches": [0, 2]}  # a tensor's shape when the config names none


class ForestHeadConfig(BaseModel):
    """A random forest (or gradient boosting) as the whole model: it reads the flattened
    normalised series itself, so the bundle's ``encoder`` is not used."""

    kind: Literal["forest"] = "forest"
    memory: Shapes = Field(
        default_factory=dict, description="name → shape of each stored tree tensor"
    )
    depth: int = Field(
        0, ge=0, le=MAX_TREE_DEPTH, description="the deepest leaf's depth: steps of the walk"
    )
    combine: Combine = Field(
        "mean",
        description="how the leaves give probabilities: 'mean' of the trees' class fractions "
        "(a random forest); 'softmax' of each class's bias plus its trees' leaf scores "
        "(gradient boosting, several classes); 'sigmoid' of that score (gradient boosting, two "
        "classes: the two of finite bias, the first the negative, whose score stays 0)",
    )


class ForestHead(nn.Module):
    """The trees' buffers (see :data:`FOREST_TENSORS` and :data:`BOOSTING_TENSORS`) and the
    walk from roots to leaves."""

    def __init__(self, cfg: ForestHeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        names = FOREST_TENSORS + (BOOSTING_TENSORS if cfg.combine != "mean" else ())
        for name in names:
            shape = cfg.memory.get(name, EMPTY.get(name, [0]))
            self.register_buffer(name, torch.zeros(shape, dtype=DTYPES.get(name, torch.int64)))

    @property
    def n_classes(self) -> int:
        return self.value.shape[1] if self.cfg.combine == "mean" else len(self.bias)

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        """Class probabilities (sample, class), float64, as sklearn's ``predict_proba``.

        Samples go in chunks of :data:`WALK_PAIRS` (sample, tree) pairs, whose indexes stay in
        the CPU's cache (about 2× faster than 16384 pixels at once, a map's default batch).
        """
        if self.cfg.combine == "mean":
            parts = [self._mean(node) for node in self._leaves(flat)]
        else:
            link = self._softmax if self.cfg.combine == "softmax" else self._sigmoid
            parts = [link(self._scores(node)).T for node in self._leaves(flat)]
        return torch.cat(parts) if parts else torch.zeros(0, self.n_classes, dtype=torch.float64)

    def scores(self, flat: torch.Tensor) -> torch.Tensor:
        """Gradient boosting's raw scores (sample, class), float64: sklearn's
        ``decision_function`` at its classes' columns (for two classes, at the second's; the
        first's stays 0), −inf at classes absent from the fit."""
        if self.cfg.combine == "mean":
            raise ValueError("a random forest has no raw scores")
        parts = [self._scores(node).T for node in self._leaves(flat)]
        return torch.cat(parts) if parts else torch.zeros(0, self.n_classes, dtype=torch.float64)

    def _leaves(self, flat: torch.Tensor) -> Iterator[torch.Tensor]:
        """The leaf each sample reaches in each tree (sample, tree), chunk by chunk: by
        scikit-learn's compiled ``Tree.apply`` where the trees rebuild, else by the walk."""
        chunk = max(1, WALK_PAIRS // max(1, len(self.roots)))
        x = flat.to(torch.float32)
        trees = compiled_trees(self, x.shape[1]) if len(x) else None
        if trees is not None:  # one call per tree and chunk: large chunks, few calls
            rows = np.ascontiguousarray(x.numpy())
            roots = self.roots.numpy()[:, None]
            for i in range(0, len(x), COMPILED_CHUNK):
                part = rows[i : i + COMPILED_CHUNK]
                node = np.empty((len(trees), len(part)), np.int64)  # tree by tree, contiguous
                for t, tree in enumerate(trees):
                    node[t] = tree.apply(part)
                node += roots
                yield torch.from_numpy(node).T  # (sample, tree), each tree's column contiguous
            return
        leaf = self.branches[:, 0] == torch.arange(len(self.branches))
        for i in range(0, len(x), chunk):
            yield self._walk(x[i : i + chunk], leaf)

    def _walk(self, x: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        """Every (sample, tree) pair walks ``depth`` steps in one flat index space: a gather of
        the split feature's value, a comparison, and a gather of the child. Every third step
        the pairs that reached a leaf are set aside (a third less time on the demo's forests)."""
        n, n_trees = len(x), len(self.roots)
        values, branches = x.reshape(-1), self.branches.reshape(-1)
        missing = bool(x.isnan().any())
        node = self.roots.repeat(n)
        pair = torch.arange(len(node))  # the pairs still walking, their nodes and row offsets
        at, row = node, torch.arange(n).repeat_interleave(n_trees) * x.shape[1]
        for step in range(self.cfg.depth):  # leaves are their own children, so they stay put
            v = values[row + self.feature[at]]
            go_left = v <= self.threshold[at]
            if missing:
                go_left = torch.where(v.isnan(), self.missing_left[at], go_left)
            at = branches[2 * at + go_left.long()]
            if step % 3 == 2:
                node[pair] = at
                walking = ~leaf[at]
                pair, at, row = pair[walking], at[walking], row[walking]
        node[pair] = at
        return node.view(n, n_trees)

    def _mean(self, node: torch.Tensor) -> torch.Tensor:
        """A random forest's probabilities: the trees' leaf fractions, summed tree by tree as
        sklearn sums them, over the number of trees."""
        n, n_trees = node.shape
        value, leaves = self.value.numpy(), node.numpy()  # numpy's take: 2× torch's indexing
        total = np.zeros((n, value.shape[1]))
        for tree in range(n_trees):
            total += np.take(value, leaves[:, tree], axis=0)
        return torch.from_numpy(total / n_trees)

    def _scores(self, node: torch.Tensor) -> torch.Tensor:
        """Raw scores (class, sample): the bias plus each tree's leaf score, added tree by tree
        in sklearn's order (iteration by iteration)."""
        score = self.bias[:, None].repeat(1, len(node))
        leaf_score = self.value[:, 0]
        for tree, k in enumerate(self.classes.tolist()):
            score[k] += leaf_score[node[:, tree]]
        return score

    @staticmethod
    def _softmax(score: torch.Tensor) -> torch.Tensor:
        """``sklearn.utils.extmath.softmax`` over classes (dim 0), step by step: the largest
        score subtracted, ``exp``, the sum class after class (as numpy sums sklearn's
        Fortran-ordered scores), a division. An absent class's −inf gives 0."""
        e = (score - score.max(0).values).exp()
        total = e[0].clone()
        for k in range(1, len(e)):
            total += e[k]
        return e / total

    def _sigmoid(self, score: torch.Tensor) -> torch.Tensor:
        """sklearn's binary ``predict_proba``: the second class's probability is
        ``1 / (1 + exp(-score))`` (scipy's ``expit``), the first's one minus that."""
        present = self.bias.isfinite().nonzero().flatten().tolist()
        if len(present) != 2:
            raise ValueError(f"a 'sigmoid' forest needs 2 classes of finite bias: {present}")
        neg, pos = present
        proba = torch.zeros_like(score)
        proba[pos] = 1 / (1 + (-(score[pos] - score[neg])).exp())  # the negative's score is 0
        proba[neg] = 1 - proba[pos]
        return proba


class ForestClassifier(nn.Module):
    """A random forest (or gradient boosting) with the networks' interface: ``model(x, doy)``
    gives log-probabilities (sample, class), whose softmax is the forest's probabilities and
    whose argmax its class."""

    def __init__(self, cfg: ForestHeadConfig) -> None:
        super().__init__()
        self.head = ForestHead(cfg)

    def forward(self, x: torch.Tensor, doy: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities of series ``x`` (sample, step, band); ``doy`` is not read (the
        forest sees the steps of the bundle's fixed temporal grid)."""
        return self.head(x.flatten(1)).log().to(torch.float32)

    @classmethod
    def from_sklearn(cls, forest, n_classes: int) -> ForestClassifier:
        """The fitted ``RandomForestClassifier`` ``forest`` (single output, labels 0..n-1)."""
        parts: dict[str, list[np.ndarray]] = {name: [] for name in FOREST_TENSORS}
        offset = 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            index = np.arange(tree.node_count) + offset
            leaf = tree.children_left < 0
            parts["feature"].append(np.where(leaf, 0, tree.feature))
            parts["threshold"].append(float32_at_most(np.where(leaf, 0.0, tree.threshold)))
            left = np.where(leaf, index, tree.children_left + offset)
            right = np.where(leaf, index, tree.children_right + offset)
            parts["branches"].append(np.stack([right, left], 1))
            parts["missing_left"].append(tree.missing_go_to_left.astype(bool))
            value = np.zeros((tree.node_count, n_classes))
            value[:, forest.classes_.astype(int)] = tree.value[:, 0, :]
            parts["value"].append(value)
            parts["roots"].append(np.array([offset]))
            offset += tree.node_count
        depth = max(e.tree_.max_depth for e in forest.estimators_)
        return cls._from_parts(parts, depth, "mean")

    @classmethod
    def from_sklearn_boosting(cls, model, n_classes: int) -> ForestClassifier:
        """The fitted ``HistGradientBoostingClassifier`` ``model`` (labels 0..n-1, numerical
        features only: categorical splits are refused)."""
        nodes_of = [[p.nodes for p in trees] for trees in model._predictors]
        if getattr(model, "_preprocessor", None) is not None or any(
            nodes["is_categorical"].any() for trees in nodes_of for nodes in trees
        ):
            raise ValueError("gradient boosting with categorical features is not supported")
        labels = model.classes_.astype(int)
        if len(labels) < 2 or labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError(f"classes {labels.tolist()} are not 2 or more of 0..{n_classes - 1}")
        baseline = model._baseline_prediction[0]
        bias = np.full(n_classes, -np.inf)  # a class absent from the fit: probability 0
        binary = model.n_trees_per_iteration_ == 1
        columns = labels[1:] if binary else labels  # the class each of an iteration's trees adds to
        bias[labels[0]] = 0.0  # binary: the negative class's score, to which nothing is added
        bias[columns] = baseline
        parts: dict[str, list[np.ndarray]] = {name: [] for name in FOREST_TENSORS}
        parts["classes"] = []
        offset, depth = 0, 0
        for trees in nodes_of:
            for k, nodes in enumerate(trees):
                index = np.arange(len(nodes)) + offset
                leaf, threshold = nodes["is_leaf"].astype(bool), nodes["num_threshold"]
                parts["feature"].append(np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64))
                parts["threshold"].append(float32_at_most(np.where(leaf, 0.0, threshold)))
                left = np.where(leaf, index, nodes["left"].astype(np.int64) + offset)
                right = np.where(leaf, index, nodes["right"].astype(np.int64) + offset)
                parts["branches"].append(np.stack([right, left], 1))
                parts["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
                parts["value"].append(nodes["value"].astype(np.float64)[:, None])
                parts["roots"].append(np.array([offset]))
                parts["classes"].append(np.array([columns[k]], dtype=np.int64))
                offset += len(nodes)
                depth = max(depth, int(nodes["depth"].max()))
        parts["bias"] = [bias]
        return cls._from_parts(parts, depth, "sigmoid" if binary else "softmax")

    @classmethod
    def _from_parts(
        cls, parts: dict[str, list[np.ndarray]], depth: int, combine: Combine
    ) -> ForestClassifier:
        """The model holding the trees' arrays ``parts`` (name → one array per tree)."""
        arrays = {name: np.concatenate(p) for name, p in parts.items()}
        memory = {k: list(a.shape) for k, a in arrays.items()}
        model = cls(ForestHeadConfig(memory=memory, depth=depth, combine=combine))
        model.head.load_state_dict({k: torch.from_numpy(a) for k, a in arrays.items()})
        return model.eval()


def compiled_trees(head: ForestHead, n_features: int) -> list | None:
    """``head``'s trees as scikit-learn ``Tree`` objects reading ``n_features`` columns, built
    from its buffers on first use and kept on it (rebuilt when the buffers change); None where
    scikit-learn's node layout lacks a field this needs (a version that changed it)."""
    key = (n_features, head.branches.data_ptr(), head.branches._version)
    cached = head.__dict__.get("_compiled")
    if cached is not None and cached[0] == key:
        return cached[1]
    from sklearn.tree._tree import Tree

    blank = Tree(n_features, np.array([1], dtype=np.intp), 1)
    layout = blank.__getstate__()["nodes"].dtype
    needed = {"left_child", "right_child", "feature", "threshold", "missing_go_to_left"}
    trees = None
    if needed <= set(layout.names or ()):
        feature, threshold = head.feature.numpy(), head.threshold.numpy().astype(np.float64)
        branches, missing = head.branches.numpy(), head.missing_left.numpy()
        bounds = [*head.roots.tolist(), len(branches)]
        trees, depth = [], head.cfg.depth
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            index = np.arange(start, end)
            leaf = branches[start:end, 0] == index
            nodes = np.zeros(end - start, dtype=layout)
            nodes["left_child"] = np.where(leaf, -1, branches[start:end, 1] - start)
            nodes["right_child"] = np.where(leaf, -1, branches[start:end, 0] - start)
            nodes["feature"] = np.where(leaf, -2, feature[start:end])
            nodes["threshold"] = np.where(leaf, -2.0, threshold[start:end])
            nodes["missing_go_to_left"] = missing[start:end]
            tree = Tree(n_features, np.array([1], dtype=np.intp), 1)
            values = np.zeros((end - start, 1, 1))
            tree.__setstate__(
                {"max_depth": depth, "node_count": end - start, "nodes": nodes, "values": values}
            )
            trees.append(tree)
    head.__dict__["_compiled"] = (key, trees)
    return trees


def float32_at_most(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 threshold: for a float32 input ``v``,
    ``v <= t`` exactly when ``v <= float32_at_most(t)``."""
    t32 = threshold.astype(np.float32)
    return np.where(t32 > threshold, np.nextafter(t32, np.float32(-np.inf)), t32)


#: Trees of every random forest cropmeta fits (the shots-only, pooled and Presto baselines and
#: their self-trained variants): a few hundred, as operational crop mapping uses.
FOREST_TREES = 300


def fit_forest(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    seed: int,
    weight: np.ndarray | None = None,
    trees: int = FOREST_TREES,
) -> ForestClassifier:
    """A scikit-learn random forest of ``trees`` trees fitted on features ``x`` (sample,
    feature) and class indices ``y`` (each sample weighing ``weight``), held as tensors; one
    thread, so the trees do not depend on the machine."""
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1)
    rf.fit(x, y, sample_weight=weight)
    return ForestClassifier.from_sklearn(rf, n_classes)
