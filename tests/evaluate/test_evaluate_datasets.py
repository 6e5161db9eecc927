"""`cropmeta evaluate` on region datasets a user prepared, without a catalog (issue 20)."""

import json

import pytest
from checks import assert_one_line_error, each


@pytest.mark.slow
def test_evaluate_takes_region_datasets(cli, regions, catalog, tmp_path):
    target = catalog.targets()[0].name
    used = [regions[r.name] for r in catalog.sources()] + [regions[target]]
    out = tmp_path / "evaluation"
    res = cli(
        "evaluate", *each("--region", used), "--target", target, "--out", out,
        "--learner", "protonet", "--shots", "2", "--seeds", "1", "--iterations", "4",
        "--task-ways", "3", "--task-shots", "2", "--task-queries", "2",
        "--no-transductive", "--no-automatic", "--workers", "1",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    sources = [r.name for r in catalog.sources()]  # in the order given
    assert results["folds"] == [{"target": target, "sources": sources}]
    assert results["regions"][target] == str(regions[target])  # used where it is, not copied
    assert not (out / "regions").exists()
    assert "## Held-out region: " + target in (out / "report.md").read_text()


def test_region_datasets_need_a_split(cli, regions, catalog, tmp_path):
    out = tmp_path / "evaluation"
    used = [regions[r.name] for r in catalog.sources()]
    res = cli("evaluate", *each("--region", used), "--out", out)
    assert_one_line_error(res, out, "name the held-out ones (or --loro)")
    res = cli("evaluate", "--region", used[0], "--out", out)
    assert_one_line_error(res, out, "two or more region datasets")
    res = cli("evaluate", *each("--region", used), "--target", "atlantis", "--out", out)
    assert_one_line_error(res, out, "atlantis: not one of the region datasets")
