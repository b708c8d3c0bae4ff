"""The console's plumbing: rendering, the security headers, the sign-in cookie, CSRF, who may see what.

Every page and form goes through :class:`ConsoleRoute`, which

- renders a refusal as a page (the sign-in page for visitors, a 403 page for a missing group,
  the error's own status for a :class:`~sqlgate.errors.SqlgateError`), never as JSON;
- sets the cookie naming the browser's session (HttpOnly, SameSite=Strict, Secure unless the
  console is reached on a loopback address over plain HTTP, Path=/ui);
- answers a page opened from a link on another site, which arrives without that Strict cookie,
  with a page that opens the same address again from here (so the sign-in is neither lost nor replaced);
- adds a strict Content-Security-Policy (scripts, styles and fetches from the gateway only, no
  inline script or style, no framing) and the usual hardening headers, and ``no-store``.

Form posts must carry the session's CSRF token (:func:`checked_form`); a post without it, or from
another origin, is refused with 403 before anything happens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jinja2
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from sqlgate import __version__
from sqlgate.api.state import ApiState
from sqlgate.audit.stored import settings_trust, verify_stored
from sqlgate.audit.verify import VerifyReport
from sqlgate.config import is_loopback
from sqlgate.console.sessions import COOKIE, ConsoleSession, ConsoleSessions
from sqlgate.errors import SqlgateError
from sqlgate.identity.devissuer import DevIssuer
from sqlgate.identity.principal import Principal
from sqlgate.services import Services

PREFIX = "/ui"
VERIFIED_FOR = timedelta(minutes=1)  # the chain badge reuses a verification this recent
TEMPLATES = Path(__file__).parent / "templates"

CSP = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self'; "
    "img-src 'self' data:; "
    "connect-src 'self'; "
    "form-action 'self'; "
    "frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # no-referrer would make browsers send `Origin: null` on posts
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


class SignInNeeded(Exception):
    """The visitor has not signed in (or the sign-in ended): show the sign-in page."""


class Refused(Exception):
    """The visitor may not do this: a page saying why, with ``status``."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Console:
    """What the console keeps: the services it fronts, its sessions, templates and an HTTP client for issuers."""

    services: Services
    api: ApiState
    sessions: ConsoleSessions
    dev_issuer: DevIssuer | None = None
    templates: jinja2.Environment = field(
        default_factory=lambda: jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    )
    _http: httpx.AsyncClient | None = None
    _verifying: asyncio.Task[tuple[datetime, VerifyReport]] | None = None

    async def verify_chain(self, *, fresh: bool = False) -> tuple[datetime, VerifyReport]:
        """When the audit log was last verified, and the report: reused for a minute unless ``fresh``.

        The whole log is read, so pages asking at the same time share one verification, and a
        page load does not start another while a recent report exists.
        """
        task = self._verifying
        stale = task is None or (
            task.done()
            and (fresh or task.exception() is not None or datetime.now(UTC) - task.result()[0] > VERIFIED_FOR)
        )
        if task is None or stale:
            task = self._verifying = asyncio.create_task(self._verify(), name="sqlgate-console-verify")
        return await asyncio.shield(task)

    async def _verify(self) -> tuple[datetime, VerifyReport]:
        await self.services.audit.flush()
        checked = datetime.now(UTC)
        return checked, await verify_stored(self.services.store, settings_trust(self.services.settings).ring)

    @property
    def http(self) -> httpx.AsyncClient:
        """The client for issuers' discovery and token endpoints (made on first use)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        return self._http

    async def close(self) -> None:
        """Stop a verification under way; close the HTTP client."""
        if self._verifying is not None and not self._verifying.done():
            self._verifying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._verifying
        if self._http is not None:
            await self._http.aclose()


def console_of(request: Request) -> Console:
    """The console state on the app."""
    console: Console = request.app.state.console
    return console


async def current(request: Request) -> ConsoleSession | None:
    """The session this request's cookie names (read once per request), or None."""
    if not hasattr(request.state, "console_session"):
        request.state.console_session = await console_of(request).sessions.get(request.cookies.get(COOKIE))
    session: ConsoleSession | None = request.state.console_session
    return session


async def visitor(request: Request) -> ConsoleSession:
    """The browser's session; a new visitor's (its cookie set on the response) when it has none."""
    new: ConsoleSession | None = getattr(request.state, "console_cookie", None)
    if new is not None:
        return new
    session = await current(request)
    if session is None:
        session = console_of(request).sessions.visitor()
        request.state.console_cookie = session
    return session


async def signed_in(request: Request) -> tuple[ConsoleSession, Principal]:
    """The session and principal of a signed-in visitor, seen from this request's address; SignInNeeded otherwise."""
    session = await current(request)
    if session is None or session.principal is None:
        raise SignInNeeded
    return session, session.principal.with_source(client_address(request))


async def flash(request: Request, session: ConsoleSession, kind: str, text: str) -> None:
    """Show ``text`` once on the next page of ``session``."""
    await console_of(request).sessions.flash(session, kind, text)


def client_address(request: Request) -> str | None:
    """The caller's address, as the API records it."""
    return request.client.host if request.client else None


def in_groups(principal: Principal, groups: list[str]) -> bool:
    """True when ``principal`` is in one of ``groups``."""
    return bool(set(principal.groups) & set(groups))


def is_admin(services: Services, principal: Principal) -> bool:
    """Member of ``api.admin_groups`` (the groups the API's session endpoints require)."""
    return in_groups(principal, services.settings.api.admin_groups)


def is_auditor(services: Services, principal: Principal) -> bool:
    """Member of ``api.auditor_groups`` (the groups the API's audit endpoint requires)."""
    return in_groups(principal, services.settings.api.auditor_groups)


def require(allowed: bool, what: str, groups: list[str]) -> None:
    """Refused (403) unless ``allowed``; the message names the groups that may."""
    if not allowed:
        names = ", ".join(groups) or "(none configured)"
        raise Refused(f"{what} is for members of {names}.")


async def checked_form(request: Request, session: ConsoleSession) -> dict[str, str]:
    """The posted form's fields, after its CSRF token and origin are checked (Refused, 403, otherwise)."""
    origin = request.headers.get("origin")
    if origin is not None and origin not in _own_origins(request):
        raise Refused("This form was sent from another site, so it was refused.")
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    if not session.csrf_ok(fields.get("csrf_token")):
        raise Refused("This form is missing its security token (or the page is stale): reload the page and retry.")
    return fields


def _own_origins(request: Request) -> set[str]:
    """Where our forms are posted from: this host over either scheme (a proxy may end TLS), and ``public_url``."""
    origins = {f"{scheme}://{request.url.netloc}" for scheme in ("http", "https")}
    public = console_of(request).services.settings.public_url
    if public:
        parts = urlsplit(public)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


async def render(
    request: Request, template: str, *, status: int = 200, fragment: bool = False, **context: Any
) -> HTMLResponse:
    """The page ``template`` with the navigation, the signed-in user, CSRF token and waiting messages.

    A ``fragment`` (a part of a page htmx loads) leaves the waiting messages for the next page.
    """
    console = console_of(request)
    session = await visitor(request)
    principal = session.principal
    services = console.services
    page = console.templates.get_template(template).render(
        user=principal,
        csrf_token=session.csrf,
        messages=[] if fragment else await console.sessions.take_messages(session),
        is_admin=principal is not None and is_admin(services, principal),
        is_auditor=principal is not None and is_auditor(services, principal),
        path=request.url.path,
        version=__version__,
        **context,
    )
    return HTMLResponse(page, status_code=status)


def redirect(path: str) -> RedirectResponse:
    """303 See Other to ``path`` (after a form post, or to the sign-in page)."""
    return RedirectResponse(path, status_code=303)


def secure_cookie(request: Request) -> bool:
    """Secure unless this is plain HTTP on a loopback address (a browser would drop a Secure cookie there)."""
    host = request.url.hostname or ""
    return request.url.scheme == "https" or not is_loopback(host)


def set_session_cookie(request: Request, response: Response, session: ConsoleSession) -> None:
    """Point the browser at ``session``."""
    response.set_cookie(
        COOKIE,
        session.cookie,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request),
    )


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ConsoleRoute(APIRoute):
    """A console route: refusals become pages, and every response gets the cookie and security headers."""

    def get_route_handler(self) -> Handler:
        """The route's handler, wrapped."""
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            response: Response
            try:
                if _arrived_from_another_site(request):
                    response = _continue_here(request)
                else:
                    response = await handler(request)
            except SignInNeeded:
                response = _to_sign_in(request)
            except Refused as exc:
                response = await _refusal(request, exc.status, "Not allowed", exc.message)
            except SqlgateError as exc:
                response = await _refusal(request, exc.http_status, "Refused", str(exc))
            new_session = getattr(request.state, "console_cookie", None)
            if new_session is not None:
                set_session_cookie(request, response, new_session)
            response.headers.update(SECURITY_HEADERS)
            response.headers.setdefault("cache-control", "no-store")
            return response

        return console_handler


def _arrived_from_another_site(request: Request) -> bool:
    """A page opened from a link on another site: the browser kept the SameSite=Strict cookie back.

    Answering as to a signed-out visitor would replace the sign-in cookie, so such a request gets a
    page that opens the same address again, from this site, cookie included. The issuer's redirect
    back to the sign-in callback is exempt: it needs no session.
    """
    return (
        request.method == "GET"
        and request.headers.get("sec-fetch-site") == "cross-site"
        and COOKIE not in request.cookies
        and request.url.path != f"{PREFIX}/login/callback"
        and not request.url.path.startswith(f"{PREFIX}/static/")
    )


def _continue_here(request: Request) -> Response:
    """A page that opens this request's address again from this site (it sets no cookie, shows no one)."""
    query = request.url.query
    target = request.url.path + (f"?{query}" if query else "")  # a path, never another host
    page = (
        console_of(request)
        .templates.get_template("continue.html")
        .render(
            user=None,
            csrf_token="",
            messages=[],
            is_admin=False,
            is_auditor=False,
            path=request.url.path,
            version=__version__,
            title="sqlgate",
            target=target,
        )
    )
    return HTMLResponse(page)


async def _refusal(request: Request, status: int, title: str, message: str) -> Response:
    """The error page; for htmx, in place of the page's main part (whatever part the request meant to swap)."""
    response = await render(request, "error.html", status=status, title=title, message=message)
    if request.headers.get("hx-request") == "true":
        response.headers.update({"hx-retarget": "#main", "hx-reselect": "#main", "hx-reswap": "outerHTML"})
    return response


def _to_sign_in(request: Request) -> Response:
    """The sign-in page for a visitor: a redirect, or for htmx an ``HX-Redirect`` (a swap would nest the page)."""
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"hx-redirect": f"{PREFIX}/login"})
    return redirect(f"{PREFIX}/login")
