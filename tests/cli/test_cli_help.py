"""Every command's --help says what each option does, with its default (issue 20)."""

import re

import typer

from cropmeta.cli.main import app

#: rich reads "[word ...]" as a markup tag and drops it from --help: defaults must not look so
SWALLOWED = re.compile(r"\[[A-Za-z/#@][^\]]*\]")


def commands() -> dict:
    group = typer.main.get_command(app)
    return dict(group.commands)


def test_no_help_text_is_swallowed_as_markup():
    hidden = [
        f"{name} {param.opts[0]}: {param.help}"
        for name, command in commands().items()
        for param in command.params
        # typer carries its own copy of click: ask the parameter, not isinstance
        if param.param_type_name == "option" and param.help and SWALLOWED.search(param.help)
    ]
    assert not hidden, hidden


def test_the_swallowing_check_can_fail():
    assert SWALLOWED.search("First day of year of the grid [catalog season or 60].")
    assert not SWALLOWED.search("Grid step in days (default: 10). Range [1, 120].")


def test_meta_training_options_are_the_same_flags_in_meta_train_and_evaluate():
    """One declaration (cli/options.with_meta_options): same flags, defaults and help."""

    def meta_options(name: str) -> dict:
        command = commands()[name]
        return {
            p.name: (p.opts[0], p.default, p.help)
            for p in command.params
            if p.param_type_name == "option" and p.name in META
        }

    from cropmeta.cli.options import _meta_parameters

    META = set(_meta_parameters(False))
    assert meta_options("meta-train") == meta_options("evaluate")
    assert len(meta_options("evaluate")) == len(META)
    assert "--task-shots" in [p.opts[0] for p in commands()["evaluate"].params]


def test_every_command_shows_an_example_that_parses():
    """Each --help ends with an example (cli/main.EXAMPLES) whose options the command takes."""
    import shlex

    from cropmeta.cli.main import EXAMPLES

    for name, command in commands().items():
        assert command.epilog == f"Example: {EXAMPLES[name]}", name
        words = shlex.split(EXAMPLES[name])
        assert words[:2] == ["cropmeta", name]
        command.make_context(name, words[2:])  # unknown options or bad values raise


def test_region_means_one_thing_in_every_command():
    """--region always names one region, given by its region dataset or, where the command reads
    a catalog (or writes a world), by its name there: one declaration (cli/options.region_help)."""
    from cropmeta.cli.options import REGION_DATASET

    helps = {
        name: param.help
        for name, command in commands().items()
        for param in command.params
        if param.param_type_name == "option" and "--region" in param.opts
    }
    assert set(helps) == {"synth", "preprocess", "meta-train", "adapt", "evaluate"}
    for name, text in helps.items():
        role, how, _ = text.partition(": its ")
        assert how and "region" in role.lower(), (name, text)
    for name in ("meta-train", "adapt", "evaluate"):  # the commands that read datasets
        assert helps[name].endswith(f"{REGION_DATASET}."), name
    assert "its name in --catalog" in helps["evaluate"] and "--catalog" in helps["preprocess"]


def test_preprocess_refuses_a_region_without_its_catalog(cli, tmp_path):
    res = cli("preprocess", "--region", "poltava", "--out", tmp_path / "p.zarr")
    assert res.exit_code == 2 and "--region" in res.stderr and "--catalog" in res.stderr
    assert not (tmp_path / "p.zarr").exists()
