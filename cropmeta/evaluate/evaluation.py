"""`cropmeta evaluate`: run the protocol, then write the report with its figures.

The report's sections per held-out region: the results and recommendation
(:mod:`.outputs`), the diagnostics the meta-learning literature warns about
(:mod:`.diagnostics`), a preview of a map made by the best learner (raster regions), and
whether suggested labels beat random ones (:mod:`cropmeta.mapping.suggest`).
"""

from __future__ import annotations

from pathlib import Path

from cropmeta.adapt.adapt import adapt_region
from cropmeta.catalog import RasterSpec, load_catalog
from cropmeta.errors import InputError
from cropmeta.evaluate.cv_choice import cv_section
from cropmeta.evaluate.outputs import Section, write_report
from cropmeta.evaluate.plots import preview_map
from cropmeta.evaluate.protocol import EvaluationConfig, Progress, run_evaluation
from cropmeta.evaluate.report import headline_shots, scored_learners
from cropmeta.ingest.dataset import RegionArrays
from cropmeta.mapping.crop_map import map_region
from cropmeta.ownership import claim, output_folder


def best_learner(results: dict, target: str) -> tuple[str, int] | None:
    """The learner with the best mean macro-F1 at the headline K, and that K."""
    summary = results["summary"].get(target, {})
    learners = [m for m in results["config"]["learners"] if m in summary]
    if not learners:
        return None
    k = headline_shots(sorted({int(k) for m in learners for k in summary[m]}))
    scored = [m for m in learners if str(k) in summary[m]]
    if not scored:
        return None
    return max(scored, key=lambda m: summary[m][str(k)]["macro_f1"]["mean"]), k


def map_section(catalog: Path, results: dict, out: Path) -> Section:
    """A map of each raster region by its best learner (adapted on the first draw at the
    headline K), previewed with its legend."""
    cat = load_catalog(catalog)

    def section(target: str, figures: Path) -> list[str]:
        entry = cat.region(target)
        raster = entry.raster or (RasterSpec(path=entry.tiles) if entry.tiles else None)
        chosen = best_learner(results, target)
        if raster is None or chosen is None:
            return []
        learner, k = chosen
        spec = raster.model_copy(update={"path": str(cat.path(raster.path))})
        adapted = out / "maps" / f"{target}-{learner}-model"
        adapt_region(
            results["models"][target][learner],
            results["regions"][target],
            adapted,
            shots=k,
            seed=results["seed"],
            baselines=False,
        )
        crop_map = map_region(adapted, spec, out / "maps" / f"{target}.tif", uncertainty="entropy")
        png = preview_map(crop_map.path, figures / f"{target}-map.png")
        return [
            f"### Map of {target} by {learner} (K = {k}, first draw)",
            "",
            f"`{crop_map.path.relative_to(out)}` (uncertainty: "
            f"`{crop_map.outputs['uncertainty'].relative_to(out)}`; preview again with "
            "`cropmeta preview`).",
            "",
            f"![map of {target}]({png.parent.name}/{png.name})",
            "",
        ]

    return section


def published_section(catalog: Path, results: dict) -> Section:
    """Published results on a region (from its catalog entry) beside ours, saying how many
    target labels ours used."""
    cat = load_catalog(catalog)

    def section(target: str, figures: Path) -> list[str]:
        pub = cat.region(target).published
        summary = results["summary"].get(target, {})
        if pub is None or not summary:
            return []
        metric = pub.metric
        lines = [
            f"### Published results on {target} ({metric.replace('_', ' ')})",
            "",
            f"{pub.reference}; their target labels: {pub.labels}.",
            "",
            "| method | target labels | " + metric.replace("_", " ") + " |",
            "|---|---|---:|",
        ]
        lines += [
            f"| {name} (published) | see above | {v:.3f} |" for name, v in pub.results.items()
        ]
        runs = [r for r in results["runs"] if r.get("target") == target and "metrics" in r]
        for method, by_k in summary.items():
            for k, entry in sorted(by_k.items(), key=lambda kv: int(kv[0])):
                n = next(
                    r["n_support"] for r in runs if r["method"] == method and r["shots"] == int(k)
                )
                value = entry[metric]["mean"]
                lines.append(f"| {method} (ours) | {k} per class = {n} samples | {value:.3f} |")
        return [*lines, ""]

    return section


def label_budget_section(results: dict, out: Path) -> Section:
    """Whether `cropmeta suggest-labels` (k-center coverage of the meta-learned embedding)
    beats labelling random samples at the same budget: K × classes at the headline K."""

    def section(target: str, figures: Path) -> list[str]:
        from cropmeta.evaluate.label_budget import compare_with_random
        from cropmeta.evaluate.protocol import confidence

        chosen = best_learner(results, target)
        if chosen is None:
            return []
        learner, k = chosen
        runs = [r for r in results["runs"] if r.get("target") == target and "metrics" in r]
        n_classes = max(len(r["classes"]) for r in runs)
        seeds = [results["seed"] + s for s in range(results["config"]["seeds"])]
        budget = k * n_classes
        cmp = compare_with_random(
            results["models"][target][learner], results["regions"][target], budget, seeds
        )
        results.setdefault("label_budget", {})[target] = cmp
        lines = [
            f"### Which fields to label: suggested vs random ({learner}, budget {budget})",
            "",
            "| choice | overall accuracy | macro-F1 | classes covered |",
            "|---|---:|---:|---:|",
        ]
        for choice in ("criterion", "random"):
            per_seed = [run[choice] for run in cmp["runs"]]
            oa = confidence([r["overall_accuracy"] for r in per_seed], (0.0, 1.0))
            f1 = confidence([r["macro_f1"] for r in per_seed], (0.0, 1.0))
            covered = sum(r["classes_covered"] for r in per_seed) / len(per_seed)
            name = "suggest-labels (k-center)" if choice == "criterion" else "random"
            lines.append(
                f"| {name} | {oa['mean']:.3f} | {f1['mean']:.3f} | {covered:.1f} of {n_classes} |"
            )
        gain = cmp["difference"]["macro_f1"]
        verdict = "beat" if gain > 0 else "do not beat"
        lines += [
            "",
            f"Over {len(seeds)} seeds the suggested fields {verdict} random ones in macro-F1 "
            f"({gain:+.3f}). The suggestion does not depend on the seed; random's spread includes "
            "which samples are drawn. Each choice is scored on all the region's other samples.",
            "",
        ]
        return lines

    return section


def diagnostics_section(results: dict) -> Section:
    """The warnings of the meta-learning literature, in plain language: task variability,
    adaptation gain, meta-overfitting and meta-underfitting."""

    def section(target: str, figures: Path) -> list[str]:
        from cropmeta.evaluate import diagnostics as dx
        from cropmeta.ingest.dataset import RegionArrays
        from cropmeta.models.bundle import load_config

        summary = results["summary"].get(target, {})
        chosen = best_learner(results, target)
        if chosen is None:
            return []
        k = str(chosen[1])
        fold = next(f for f in results["folds"] if f["target"] == target)
        learners = [m for m in results["config"]["learners"] if k in summary.get(m, {})]
        ours = scored_learners(results)
        baselines = {m: by_k[k] for m, by_k in summary.items() if m not in ours and k in by_k}
        model = results["models"][target][learners[0]]
        regions = {
            name: RegionArrays.load(results["regions"][name]) for name in [*fold["sources"], target]
        }
        distances = dx.class_conditional_distances(regions, load_config(model).normaliser)
        lines = [
            "### Diagnostics",
            "",
            "- **Task variability:** "
            + dx.task_variability_summary(distances, list(fold["sources"]), target),
        ]
        n_classes = len(regions[target].classes)
        before = baselines.get("source_only")
        reference = "source_only" if before else "chance level"
        before = before or dx.chance_level(n_classes)
        fit = {}
        for learner in learners:
            after = summary[learner][k]
            gap = dx.meta_fit_gap(results["training"][target][learner]["history"])
            fit[learner] = gap
            lines.append(
                f"- **{learner}, adaptation gain (K = {k}):** "
                + dx.adaptation_gain_sentence(after, before, reference)
            )
            lines.append(f"- **{learner}, meta-overfitting:** " + dx.meta_fit_gap_sentence(gap))
        under = dx.meta_underfitting({m: summary[m][k] for m in learners}, baselines)
        if baselines:
            lines.append("- **Meta-underfitting:** " + dx.meta_underfitting_sentence(under))
        results.setdefault("diagnostics", {})[target] = {
            "task_distances": distances.to_dict(),
            "meta_fit_gap": fit,
            "meta_underfitting": under,
        }
        return [*lines, ""]

    return section


def evaluate_catalog(
    catalog: str | Path | None,
    out: str | Path,
    cfg: EvaluationConfig | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    overwrite: bool = False,
    workers: int = 1,
    datasets: list[str | Path] | None = None,
) -> Path:
    """Evaluate the catalog's regions as ``cfg`` says and write the report into ``out``;
    returns the path of ``report.md``. ``workers`` processes share the meta-trainings and the
    draws (:mod:`cropmeta.evaluate.workers`; they are spawned, so a script calling this with
    ``workers`` > 1 needs the ``if __name__ == "__main__":`` guard).

    Instead of a catalog (``catalog`` None), labelled region ``datasets`` a user prepared with
    `cropmeta preprocess`: the held-out ones are ``cfg.targets`` (by region name), or each in
    turn with ``cfg.loro``; the report then has no map and no published results.

    ``out`` must not hold an input, nor be an existing folder that is not a cropmeta evaluation
    (unless ``overwrite``); an evaluation folder is reused (:func:`run_evaluation`). A run that
    fails on bad input removes the folder when it created it.
    """
    out = Path(out)
    cfg = cfg or EvaluationConfig()
    if datasets is not None:
        named = region_datasets(datasets)
        inputs = [*named.values(), cfg.taxonomy]
    else:
        catalog = Path(catalog)
        inputs = [catalog, *load_catalog(catalog).inputs(cfg.regions), cfg.taxonomy]
        named = None
    inputs = [p for p in inputs if p is not None]
    if missing := [p for p in inputs if not p.exists()]:
        where = "" if catalog is None else f" (named by the catalog {catalog})"
        raise InputError(missing[0], f"not found{where}")
    claim(out, "evaluation", inputs=inputs, overwrite=overwrite, in_place=True)
    with output_folder(out, "evaluation"):
        results = run_evaluation(catalog, out, cfg, seed, progress, workers, named)
        sections = [
            diagnostics_section(results),
            *([cv_section(results, cfg.cv_folds)] if cfg.cv_folds else []),
            *([map_section(catalog, results, out)] if catalog is not None else []),
            label_budget_section(results, out),
            *([published_section(catalog, results)] if catalog is not None else []),
        ]
        return write_report(results, out, sections)


def region_datasets(paths: list[str | Path]) -> dict[str, Path]:
    """Labelled region datasets by their region's name (each checked readable and labelled;
    two of one name are refused)."""
    named: dict[str, Path] = {}
    for path in map(Path, paths):
        name = RegionArrays.load(path, require_labels=True).name
        if name in named:
            raise InputError(path, f"region {name!r} again (also {named[name]})")
        named[name] = path
    return named
