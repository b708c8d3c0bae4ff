"""Policy commands (check, explain, test) and just-in-time access requests.

``request``, ``requests``, ``approve`` and ``deny`` live in :mod:`sqlgate.cli.requests`
(they call the gateway's HTTP API) and are registered here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from sqlgate.cli import requests as access_requests
from sqlgate.cli.common import ConfigOption, JsonOption, console, fail, print_json
from sqlgate.config import Settings, find_config, format_duration, load_settings
from sqlgate.errors import ConfigError
from sqlgate.identity.principal import Principal
from sqlgate.policy import CompiledPolicy, Decision, Explanation, Guardrails, explain, load_policy
from sqlgate.policy.cases import DEFAULT_ISSUER, CaseResult, load_cases, run_case
from sqlgate.policy.crosscheck import settings_warnings

policy_app = typer.Typer(help="Check, explain and test the policy file.", no_args_is_help=True)

PolicyOption = Annotated[
    Path | None,
    typer.Option("--policy", help="Policy file (default: policy_file of the settings).", show_default=False),
]


@policy_app.command("check")
def policy_check(
    file: Annotated[
        Path | None,
        typer.Argument(help="The policy file to validate (default: policy_file of the settings).", show_default=False),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Also warn about databases and roles these settings lack."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a policy file (default: the settings' policy_file); every mistake is listed with its path and line."""
    settings = load_settings(config) if config is not None else None
    if file is None:
        file, settings = _settings_policy_file(config)
    try:
        policy = load_policy(file)
    except ConfigError as exc:
        if as_json:
            print_json({"valid": False, "file": str(file), "problems": exc.problems or [exc.message]})
        else:
            console.print(f"[red]invalid:[/red] {escape(exc.message)}", highlight=False)
            for problem in exc.problems:
                console.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    warnings = settings_warnings(policy.source, settings) if settings is not None else []
    if as_json:
        print_json(
            {
                "valid": True,
                "file": str(file),
                "rules": len(policy.rules),
                "digest": policy.digest,
                "warnings": warnings,
            }
        )
        return
    console.print(f"[green]valid:[/green] {escape(str(file))} ({len(policy.rules)} rules)", highlight=False)
    for warning in warnings:
        console.print(f"  [yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)


@policy_app.command("explain")
def policy_explain(  # noqa: PLR0913, PLR0917 - one option per facet of the request
    subject: Annotated[str, typer.Option("--as", help="The caller's subject.", show_default=False)],
    database: Annotated[str, typer.Option("--db", help="Database alias.", show_default=False)],
    groups: Annotated[list[str] | None, typer.Option("--group", help="A group of the caller (repeat).")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Role asked for (default: the best granted).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="When, ISO 8601 (default: now; no offset means UTC).")] = None,
    source: Annotated[str | None, typer.Option("--from", help="The caller's source address.")] = None,
    claims: Annotated[list[str] | None, typer.Option("--claim", help="A token claim as key=value (repeat).")] = None,
    issuer: Annotated[str, typer.Option("--issuer", help="The caller's token issuer.")] = DEFAULT_ISSUER,
    policy_file: PolicyOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Explain the decision for an identity: the outcome, its reason, and every rule considered."""
    policy = _policy(policy_file, config)
    principal = Principal(subject, issuer, subject, groups=tuple(groups or ()), claims=_claims(claims or []))
    result = explain(policy, principal, database, role, _when(at), source, token_expires_at=None)
    if as_json:
        print_json(result.to_dict())
        return
    _print_decision(result.decision)
    _print_contributions(result)
    table = Table("rule", "effect", "role", "verdict", "why", title="rules considered", title_justify="left")
    for trace in result.rules:
        colour = {"applies": "green", "denies": "red"}.get(trace.verdict, "dim")
        table.add_row(
            escape(trace.rule),
            trace.effect,
            escape(trace.role or "*"),
            f"[{colour}]{trace.verdict}[/{colour}]",
            escape(trace.why),
        )
    console.print(table)


@policy_app.command("test")
def policy_test(
    cases_file: Annotated[Path, typer.Argument(help="The cases file (YAML).", show_default=False)],
    policy_file: PolicyOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run expected decisions from a cases file; exits 1 when any case does not match."""
    cases = load_cases(cases_file)
    policy = _policy(policy_file or cases.policy, config)
    results = [run_case(policy, case) for case in cases.cases]
    failed = sum(not r.passed for r in results)
    if as_json:
        print_json({"passed": len(results) - failed, "failed": failed, "results": [r.to_dict() for r in results]})
    else:
        _print_results(results)
    if failed:
        raise typer.Exit(1)


def _policy(path: Path | None, config: Path | None) -> CompiledPolicy:
    if path is None:
        path, _ = _settings_policy_file(config)
    return load_policy(path)


def _settings_policy_file(config: Path | None) -> tuple[Path, Settings]:
    """The policy_file of the settings found (see ``--verbose``), and those settings; fails clearly if none."""
    lookup = find_config(config)
    if lookup.path is None:
        looked_at = ", ".join(str(p) for p in lookup.looked_at)
        fail(f"no policy file: give the policy FILE, or a settings file with policy_file (looked at: {looked_at})")
    settings = load_settings(config)
    if settings.policy_file is None:
        fail(f"no policy file: give the policy FILE, or set policy_file in {lookup.path}")
    return settings.policy_file, settings


def _when(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        fail(f"--at {text!r} is not an ISO 8601 time (e.g. 2026-11-25T09:30:00+01:00)")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _claims(pairs: list[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--claim {pair!r} is not key=value")
        claims.setdefault(key, []).append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in claims.items()}


def _print_decision(decision: Decision) -> None:
    colour = {"allow": "green", "deny": "red"}.get(decision.outcome, "yellow")
    console.print(f"decision: [{colour}]{decision.outcome}[/{colour}] on {escape(decision.database)}", highlight=False)
    if decision.role:
        console.print(f"role:     {escape(decision.role)}", highlight=False)
    if decision.ttl is not None and decision.outcome != "deny":
        console.print(f"ttl:      {format_duration(decision.ttl)}", highlight=False)
    if decision.reason:
        console.print(f"reason:   {escape(decision.reason)}", highlight=False)
    if decision.matched_rules:
        console.print(f"rules:    {escape(', '.join(decision.matched_rules))}", highlight=False)
    if decision.guardrails and decision.guardrails.deny:
        console.print(f"refuses:  {', '.join(decision.guardrails.deny)} statements", highlight=False)
    if decision.guardrails:
        console.print(f"guardrails: {escape(_guardrails_text(decision.guardrails))}", highlight=False, soft_wrap=True)
    if decision.outcome != "deny":
        if decision.direct_login:
            login = "allowed (a plain database login through sqlgate creds / POST /v1/credentials)"
        else:
            login = (
                f"refused: rule {decision.direct_login_refused_by} carries masks or guardrails"
                " (use the proxy or /v1/query, or set direct_login: true on the rule)"
            )
        console.print(f"direct login: {escape(login)}", highlight=False, soft_wrap=True)


def _print_contributions(result: Explanation) -> None:
    """The combined masks, each with the rule whose function won, and each granting rule's guardrails."""
    if result.masks:
        console.print("masks (combined, the strictest function wins):", highlight=False)
        for source in result.masks:
            via = f" through {source.via}" if source.via else ""
            line = f"  {source.selector}={source.function}  (rule {source.rule}{via}"
            line += "".join(f"; overrides {function} of rule {rule}" for rule, function in source.overridden)
            console.print(escape(line + ")"), highlight=False, soft_wrap=True)
    if result.guardrails:
        console.print("guardrails by rule (combined above, the strictest wins):", highlight=False)
        for rule, guardrails in result.guardrails:
            console.print(f"  {escape(rule)}: {escape(_guardrails_text(guardrails))}", highlight=False, soft_wrap=True)


def _guardrails_text(guardrails: Guardrails) -> str:
    parts = [f"deny {', '.join(guardrails.deny)}" if guardrails.deny else "deny nothing"]
    parts.append("require_where" if guardrails.require_where else "no require_where")
    if guardrails.deny_functions:
        parts.append(f"deny_functions {', '.join(guardrails.deny_functions)}")
    if guardrails.deny_tables:
        parts.append(f"deny_tables {', '.join(guardrails.deny_tables)}")
    parts.append(f"mode {guardrails.mode}")
    return "; ".join(parts)


def _print_results(results: list[CaseResult]) -> None:
    table = Table("case", "expected", "got", "result")
    for result in results:
        expect = result.case.expect
        got = result.decision
        table.add_row(
            escape(result.case.name),
            escape(" ".join(filter(None, [expect.outcome, expect.role]))),
            escape(" ".join(filter(None, [got.outcome, got.role]))),
            "[green]ok[/green]" if result.passed else "[red]FAIL[/red]: " + escape("; ".join(result.mismatches)),
        )
    console.print(table)
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed", highlight=False)


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.add_typer(policy_app, name="policy")
    access_requests.register(app)
