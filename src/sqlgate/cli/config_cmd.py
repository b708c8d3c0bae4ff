"""``sqlgate config``: validate the settings file, print its JSON Schema."""

from __future__ import annotations

import typer

from sqlgate.cli.common import ConfigOption, JsonOption, console, print_json
from sqlgate.config import config_path, json_schema, load_settings
from sqlgate.errors import ConfigError

config_app = typer.Typer(help="Check and describe the settings file.", no_args_is_help=True)


@config_app.command("validate")
def validate(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Check the settings file; every mistake is listed with its path and line."""
    path = config_path(config)
    try:
        load_settings(path)
    except ConfigError as exc:
        if as_json:
            print_json({"valid": False, "file": str(path), "problems": exc.problems or [exc.message]})
        else:
            console.print(f"[red]invalid:[/red] {exc.message}", highlight=False)
            for problem in exc.problems:
                console.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        print_json({"valid": True, "file": str(path) if path else None, "problems": []})
    else:
        console.print(f"[green]valid:[/green] {path or '(defaults and environment only)'}", highlight=False)


@config_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the settings file (for editors and CI)."""
    print_json(json_schema())


@config_app.command("show")
def show(config: ConfigOption = None) -> None:
    """Print the effective settings (file + environment + defaults) as JSON; secrets are never shown."""
    print_json(load_settings(config).model_dump(mode="json"))


def register(app: typer.Typer) -> None:
    """Add ``config`` to the command line."""
    app.add_typer(config_app, name="config")
