"""An evaluation's files: ``results.json`` (everything, machine-readable), ``report.md`` (what
a person reads first, linking the PNG figures in ``figures/``), and the same report as
``report.html`` for a browser, with the figures embedded so it can be sent as one file."""

from __future__ import annotations

import base64
import json
import math
import mimetypes
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from cropmeta.errors import atomic_output
from cropmeta.evaluate.plots import plot_confusions, plot_shots, plot_training
from cropmeta.evaluate.report import (
    ensemble_line,
    headline_shots,
    recommendation,
    results_table,
    scored_learners,
    validation_choice,
)
from cropmeta.evaluate.summary import summary_lines

Section = Callable[[str, Path], list[str]]  # (target, figure folder) → Markdown lines


def _plain(value):
    """JSON-safe: NaN becomes null, numpy scalars become numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_json(results: dict, path: Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(_plain(results), indent=1), encoding="utf-8")


def labels_needed(by_k: dict, metric: str = "macro_f1", tolerance: float = 0.02) -> int:
    """The smallest K whose mean is within ``tolerance`` of the best K's: where more labels
    stop paying."""
    means = {int(k): e[metric]["mean"] for k, e in by_k.items()}
    best = max(means.values())
    return min(k for k, m in means.items() if m >= best - tolerance)


def _confusions(results: dict, target: str, k: int, methods: list[str]):
    runs = [r for r in results["runs"] if r.get("target") == target and r.get("shots") == k]
    runs = [r for r in runs if "details" in r and r["method"] in methods]
    if not runs:
        return {}, []
    classes = Counter(tuple(r["classes"]) for r in runs).most_common(1)[0][0]
    total: dict[str, np.ndarray] = {}
    for r in runs:
        if tuple(r["classes"]) == classes:
            m = np.asarray(r["details"]["confusion"])
            total[r["method"]] = total.get(r["method"], 0) + m
    return {m: total[m] for m in methods if m in total}, list(classes)


def _fold_section(results: dict, target: str, figures: Path) -> list[str]:
    cfg = results["config"]
    learners = scored_learners(results)
    summary = results["summary"].get(target, {})
    fold = next(f for f in results["folds"] if f["target"] == target)
    lines = [f"## Held-out region: {target}", "", f"Sources: {', '.join(fold['sources'])}.", ""]
    skipped = {r["shots"] for r in results["runs"] if r.get("target") == target and "skipped" in r}
    if skipped:
        lines += [
            f"Not enough labelled samples for K = {sorted(skipped)} (those draws skipped).",
            "",
        ]
    if not summary:
        return [*lines, "No method could be scored.", ""]
    ks = sorted({int(k) for by_k in summary.values() for k in by_k})
    k = headline_shots(ks)
    lines += [recommendation(summary, learners, k), ""]
    training = results.get("training", {}).get(target, {})
    lines += [validation_choice(summary, training, learners, k), ""]
    members = results.get("ensembles", {}).get(target, [])
    if line := ensemble_line(summary, members, learners, k):
        lines += [line, ""]
    best = max(
        summary, key=lambda m: summary[m].get(str(k), {}).get("macro_f1", {}).get("mean", -1)
    )
    lines += [
        f"Labels: **{best}** reaches within 0.02 macro-F1 of its best with "
        f"K = {labels_needed(summary[best])} labelled samples per class (evaluated: {ks}).",
        "",
        f"### Every method at K = {k} (mean [95 % CI] over {cfg['seeds']} draws)",
        "",
        *results_table(summary, learners, k),
        "",
    ]
    against = "vs K" if len(ks) > 1 else f"at K = {k}"  # one K: bars, not curves
    for metric in ("macro_f1", "overall_accuracy"):
        png = plot_shots(summary, learners, metric, target, figures / f"{target}-{metric}.png")
        lines += [f"![{metric} {against}]({png.parent.name}/{png.name})", ""]
    baselines = [m for m in summary if m not in learners and str(k) in summary[m]]
    rival = max(baselines, key=lambda m: summary[m][str(k)]["macro_f1"]["mean"], default=None)
    ours = [m for m in learners if m in summary and str(k) in summary[m]]
    lead = max(ours, key=lambda m: summary[m][str(k)]["macro_f1"]["mean"], default=None)
    shown = [m for m in (lead, rival) if m]
    matrices, classes = _confusions(results, target, k, shown)
    if matrices:
        png = plot_confusions(
            matrices,
            classes,
            f"{target}, K = {k}, summed over draws",
            figures / f"{target}-confusion.png",
        )
        lines += [f"![confusion matrices]({png.parent.name}/{png.name})", ""]
    lines += [
        "### Meta-training",
        "",
        "| learner | seconds | iterations logged |",
        "|---|---:|---:|",
    ]
    for learner, info in results["training"].get(target, {}).items():
        history = info["history"]
        lines.append(f"| {learner} | {info['seconds']:.1f} | {len(history.get('iteration', []))} |")
        if history.get("iteration"):
            png = plot_training(history, figures / f"{target}-training-{learner}.png")
            lines.append(f"\n![training {learner}]({png.parent.name}/{png.name})\n")
    return [*lines, ""]


def meta_training_line(meta: dict) -> str:
    """How the meta-learners were trained: task shape, validation tasks, simulated regions."""
    if meta.get("val_regions"):
        val = f"tasks from the held-out source region(s) {', '.join(meta['val_regions'])}"
    else:
        val = f"tasks from a {meta['val_share']:.0%} share of every source region's samples"
    aug = meta.get("augment") or {}
    sim = (
        f"±{aug['shift_days']} days of phenology shift, band gain ±{aug['gain']:g}, offset "
        f"±{aug['offset']:g} per task"
        if any(aug.values())
        else "off"
    )
    return (
        f"Meta-training: {meta['n_way']}-way {meta['k_shot']}-shot tasks with {meta['q_query']} "
        f"queries per class, {meta['iterations']} iterations; validation {val}; simulated "
        f"regions (task augmentation): {sim}."
    )


def training_noise_line(results: dict) -> str:
    """What the confidence intervals do not cover: every model is trained once."""
    threads = results.get("environment", {}).get("threads")
    where = f"seed {results['seed']}" + (f", {threads} torch threads" if threads else "")
    return (
        f"Every model (meta-learners and the baselines' source classifier) is trained once "
        f"({where}): the confidence intervals cover the support/query draws, not training noise, "
        "which on a shifted target can move a figure more than the draws do (another seed or "
        "thread count, docs/studies/simulated-regions-and-class-heads.md). Before concluding, "
        "pool runs with other `--seed`s (`benchmarks/seed_pool.py`)."
    )


def write_report(results: dict, out: str | Path, sections: list[Section] | None = None) -> Path:
    """Write ``results.json``, ``report.md``, ``report.html`` and ``figures/*.png`` into ``out``.

    ``sections`` add Markdown per held-out region (diagnostics, map preview, label budget),
    each given the region's name and the figure folder; they may add their figures to
    ``results`` too, which is written last.
    """
    out = Path(out)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    _write_json(results, out / "results.json")  # first: a failing section loses no runs
    cfg = results["config"]
    lines = [
        "# cropmeta evaluation",
        "",
        f"Learners: {', '.join(cfg['learners'])}; K = {cfg['shots']} labelled samples per class; "
        f"{cfg['seeds']} support/query draws per K, shared by every method; "
        f"{'leave-one-region-out' if cfg['loro'] else 'the catalog split'}. The held-out region "
        "is never used for meta-training, model selection or normalisation. Bold: meta-learners; "
        "the others are baselines fitted on the same support samples.",
        "",
        training_noise_line(results),
        "",
        meta_training_line(cfg["meta"]),
        "",
        *summary_lines(results),
    ]
    for fold in results["folds"]:
        lines += _fold_section(results, fold["target"], figures)
        for section in sections or []:
            lines += section(fold["target"], figures)
    _write_json(results, out / "results.json")  # again: the sections add results
    markdown = "\n".join(lines) + "\n"
    with atomic_output(out / "report.md") as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    with atomic_output(out / "report.html") as tmp:
        tmp.write_text(to_html(markdown, base=out), encoding="utf-8")
    return out / "report.md"


_STYLE = """body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;
line-height:1.45;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em}td{text-align:right}td:first-child{text-align:left}
tr:nth-child(even){background:#f6f6f6}img{max-width:100%}code{background:#f2f2f2;padding:0 .2em}"""


def _embedded_image(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Render an image with its file inlined as a ``data:`` URI when it is an image file inside
    ``env["base"]`` (the report's folder); any other link (remote, outside, missing) is kept."""
    token = tokens[idx]
    base = env.get("base")
    src = str(token.attrGet("src") or "")
    if base is not None and not urlsplit(src).scheme:
        path = (Path(base) / unquote(src)).resolve()
        kind, _ = mimetypes.guess_type(path.name)
        inside = path.is_relative_to(Path(base).resolve())
        if inside and kind and kind.startswith("image/") and path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            token.attrSet("src", f"data:{kind};base64,{data}")
    return renderer.image(tokens, idx, options, env)


_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
_MARKDOWN.add_render_rule("image", _embedded_image)


def to_html(markdown: str, title: str = "cropmeta evaluation", base: Path | None = None) -> str:
    """A self-contained HTML page of the Markdown report: inline style, and the images the
    Markdown links relative to ``base`` (the report's folder) embedded, so the page can be sent
    as one file; without ``base`` the links stay as they are.

    markdown-it-py (CommonMark with tables) renders it; raw HTML in the text stays escaped.
    """
    body = _MARKDOWN.render(markdown, {"base": base})
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}</body>\n"
        "</html>\n"
    )
