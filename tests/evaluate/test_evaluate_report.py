"""The evaluation report's files from hand-made results (issue 20, item 7): ``report.html``
self-contained with its figures embedded, the summary across regions first, and one K drawn as
bars rather than one-point curves."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer

from cropmeta.evaluate.outputs import to_html, write_report
from cropmeta.evaluate.plots import shots_figure
from cropmeta.evaluate.protocol import summarise
from cropmeta.learners.meta_train import MetaTrainConfig

LEARNERS = ["maml", "protonet"]
METHODS = [*LEARNERS, "random_forest", "best"]
CLASSES = ["maize", "wheat", "rye"]


def _results(shots: list[int]) -> dict:
    """Results as ``run_evaluation`` leaves them, two regions with three draws per K: what
    ``write_report`` reads."""
    runs = []
    for t, target in enumerate(("north", "south")):
        for k in shots:
            for seed in range(3):
                for i, method in enumerate(METHODS):
                    score = 0.4 + 0.1 * i + 0.02 * k + 0.01 * seed - 0.05 * t
                    confusion = [[4, 1, 0], [0, 5, 0], [1, 0, 4 - seed]]
                    runs.append({
                        "target": target, "method": method, "shots": k, "seed": seed,
                        "classes": CLASSES, "seconds": 0.1,
                        "metrics": {"overall_accuracy": score + 0.05, "macro_f1": score,
                                    "kappa": score - 0.1},
                        "details": {"confusion": confusion},
                    })  # fmt: skip
    history = {"iteration": [0, 10, 20], "loss": [1.2, 0.9, 0.7], "acc": [0.4, 0.5, 0.6]}
    return {
        "config": {
            "learners": LEARNERS, "shots": shots, "seeds": 3, "loro": True,
            "meta": MetaTrainConfig().model_dump(),
        },
        "seed": 0,
        "environment": {"threads": 1},
        "folds": [{"target": "north", "sources": ["south"]},
                  {"target": "south", "sources": ["north"]}],
        "runs": runs,
        "summary": summarise(runs),
        "training": {
            target: {m: {"seconds": 1.0, "history": history} for m in LEARNERS}
            for target in ("north", "south")
        },
    }  # fmt: skip


def _image_sources(page: str) -> list[str]:
    sources = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                sources.append(dict(attrs)["src"])

    Collect().feed(page)
    return sources


def test_the_html_report_embeds_every_figure_the_markdown_links(tmp_path):
    write_report(_results([1, 5]), tmp_path)
    report = (tmp_path / "report.md").read_text()
    linked = re.findall(r"!\[[^]]*\]\((figures/[^)]+\.png)\)", report)
    assert len(linked) == 2 * (2 + 1 + 2)  # per region: two metrics, confusion, two learners
    page = (tmp_path / "report.html").read_text()
    assert 'src="figures/' not in page and "<script" not in page and "<link" not in page
    sources = _image_sources(page)
    prefix = "data:image/png;base64,"
    assert len(sources) == len(linked) and all(s.startswith(prefix) for s in sources)
    for src, link in zip(sources, linked, strict=True):
        assert base64.b64decode(src.removeprefix(prefix)) == (tmp_path / link).read_bytes()


def test_the_summary_across_regions_opens_the_report(tmp_path):
    write_report(_results([5]), tmp_path)
    lines = (tmp_path / "report.md").read_text().splitlines()
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[0] == "## Summary across the held-out regions"
    assert headings[1:] == ["## Held-out region: north", "## Held-out region: south"]


def test_a_missing_or_outside_figure_keeps_its_link(tmp_path):
    folder = tmp_path / "report"
    (folder / "figures").mkdir(parents=True)
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"\x89PNG not ours")
    page = to_html("![gone](figures/gone.png) ![other](../outside.png)", base=folder)
    assert _image_sources(page) == ["figures/gone.png", "../outside.png"]


def test_one_k_is_drawn_as_bars_with_their_intervals_several_as_curves():
    summary = _results([5])["summary"]["north"]
    ax = shots_figure(summary, LEARNERS, "macro_f1", "north").axes[0]
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    (errors,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    ranked = sorted(summary, key=lambda m: -summary[m]["5"]["macro_f1"]["mean"])
    assert [label.get_text() for label in ax.get_xticklabels()] == ranked
    entries = [summary[m]["5"]["macro_f1"] for m in ranked]
    assert [bar.get_height() for bar in bars] == [e["mean"] for e in entries]
    spans = np.array([seg[:, 1] for seg in errors.lines[2][0].get_segments()])
    assert spans == pytest.approx(np.array([(e["low"], e["high"]) for e in entries]))
    assert not [line for line in ax.lines if line.get_linestyle() in ("-", "--")]

    ax = shots_figure(_results([1, 5])["summary"]["north"], LEARNERS, "macro_f1", "n").axes[0]
    assert not ax.containers and len(ax.lines) == len(METHODS)
    assert all(list(line.get_xdata()) == [1, 5] for line in ax.lines)


def test_the_report_is_the_same_when_written_twice(tmp_path):
    for name in ("a", "b"):
        write_report(_results([5]), tmp_path / name)
    for path in sorted((tmp_path / "a").rglob("*")):
        twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
        assert path.is_dir() or path.read_bytes() == twin.read_bytes(), path.name
