"""Policy commands and just-in-time access requests.

Placeholder: the feature behind these commands has not landed yet; each
command says so and exits with code 3.
"""

from __future__ import annotations

import typer

from sqlgate.cli.common import not_ready

_LOOSE = {"allow_extra_args": True, "ignore_unknown_options": True}

policy_app = typer.Typer(help="Check, explain and test the policy file.", no_args_is_help=True)


@policy_app.command("check", context_settings=_LOOSE)
def policy_check() -> None:
    """Validate a policy file."""
    not_ready("policy check")


@policy_app.command("explain", context_settings=_LOOSE)
def policy_explain() -> None:
    """Explain the decision for an identity."""
    not_ready("policy explain")


@policy_app.command("test", context_settings=_LOOSE)
def policy_test() -> None:
    """Run expected decisions from a cases file."""
    not_ready("policy test")


def request() -> None:
    """File an access request (database, role, duration, reason)."""
    not_ready("request")


def requests() -> None:
    """List access requests."""
    not_ready("requests")


def approve() -> None:
    """Approve an access request."""
    not_ready("approve")


def deny() -> None:
    """Deny an access request."""
    not_ready("deny")


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.add_typer(policy_app, name="policy")
    app.command("request", context_settings=_LOOSE)(request)
    app.command("requests", context_settings=_LOOSE)(requests)
    app.command("approve", context_settings=_LOOSE)(approve)
    app.command("deny", context_settings=_LOOSE)(deny)
