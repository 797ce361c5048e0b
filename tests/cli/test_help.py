"""Every command's help reads the same way: upper-case argument names, no type placeholders on flags, every
option described, and the environment variable shown wherever an option reads one."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from roomscan.cli import app


def _commands(group, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    # Duck-typed: Typer may ship its own copy of click, so click's classes are not the ones to check against.
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(_commands(typer.main.get_command(app)))  # type: ignore[arg-type]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_is_consistent(path, command):
    for param in command.params:
        if param.param_type_name == "argument":
            assert param.help, f"argument {param.name} is not described"  # type: ignore[attr-defined]
        elif param.param_type_name == "option" and param.name != "help":
            assert param.help, f"option {param.opts} is not described"
            if param.envvar:
                assert param.show_envvar, f"option {param.opts} reads {param.envvar}: show it"
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    usage = result.output.split("Usage:", 1)[1].splitlines()[0]
    for param in command.params:
        if param.param_type_name == "argument":
            name = param.name.upper()
            assert name in usage, f"argument {param.name} is not upper case in {usage!r}"
            if param.nargs != 1:
                assert f"{name}..." in result.output


def test_options_that_read_the_environment_say_so():
    result = CliRunner().invoke(app, ["listings", "photos", "add", "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    for var in ("ROOMSCAN_MODEL", "ROOMSCAN_TAXONOMY", "ROOMSCAN_DEVICE", "ROOMSCAN_DATABASE_URL"):
        assert f"env var: {var}" in result.output


def test_a_commands_later_paragraphs_flow_like_its_first():
    """Typer keeps a docstring's line breaks after the first paragraph; ours flow to the terminal's width."""
    result = CliRunner().invoke(app, ["worker", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "(older than 10 minutes) and photos a stopped worker on this host" in result.output
