"""Few-shot accuracy on the real gee-tsda domains: leave one domain out, k labelled per class.

The four gee-tsda NDVI domains on the MODIS 8-day grid (Bailly et al., 2017, IEEE GRSL: Europe
2011, South America 2011, North America 2011, Europe 2003; 6 IGBP land-cover classes each) are
preprocessed into region datasets under ``--out`` (never into ../shared). Each domain in turn is
the target: every learner is meta-trained on the other three and adapted to it with k = 5
labelled series per class, over ``--seeds`` support draws; the same draws give the baselines'
support sets (from scratch, random forest, transfer head / all layers, source-only).

Hyper-parameters are chosen per target on meta-validation tasks from its source domains only
(nested leave-one-domain-out): a learner meta-trained on two source domains adapts to the third
with k = 5 (``--val-draws`` draws) and the setting with the best mean macro-F1 there is kept —
tasks per episode (n_way 3 or 5; the domains have 6 classes), the starting encoder (``init``:
random, or the supervised source classifier's — Meta-Baseline, Chen et al., 2021, ICCV), the
meta-training tasks' simulated regions (``--augments``: off, ± 45 days, ± half a year;
cropmeta.tasks.augment) and, for learners that adapt by gradient steps at a set rate, the
adaptation (20 or 100 steps at 1× or 3× the default rate).
The meta-learner reported as "selected" for a target is the one with the best validation
macro-F1; the target's query series are never used for any choice. Meta-training iterations
are a fixed compute budget (``--iterations``), not tuned.

Run (≈15 min per stage on an idle 2-core machine; models are cached under ``--out``, and
``select`` reuses the validation scores of an earlier ``selection.json`` there for settings it
already scored with the same iterations, shots and draws):
  /work/venv/bin/python benchmarks/real_accuracy.py select --out /tmp/gee-bench
  /work/venv/bin/python benchmarks/real_accuracy.py evaluate --out /tmp/gee-bench
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from cropmeta.adapt.adapt import adapt as adapt_model
from cropmeta.adapt.score import score
from cropmeta.baselines.names import BASELINES
from cropmeta.ingest.catalog_regions import preprocess_catalog_region
from cropmeta.learners.meta_train import MetaTrainConfig, meta_train
from cropmeta.learners.registry import LEARNERS, build_learner
from cropmeta.tasks.augment import TaskAugmentation
from cropmeta.taxonomy import CATALOG_DIR

# short name → (catalog region, the gee README's reference letter)
DOMAINS = {
    "EU11": ("gee-europe-2011", "Source"),
    "SA11": ("gee-south-america-2011", "A"),
    "NA11": ("gee-north-america-2011", "B"),
    "EU03": ("gee-europe-2003", "C"),
}
# The gee README's accuracies: adapted from the Europe 2011 source (one source domain).
PUBLISHED = {
    "A": {"RD-1": 0.542, "RD-2": 0.263, "SSMA": 0.636, "KEMA": 0.724},
    "B": {"RD-1": 0.554, "RD-2": 0.411, "SSMA": 0.627, "KEMA": 0.631},
    "C": {"RD-1": 0.293, "RD-2": 0.281, "SSMA": 0.376, "KEMA": 0.532},
}
# Two complementary source pairs: each target gets one validation domain (see select).
TWO_PAIRS = [("EU11", "SA11"), ("NA11", "EU03")]
N_WAYS = (3, 5)
INITS = ("random", "pretrained")  # MetaTrainConfig.init: the meta-model's starting encoder
# Simulated regions in meta-training (MetaTrainConfig.augment, cropmeta.tasks.augment): off; the
# phenology of another climate (± 45 days, bands ± 10 %); either hemisphere (± half a year).
AUGMENTS = {
    "off": TaskAugmentation(),
    "shift45": TaskAugmentation(shift_days=45, gain=0.1, offset=0.1),
    "shift183": TaskAugmentation(shift_days=183, gain=0.2, offset=0.2),
}
# Adaptation settings of learners that adapt by gradient steps at a set rate: (steps, rate as a
# multiple of the learner's default rate for its default steps). (20, 1) is the default: a path
# as long as in meta-training; the others walk 3×, 5× and 15× as far.
ADAPT_GRID = ((20, 1.0), (20, 3.0), (100, 1.0), (100, 3.0))
FIXED_RATE = {"alfa"}  # generates its own adaptation rates: ``adapt_lr`` is not used
log = logging.getLogger("real_accuracy")


def prepare(out: Path) -> dict[str, Path]:
    """The four domains as region datasets under ``out``/regions (reused when present)."""
    paths = {}
    for short, (region, _) in DOMAINS.items():
        paths[short] = out / "regions" / f"{region}.zarr"
        if not paths[short].exists():
            preprocess_catalog_region(CATALOG_DIR / "shared-data.yaml", region, paths[short])
    return paths


def train(
    out: Path,
    algorithm: str,
    sources: list[str],
    paths: dict,
    n_way: int,
    init: str,
    args,
    augment: str = "off",
) -> Path | str:
    """A meta-trained bundle (cached), or the error that stopped it."""
    name = f"{algorithm}-{'+'.join(sources)}-{n_way}way-{args.iterations}"
    name += "" if init == "random" else f"-{init}"
    model = out / "models" / (name if augment == "off" else f"{name}-{augment}")
    if (model / "config.json").is_file():
        return model
    cfg = MetaTrainConfig(
        algorithm=algorithm,
        n_way=n_way,
        k_shot=args.shots,
        q_query=5,  # the smallest classes have 9-16 series per domain
        iterations=args.iterations,
        val_every=25,
        baselines=True,
        init=init,
        augment=AUGMENTS[augment],
    )
    try:
        return meta_train([paths[s] for s in sources], model, cfg, seed=0)
    except Exception as exc:  # a learner under development must not stop the study
        log.warning("%s on %s failed: %r", algorithm, sources, exc)
        return f"{exc.__class__.__name__}: {str(exc)[:120]}"


def with_adaptation(model: Path, adapt: tuple[int, float]) -> Path:
    """A copy of ``model`` that adapts with ``adapt`` = (steps, rate × the default rate)."""
    if tuple(adapt) == ADAPT_GRID[0]:
        return model
    steps, scale = adapt
    variant = model.with_name(f"{model.name}-{steps}steps-lr{scale:g}")
    if not variant.exists():
        shutil.copytree(model, variant)
        cfg = json.loads((variant / "config.json").read_text())
        default = build_learner(cfg["learner"]["algorithm"], cfg["learner"]).cfg.adaptation_lr
        cfg["learner"] |= {"adapt_steps": steps, "adapt_lr": scale * default}
        (variant / "config.json").write_text(json.dumps(cfg))
    return variant


def adapt_grid(algorithm: str) -> tuple[tuple[int, float], ...]:
    fields = LEARNERS[algorithm][1].model_fields
    return ADAPT_GRID if "adapt_lr" in fields and algorithm not in FIXED_RATE else ADAPT_GRID[:1]


def adapt_scores(model: Path, target: Path, seeds, args, baselines: bool) -> list:
    """Metrics of every method for each support draw (seed)."""
    runs = (adapt_model(model, target, args.shots, seed, baselines) for seed in seeds)
    return [score(run).metrics for run in runs]


# -- selection: nested leave-one-domain-out on the sources --------------------------------------


def select(args, out: Path, paths: dict, learners: list[str]) -> dict:
    """Validation macro-F1 of every (learner, n_way, init, adaptation) for every target's sources.

    A bundle meta-trained on a pair of domains is validated on each of the two others; that
    validation counts for the fold whose target is the remaining domain.
    """
    val_seeds = range(100, 100 + args.val_draws)
    earlier = _earlier_scores(out / "selection.json", args)
    records, start = [], time.perf_counter()
    pairs = itertools.combinations(DOMAINS, 2) if args.pairs == "all" else TWO_PAIRS
    for pair in pairs:
        others = [d for d in DOMAINS if d not in pair]
        scored_baselines = False
        grid = itertools.product(learners, N_WAYS, INITS, args.augments)
        for algorithm, n_way, init, augment in grid:
            model = train(out, algorithm, list(pair), paths, n_way, init, args, augment)
            for val, target in ((others[0], others[1]), (others[1], others[0])):
                rec = {"target": target, "val": val, "pair": list(pair), "learner": algorithm}
                rec |= {"n_way": n_way, "init": init, "augment": augment}
                if isinstance(model, str):
                    records.append(rec | {"adapt": ADAPT_GRID[0], "error": model})
                    continue
                for adapt in adapt_grid(algorithm):
                    with_baselines = not scored_baselines and adapt == ADAPT_GRID[0]
                    scores = earlier.get(_key(rec | {"adapt": adapt}))
                    if scores is None or (with_baselines and "from_scratch" not in scores):
                        variant = with_adaptation(model, adapt)
                        runs = adapt_scores(variant, paths[val], val_seeds, args, with_baselines)
                        scores = {m: _means(runs, m) for m in runs[0]}
                    if not with_baselines:  # baselines are scored once per validation domain
                        scores = {m: v for m, v in scores.items() if m not in BASELINES}
                    records.append(rec | {"adapt": adapt, "scores": scores})
            scored_baselines = scored_baselines or not isinstance(model, str)
            log.info(
                "%s %s %d-way %s %s: %.0f s", algorithm, pair, n_way, init, augment, _since(start)
            )
    return {"records": records, "seconds": round(_since(start), 1), "args": _jsonable(args)}


def _key(record: dict) -> tuple:
    """A validation record's setting; records written before ``init`` / ``augment`` existed are
    "random" / "off"."""
    return (
        record["target"],
        record["val"],
        tuple(record["pair"]),
        record["learner"],
        record["n_way"],
        record.get("init", "random"),
        tuple(record["adapt"]),
        record.get("augment", "off"),
    )


def _earlier_scores(path: Path, args) -> dict[tuple, dict]:
    """Validation scores of an earlier selection run at the same iterations, shots and draws:
    its models are the cached ones, so re-adapting them would only repeat the same numbers."""
    if not path.is_file():
        return {}
    earlier = json.loads(path.read_text())
    same = ("iterations", "shots", "val_draws")
    if any(earlier["args"].get(k) != getattr(args, k) for k in same):
        return {}
    return {_key(r): r["scores"] for r in earlier["records"] if "scores" in r}


def _means(runs: list[dict], method: str) -> dict[str, float]:
    return {
        k: float(np.mean([r[method][k] for r in runs])) for k in ("macro_f1", "overall_accuracy")
    }


def _jsonable(args) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def choices(selection: dict, target: str, learners: list[str]) -> dict:
    """Per learner, the setting with the best mean validation macro-F1 for ``target``."""
    chosen = {}
    for algorithm in learners:
        rows = [
            r
            for r in selection["records"]
            if r["target"] == target and r["learner"] == algorithm and "scores" in r
        ]
        by_setting: dict[tuple, list[float]] = {}
        for r in rows:
            setting = (
                r["n_way"],
                r.get("init", "random"),
                tuple(r["adapt"]),
                r.get("augment", "off"),
            )
            by_setting.setdefault(setting, []).append(r["scores"][algorithm]["macro_f1"])
        if by_setting:
            best, f1 = max(by_setting.items(), key=lambda kv: np.mean(kv[1]))
            n_way, init, adapt, augment = best
            chosen[algorithm] = {
                "n_way": n_way,
                "init": init,
                "adapt": adapt,
                "augment": augment,
                "val_f1": float(np.mean(f1)),
            }
    return chosen


def baseline_validation(selection: dict, target: str) -> dict[str, float]:
    """The baselines' mean validation macro-F1 for ``target`` (same validation draws)."""
    rows = [
        r["scores"]
        for r in selection["records"]
        if r["target"] == target and "scores" in r and "from_scratch" in r["scores"]
    ]
    return {b: float(np.mean([r[b]["macro_f1"] for r in rows if b in r])) for b in BASELINES}


# -- evaluation on the held-out domains ---------------------------------------------------------


def evaluate(args, out: Path, paths: dict, learners: list[str], selection: dict) -> dict:
    """Each target: learners with their chosen settings, baselines, ``--seeds`` support draws."""
    results, start = {}, time.perf_counter()
    for target in DOMAINS:
        sources = [d for d in DOMAINS if d != target]
        chosen = choices(selection, target, learners)
        fold = {"chosen": chosen, "methods": {}, "errors": {}}
        seeds = range(args.seeds)
        for algorithm, setting in chosen.items():
            init, augment = setting.get("init", "random"), setting.get("augment", "off")
            model = train(out, algorithm, sources, paths, setting["n_way"], init, args, augment)
            if isinstance(model, str):
                fold["errors"][algorithm] = model
                continue
            variant = with_adaptation(model, setting["adapt"])
            runs = adapt_scores(variant, paths[target], seeds, args, False)
            fold["methods"][algorithm] = [r[algorithm] for r in runs]
            if not any(b in fold["methods"] for b in BASELINES):  # once per target
                base = adapt_scores(model, paths[target], seeds, args, True)
                fold["methods"] |= {b: [r[b] for r in base if b in r] for b in BASELINES}
            log.info("%s → %s: %.0f s so far", algorithm, target, _since(start))
        if chosen:
            fold["selected"] = max(chosen, key=lambda a: chosen[a]["val_f1"])
        fold["baseline_val_f1"] = baseline_validation(selection, target)
        results[target] = fold
    return {"targets": results, "seconds": round(_since(start), 1), "args": _jsonable(args)}


def _since(start: float) -> float:
    return time.perf_counter() - start


def summary(results: dict) -> str:
    """One table per metric: methods × targets, mean ± std over the support draws; the
    meta-learner selected on validation for a target is in bold."""
    targets = results["targets"]
    methods = [m for f in targets.values() for m in f["methods"] if m not in BASELINES]
    methods = list(dict.fromkeys(methods)) + list(BASELINES)
    lines = []
    for metric, label in (("macro_f1", "macro-F1"), ("overall_accuracy", "overall accuracy")):
        head = " | ".join(f"{t} ({DOMAINS[t][1]})" for t in targets)
        lines += [f"\n{label}, k = {results['args']['shots']} per class\n", f"| method | {head} |"]
        lines.append("|---|" + "---:|" * len(targets))
        for m in methods:
            cells = []
            for fold in targets.values():
                values = [r[metric] for r in fold["methods"].get(m, [])]
                cell = f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "–"
                cells.append(f"**{cell}**" if m == fold.get("selected") else cell)
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """Per target: every method's OA and macro-F1 (mean ± std over draws), and the verdict."""
    lines = [summary(results)]
    for target, fold in results["targets"].items():
        region, ref = DOMAINS[target]
        lines += [
            f"\n### {target} ({region}; README domain {ref})\n",
            "| method | setting (val macro-F1) | OA | macro-F1 |",
            "|---|---|---:|---:|",
        ]
        order = [m for m in fold["methods"] if m not in BASELINES] + list(BASELINES)
        for method in order:
            runs = fold["methods"].get(method)
            if not runs:
                continue
            oa = [r["overall_accuracy"] for r in runs]
            f1 = [r["macro_f1"] for r in runs]
            setting = fold["chosen"].get(method)
            note = (
                f"{setting['n_way']}-way, {setting.get('init', 'random')} init, "
                f"{setting['adapt'][0]} steps × {setting['adapt'][1]:g}, "
                f"tasks {setting.get('augment', 'off')} "
                f"({setting['val_f1']:.3f})"
                if setting
                else f"default ({fold['baseline_val_f1'].get(method, float('nan')):.3f})"
            )
            star = " **(selected)**" if method == fold.get("selected") else ""
            lines.append(
                f"| {method}{star} | {note} | {np.mean(oa):.3f} ± {np.std(oa):.3f} "
                f"| {np.mean(f1):.3f} ± {np.std(f1):.3f} |"
            )
        for algorithm, error in fold["errors"].items():
            lines.append(f"| {algorithm} | failed: {error} | – | – |")
        if ref in PUBLISHED:
            pub = ", ".join(f"{k} {v:.3f}" for k, v in PUBLISHED[ref].items())
            lines.append(f"\nPublished (README, Europe 2011 source only): {pub}.")
        lines.append("\n" + verdict(fold))
    return "\n".join(lines)


def verdict(fold: dict) -> str:
    """Does the selected meta-learner beat every baseline in macro-F1 and in OA?"""
    best = fold.get("selected")
    if best is None or best not in fold["methods"]:
        return "No meta-learner finished."
    parts, hindsight = [], []
    for metric, label in (("macro_f1", "macro-F1"), ("overall_accuracy", "OA")):
        mean = {
            m: np.mean([r[metric] for r in runs]) for m, runs in fold["methods"].items() if runs
        }
        rival = max((b for b in BASELINES if b in mean), key=mean.get)
        parts.append(
            f"{label}: {best} {mean[best]:.3f} vs best baseline {rival} {mean[rival]:.3f} "
            f"({'wins' if mean[best] > mean[rival] else 'loses'})"
        )
        top = max((m for m in mean if m not in BASELINES), key=mean.get)
        hindsight.append(f"{label} {top} {mean[top]:.3f}")
    return (
        "Selected meta-learner — "
        + "; ".join(parts)
        + ". Best meta-learner in hindsight (not a valid choice, shown for analysis): "
        + ", ".join(hindsight)
        + "."
    )


def bar_chart(results: dict, path: Path) -> Path | None:
    """Macro-F1 per target: the selected meta-learner beside every baseline (mean ± std)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    targets = list(results["targets"])
    series = ["selected meta-learner", *BASELINES]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        means, stds = [], []
        for t in targets:
            fold = results["targets"][t]
            key = fold.get("selected") if i == 0 else name
            f1 = [r["macro_f1"] for r in fold["methods"].get(key, [])] or [np.nan]
            means.append(np.mean(f1))
            stds.append(np.std(f1))
        xs = np.arange(len(targets)) + (i - (len(series) - 1) / 2) * width
        ax.bar(xs, means, width, yerr=stds, label=name, capsize=2)
    labels = [f"{t}\n({results['targets'][t].get('selected', '-')})" for t in targets]
    ax.set_xticks(np.arange(len(targets)), labels)
    ax.set_ylabel("macro-F1 (k = 5 per class)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("gee-tsda, leave one domain out")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "stage", choices=["select", "evaluate", "all", "report"], help="report: tables again"
    )
    parser.add_argument("--out", type=Path, required=True, help="work folder (cache, results)")
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5, help="support draws per target")
    parser.add_argument("--val-draws", type=int, default=3, help="support draws per validation")
    parser.add_argument(
        "--pairs",
        choices=["two", "all"],
        default="two",
        help="source pairs meta-trained for validation: 'two' gives each target "
        "one validation domain, 'all' three (3x the time)",
    )
    parser.add_argument("--learners", nargs="*", default=list(LEARNERS))
    parser.add_argument(
        "--augments",
        nargs="*",
        choices=list(AUGMENTS),
        default=list(AUGMENTS),
        help="task augmentations (simulated regions) in the validation grid",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("cropmeta").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.stage in ("select", "all"):
        selection = select(args, out, prepare(out), args.learners)
        (out / "selection.json").write_text(json.dumps(selection, indent=1))
    if args.stage in ("evaluate", "all"):
        selection = json.loads((out / "selection.json").read_text())
        results = evaluate(args, out, prepare(out), args.learners, selection)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    if args.stage == "select":
        return
    results = json.loads((out / "results.json").read_text())
    table = markdown(results)
    (out / "results.md").write_text(table)
    print(table)
    print(f"\nbar chart: {bar_chart(results, out / 'gee_accuracy.png')}")


if __name__ == "__main__":
    main()
