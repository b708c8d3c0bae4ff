"""Sign-in and sign-out pages: the dev issuer's form (only while it is on), "Sign in with <issuer>" otherwise.

Either way the console verifies a token exactly as the API does
(``services.access.authenticate``, audited as ``auth.success`` or ``auth.failure`` with
protocol ``console``), keeps the principal in a new server-side session, and forgets the
token. The dev form mints its token with the dev issuer's key, for loopback visitors only
(like the dev issuer's own token endpoint).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Request, Response

from sqlgate.config import is_loopback
from sqlgate.console import oidc
from sqlgate.console.sessions import LOGIN_COOKIE, LOGIN_LIFETIME
from sqlgate.console.web import (
    PREFIX,
    ConsoleRoute,
    Refused,
    checked_form,
    client_address,
    console_of,
    current,
    redirect,
    render,
    secure_cookie,
    visitor,
)
from sqlgate.errors import IdentityError
from sqlgate.identity.principal import Principal

DEV_SIGN_IN_LIFETIME = timedelta(hours=8)
CALLBACK = f"{PREFIX}/login/callback"

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)


def _issuer_choices(request: Request) -> list[tuple[int, str]]:
    """(index, name shown) of each issuer a person can sign in with."""
    issuers = oidc.sign_in_issuers(console_of(request).services.settings)
    return [(index, urlsplit(issuer.issuer).netloc or issuer.issuer) for index, issuer in enumerate(issuers)]


async def _login_page(
    request: Request, *, status: int = 200, error: str | None = None, user: str = "", signed_out: bool = False
) -> Response:
    console = console_of(request)
    return await render(
        request,
        "login.html",
        status=status,
        title="Sign in",
        issuers=_issuer_choices(request),
        dev_issuer=console.dev_issuer is not None,
        error=error,
        form_user=user,
        signed_out=signed_out,
    )


@router.get("/login")
async def login_page(request: Request) -> Response:
    """The sign-in page (signed-in visitors go to their access)."""
    session = await visitor(request)
    if session.principal is not None:
        return redirect(PREFIX)
    return await _login_page(request, signed_out="signed_out" in request.query_params)


@router.post("/login")
async def dev_sign_in(request: Request) -> Response:
    """Sign in through the dev issuer's form: User and Groups (comma-separated)."""
    console = console_of(request)
    session = await visitor(request)
    form = await checked_form(request, session)
    if console.dev_issuer is None:
        raise Refused("The built-in dev issuer is off on this gateway: sign in with your identity provider.", 404)
    source = client_address(request)
    if source is None or not is_loopback(source):
        raise Refused("The dev issuer signs in visitors on this machine only (a loopback address).")
    user = form.get("user", "").strip()
    groups = [g.strip() for g in form.get("groups", "").split(",") if g.strip()]
    try:
        token = console.dev_issuer.mint(user, groups, DEV_SIGN_IN_LIFETIME)
    except ValueError as exc:
        return await _login_page(request, status=400, error=f"Cannot sign in: {exc}.", user=user)
    principal = await console.services.access.authenticate(token, source, protocol="console")
    return await _signed_in(request, principal)


@router.get("/login/issuer/{index}")
async def start_sign_in(request: Request, index: Annotated[int, Path(ge=0, le=99)]) -> Response:
    """Send the browser to the issuer (authorization code with PKCE), marking it with a short-lived login cookie."""
    console = console_of(request)
    config = oidc.issuer_config(console.services.settings, index)
    meta = await oidc.discover(console.http, config.issuer)
    url, pending = oidc.authorization_url(meta, config, _callback_url(request))
    await console.sessions.start_login(pending)
    response = redirect(url)
    response.set_cookie(
        LOGIN_COOKIE,
        pending.binding,
        max_age=int(LOGIN_LIFETIME.total_seconds()),
        path=CALLBACK,
        httponly=True,
        samesite="lax",  # the issuer's redirect back is a navigation from another site
        secure=secure_cookie(request),
    )
    return response


@router.get("/login/callback")
async def finish_sign_in(request: Request) -> Response:
    """The issuer sends the browser back here with a code; the token it buys is verified, then dropped."""
    console = console_of(request)
    params = {key: value for key, value in request.query_params.items() if key in {"code", "state", "error"}}
    pending = await console.sessions.take_login(params.get("state", ""), request.cookies.get(LOGIN_COOKIE))
    if pending is None:
        return await _login_page(
            request, status=400, error="That sign-in was not started here (or took too long): retry."
        )
    settings = console.services.settings
    names = [issuer.issuer for issuer in oidc.sign_in_issuers(settings)]
    if pending.issuer not in names:
        return await _login_page(request, status=400, error="That identity provider is no longer configured.")
    config = oidc.issuer_config(settings, names.index(pending.issuer))
    try:
        meta = await oidc.discover(console.http, config.issuer)
        token = await oidc.exchange(console.http, meta, config, pending, params)
        principal = await console.services.access.authenticate(token, client_address(request), protocol="console")
    except IdentityError as exc:
        return await _login_page(request, status=401, error=f"Sign-in failed: {exc.message}")
    await _sign_in(request, principal)
    # A page, not a redirect: the browser came from the issuer's site, so it would not send the new
    # SameSite=Strict cookie along a redirect; the page's own navigation to /ui is same-site.
    response = await render(request, "signed_in.html", title="Signed in")
    response.delete_cookie(LOGIN_COOKIE, path=CALLBACK, httponly=True, samesite="lax", secure=secure_cookie(request))
    return response


@router.post("/logout")
async def sign_out(request: Request) -> Response:
    """End the console session (the cookie is cleared, the server forgets the principal)."""
    console = console_of(request)
    session = await visitor(request)
    await checked_form(request, session)
    await console.sessions.end(session)
    request.state.console_cookie = console.sessions.visitor()  # the old cookie value is forgotten
    return redirect(f"{PREFIX}/login?signed_out")


async def _signed_in(request: Request, principal: Principal) -> Response:
    await _sign_in(request, principal)
    return redirect(PREFIX)


async def _sign_in(request: Request, principal: Principal) -> None:
    """A new signed-in session for ``principal`` (its cookie set on the response), replacing the old one."""
    console = console_of(request)
    old = await current(request)
    request.state.console_cookie = await console.sessions.sign_in(old, principal)


def _callback_url(request: Request) -> str:
    """Where the issuer sends the browser back: ``public_url`` when set, else the address this request used."""
    public = console_of(request).services.settings.public_url
    base = public.rstrip("/") if public else f"{request.url.scheme}://{request.url.netloc}"
    return f"{base}{CALLBACK}"
