"""`--config run.yaml` on meta-train and evaluate: a file of options, the command line wins."""

import json

from checks import assert_one_line_error, each


def test_meta_train_reads_its_options_from_a_file(cli, regions, catalog, tmp_path):
    sources = [regions[r.name] for r in catalog.sources()]
    run = tmp_path / "run.yaml"
    run.write_text(
        "algorithm: protonet\niterations: 3\ntask-ways: 2\ntask_shots: 1\nqueries: 2\n"
        "val_every: 1\ncheckpoint_every: 0\n"
    )
    out = tmp_path / "m"
    args = [*each("--region", sources), "--out", out, "--config", run, "--iterations", "2"]
    res = cli("meta-train", *args)
    assert res.exit_code == 0, res.output
    recorded = json.loads((out / "config.json").read_text())
    cfg = recorded["history"]["config"]  # the resolved settings, in the model
    assert (cfg["algorithm"], cfg["n_way"], cfg["k_shot"], cfg["q_query"]) == ("protonet", 2, 1, 2)
    assert cfg["iterations"] == 2  # the command line wins over the file


def test_an_unknown_option_in_the_file_is_one_line(cli, regions, catalog, tmp_path):
    run = tmp_path / "run.yaml"
    run.write_text("iterations: 3\nitterations: 4\n")
    out = tmp_path / "m"
    source = regions[catalog.sources()[0].name]
    res = cli("meta-train", "--region", source, "--out", out, "--config", run)
    assert_one_line_error(res, out, "unknown option 'itterations'")
    run.write_text("- a list\n")
    res = cli("evaluate", "--catalog", "c.yaml", "--out", out, "--config", run)
    assert_one_line_error(res, out, "expected a YAML mapping")
