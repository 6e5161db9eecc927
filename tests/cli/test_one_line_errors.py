"""Every refusal is one line, never the option parser's usage box (issue 17, "more than one
line"): wrong learner settings, methods and counts each give ``error: --OPTION: PROBLEM``."""

from __future__ import annotations

import pytest
from checks import assert_one_line_error


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "nope=1"], "--set: 'nope' is no setting of maml"),
        (["--set", "adapt_steps=abc"], "--set: "),
        (["--set", "fine_tune_steps=-3"], "--set: "),
        (["--method", "nope"], "--method: 'nope' is not one of"),
        (["--method", "maml", "--transductive", "soft_kmeans"], "--method: method 'maml+soft"),
        (["--method", "anil"], "--method: method 'anil': the learner (maml)"),
        (["--shots", "-1"], "--shots: Input should be greater than or equal to 1"),
        (["--cv", "1"], "--cv: Input should be greater than or equal to 2"),
    ],
)
def test_adapt_refusals(cli, meta_model, regions, catalog, tmp_path, args, fragment):
    out = tmp_path / "adapted"
    region = regions[catalog.targets()[0].name]
    res = cli("adapt", "--model", meta_model, "--region", region, "--out", out, *args)
    assert_one_line_error(res, out, fragment)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--seeds", "0"], "--seeds: Input should be greater than or equal to 1"),
        (["--shots", "-3"], "--shots: Input should be greater than or equal to 1"),
        (["--shots", "0"], "--shots: Input should be greater than or equal to 1"),
        (["--iterations", "0"], "--iterations: Input should be greater than or equal to 1"),
        (["--learner", "mamll"], "--learner: 'mamll' is not one of"),
        (["--set", "nope=1"], "--set: 'nope' is no setting of"),
    ],
)
def test_evaluate_refusals(cli, world, tmp_path, args, fragment):
    out = tmp_path / "evaluation"
    res = cli("evaluate", "--catalog", world, "--out", out, *args)
    assert_one_line_error(res, out, fragment)


def test_a_missing_option_and_an_unknown_one_are_one_line(cli, tmp_path):
    out = tmp_path / "model"
    assert_one_line_error(cli("meta-train", "--out", out), out, "--region: Missing option")
    res = cli("meta-train", "--region", "a.zarr", "b.zarr", "--out", out)  # --region repeats
    assert_one_line_error(res, out, "unexpected extra argument(s) (b.zarr)")
    res = cli("map", "--model", "m", "--tiles", "t", "--out", out, "--colour", "red")
    assert_one_line_error(res, out, "No such option: --colour")


def test_the_help_still_prints(cli):
    res = cli("map", "--help")
    assert res.exit_code == 0 and "--block" in res.stdout and "16<=x<=8192" in res.stdout
