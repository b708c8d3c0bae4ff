"""``sqlgate config``: validate the settings file, print its JSON Schema, show the effective settings."""

from __future__ import annotations

import typer

from sqlgate.cli.common import ConfigOption, JsonOption, console, err_console, print_json
from sqlgate.config import config_path, json_schema, load_settings
from sqlgate.errors import ConfigError

config_app = typer.Typer(help="Check and describe the settings file.", no_args_is_help=True)


@config_app.command("validate")
def validate(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Check the settings file; every mistake is listed with its path and line."""
    path = config_path(config)
    try:
        load_settings(config)
    except ConfigError as exc:
        if as_json:
            print_json({"valid": False, "file": str(path) if path else None, "problems": exc.problems or [exc.message]})
        else:
            console.print(f"[red]invalid:[/red] {exc.message}", highlight=False)
            for problem in exc.problems:
                console.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        print_json({"valid": True, "file": str(path) if path else None, "problems": []})
    else:
        console.print(f"[green]valid:[/green] {path}", highlight=False)


@config_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the settings file (for editors and CI)."""
    print_json(json_schema())


@config_app.command("show")
def show(config: ConfigOption = None) -> None:
    """Print the effective settings (file + environment + defaults) as JSON; secrets are never shown.

    ``identity.deployment_id`` (this gateway's name in tokens), every issuer's ``audience`` and
    ``identity.aws.server_id`` are shown as the gateway uses them; nothing is written.
    """
    from sqlgate.identity.deployment import ID_FILE, resolve  # noqa: PLC0415 - keeps --help fast

    settings = load_settings(config)
    effective = resolve(settings, create=False)  # a damaged id file is a ConfigError, printed by main()
    if effective.identity.deployment_id is None:
        err_console.print(
            f"note: identity.deployment_id is generated into {settings.data_dir / ID_FILE} at the gateway's "
            "first start (or set public_url)",
            highlight=False,
        )
    print_json(effective.model_dump(mode="json"))


def register(app: typer.Typer) -> None:
    """Add ``config`` to the command line."""
    app.add_typer(config_app, name="config")
