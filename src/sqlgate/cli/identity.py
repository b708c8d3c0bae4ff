"""Identity commands: `token` prints a token, `login` signs a person in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from sqlgate.cli.common import ConfigOption, JsonOption, err_console, print_json
from sqlgate.config import Settings, load_settings, parse_duration


def _ttl(value: str) -> str:
    try:
        parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


IssuerOption = Annotated[
    str | None,
    typer.Option("--issuer", help="Issuer URL from identity.issuers (default: the only one, or the last used)."),
]


def token(  # noqa: PLR0913, PLR0917 # one Typer option per parameter
    config: ConfigOption = None,
    user: Annotated[str | None, typer.Option("--user", help="Mint a dev-issuer token for this user.")] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="Group of the dev-issuer token (repeatable).")
    ] = None,
    ttl: Annotated[str, typer.Option("--ttl", callback=_ttl, help="Lifetime of a dev-issuer token.")] = "15m",
    aws: Annotated[bool, typer.Option("--aws", help="Sign an AWS IAM token with your AWS credentials.")] = False,
    issuer: IssuerOption = None,
    json: JsonOption = False,
) -> None:
    """Print an identity token: a dev-issuer token (--user), an AWS IAM token (--aws), or your login's token.

    For scripts: PGPASSWORD=$(sqlgate token) psql "host=127.0.0.1 port=6543 dbname=demo"
    """
    settings = load_settings(config)
    if user is not None:
        value, source = _dev_token(settings, user, group or [], ttl), "dev"
        expires = _expiry(value)
    elif aws:
        value, source, expires = _aws_token(settings), "aws", None
    else:
        from sqlgate.identity.client import cached_login  # noqa: PLC0415 # keeps start-up fast

        login = cached_login(settings, issuer)
        value, source, expires = login.access_token, login.issuer, login.expires_at
    if json:
        when = None if expires is None else datetime.fromtimestamp(expires, UTC).isoformat()
        print_json({"token": value, "source": source, "expires_at": when})
    else:
        print(value)


def _expiry(token: str) -> float | None:
    from sqlgate.identity.jwt import parse  # noqa: PLC0415

    exp = parse(token).claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def _dev_token(settings: Settings, user: str, groups: list[str], ttl: str) -> str:
    from sqlgate.identity.devissuer import mint_dev_token  # noqa: PLC0415

    if not settings.identity.dev_issuer:
        err_console.print("note: identity.dev_issuer is off in these settings; the gateway will not accept this token")
    try:
        return mint_dev_token(settings, user, groups, parse_duration(ttl))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _aws_token(settings: Settings) -> str:
    try:
        import boto3  # type: ignore[import-untyped]  # noqa: PLC0415 # optional client dependency
    except ImportError:
        raise typer.BadParameter("--aws needs boto3 (pip install boto3)") from None
    from sqlgate.identity.awstoken import make_aws_token  # noqa: PLC0415
    from sqlgate.identity.deployment import resolve  # noqa: PLC0415

    aws = resolve(settings, create=False).identity.aws
    if aws.server_id is None:
        raise typer.BadParameter(
            "the gateway's id is not known here: set public_url (the gateway's URL) or identity.aws.server_id "
            "to the identity.deployment_id that `sqlgate config show` prints on the gateway"
        )
    return make_aws_token(boto3.Session(), aws.server_id, aws.sts_endpoint, aws.region)


def login(
    config: ConfigOption = None,
    issuer: IssuerOption = None,
    browser: Annotated[
        bool, typer.Option("--browser", help="Use the browser (authorization code + PKCE) even if device flow works.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Sign in with your identity provider (device flow, or the browser on a loopback redirect)."""
    from sqlgate.identity.login import run_login  # noqa: PLC0415

    settings = load_settings(config)
    result = run_login(
        settings, issuer, prefer_browser=browser, prompt=lambda p: err_console.print(p.text, highlight=False)
    )
    expires = datetime.fromtimestamp(result.expires_at, UTC).isoformat() if result.expires_at else None
    if json:
        print_json({"issuer": result.issuer, "subject": result.subject, "expires_at": expires})
    else:
        print(f"signed in to {result.issuer} as {result.subject}" + (f" until {expires}" if expires else ""))


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.command("token")(token)
    app.command("login")(login)
