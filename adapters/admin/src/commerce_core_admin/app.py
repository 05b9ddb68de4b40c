"""The console as an ASGI app: sessions, CSRF, headers and the plumbing every page shares.
The pages themselves are in `commerce_core_admin.views`."""

from __future__ import annotations

import inspect
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import anyio.to_thread
import attrs
import jinja2
from limits.errors import StorageError
from limits.storage import Storage
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from commerce_core import CommerceError, FieldError, InvalidInput, Platform
from commerce_core_admin.sessions import HOST, Session, Sessions
from commerce_core_gateway import Authenticator, NotAuthenticated, Principal, Role
from commerce_core_gateway.problems import problem_for
from commerce_core_gateway.security import RateLimiter

__all__ = ["CSP", "HEADERS", "PACKAGE", "AdminConfig", "Console", "Page", "View", "plain"]

log = logging.getLogger("commerce_core.admin")

COOKIE = "commerce_admin"

#: No script at all, styles and images from the console only, forms posting back to it
#: only, and never inside another site's frame (clickjacking)
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")

PACKAGE = __name__.rsplit(".", 1)[0]


@attrs.frozen(kw_only=True)
class AdminConfig:
    """Who may sign in to the console, and how its sessions behave.

    ``session_secret`` signs the session cookies: 32 characters or more, the same for every
    worker of a deployment, and secret (whoever knows it can make a session). Changing it
    signs everyone out."""

    session_secret: str
    #: the API keys: an admin key signs in; any other key is refused
    api_keys: Mapping[str, Principal] = attrs.field(factory=dict)
    #: the host's own authentication, asked on every request (the gateway's hook): an
    #: admin `Principal` is let in without a key; a customer is refused; ``None`` (or
    #: `NotAuthenticated`) falls back to the console's own sign-in
    authenticate: Authenticator | None = None
    #: cookies only over HTTPS (``None``: when the request came over HTTPS; behind a proxy
    #: that ends TLS, set ``True``)
    secure_cookies: bool | None = None
    #: seconds a session lasts from its last request, and at most from sign-in
    session_idle: float = 30 * 60
    session_lifetime: float = 12 * 60 * 60
    #: failed sign-ins allowed per client address (``limits`` notation), and where counted
    sign_in_failure_limit: str = "10/minute"
    rate_limits_url: str = "memory://"
    #: the dashboard's low-stock list: SKUs with this many available units or fewer
    low_stock_threshold: int = 5
    #: the dashboard lists orders whose saga is still unfinished this many seconds after
    #: the order was placed (recovery could not finish them)
    stuck_after: float = 15 * 60
    #: where the console's "Sign out" goes for an admin the host's `authenticate` let in
    #: (their session is the host's: signing out of the console alone would sign them in
    #: again at the next page); ``None``: no "Sign out" for them
    sign_out_url: str | None = None
    max_form_bytes: int = 64 * 1024
    #: seconds a form's body may take to arrive once its headers are in (408 after)
    body_timeout: float = 10.0
    title: str = "commerce-core"

    def problems(self) -> list[FieldError]:
        errors = []
        if not isinstance(self.session_secret, str) or len(self.session_secret) < 32:
            errors.append(FieldError("session_secret", "must be at least 32 characters"))
        for principal in self.api_keys.values():
            if not isinstance(principal, Principal) or principal.problem() is not None:
                errors.append(FieldError("api_keys", f"{principal!r} is not a valid Principal"))
        if type(self.low_stock_threshold) is not int or self.low_stock_threshold < 0:
            errors.append(FieldError("low_stock_threshold", "must be an integer of 0 or more"))
        return errors


@attrs.define
class Page:
    """What a view gets: the platform, the request's parameters and form, the session, and
    a way to render a template or redirect within the console."""

    console: Console
    request: Request
    session: Session
    principal: Principal | None
    params: dict[str, str]
    query: dict[str, str]
    form: dict[str, list[str]] = attrs.field(factory=dict)

    @property
    def platform(self) -> Platform:
        return self.console.platform

    @property
    def config(self) -> AdminConfig:
        return self.console.config

    @property
    def base(self) -> str:
        return str(self.request.scope.get("root_path", "")).rstrip("/")

    def field(self, name: str, default: str = "") -> str:
        """A form field's first value, stripped."""
        values = self.form.get(name)
        return values[0].strip() if values else default

    def fields(self, name: str) -> list[str]:
        return self.form.get(name, [])

    def url(self, path: str, **query: str | None) -> str:
        """A console URL (``path`` from the console's root), with ``query`` when given."""
        wanted = {k: v for k, v in query.items() if v not in (None, "")}
        return f"{self.base}{path}" + (f"?{urllib.parse.urlencode(wanted)}" if wanted else "")

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.console.templates.get_template(template).render(
            page=self, csrf=self.session.csrf, title=self.config.title, **context)
        return HTMLResponse(html, status_code=status)

    def redirect(self, path: str, **query: str | None) -> Response:
        return RedirectResponse(self.url(path, **query), status_code=303)

    def error(self, error: CommerceError) -> tuple[int, str, list[str]]:
        """The status, message and field messages the API gives this error."""
        response = problem_for(error)
        body = json.loads(bytes(response.body))
        fields = [f"{item.get('field')}: {item.get('message')}"
                  for item in body.get("errors", []) if isinstance(item, dict)]
        return response.status_code, str(body.get("detail") or body.get("title")), fields


View = Callable[[Page], Response]


class Console:
    def __init__(self, platform: Platform, config: AdminConfig) -> None:
        errors = config.problems()
        if errors:
            raise InvalidInput("invalid admin console configuration", errors)
        self.platform = platform
        self.config = config
        self.sessions = Sessions(config.session_secret,
                                 idle=config.session_idle, lifetime=config.session_lifetime)
        self.keys = {self.sessions.tag(key): principal
                     for key, principal in config.api_keys.items()}
        self.limiter = RateLimiter(config.rate_limits_url)
        self.failure_limit = self.limiter.parse(config.sign_in_failure_limit)
        self._auth_pool = anyio.CapacityLimiter(8)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader(PACKAGE, "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
            lstrip_blocks=True)
        self.templates.filters["money"] = str
        self.templates.filters["when"] = _when

    # -- who is asking ----------------------------------------------------------------------

    async def _host_principal(self, request: Request) -> Principal | None:
        hook = self.config.authenticate
        if hook is None:
            return None
        try:
            found: object = hook(request) if _is_async(hook) else await (
                anyio.to_thread.run_sync(hook, request, limiter=self._auth_pool))
            if isinstance(found, Awaitable):
                found = await found
        except NotAuthenticated:
            return None
        if found is not None and (not isinstance(found, Principal)
                                  or found.problem() is not None):
            raise TypeError(f"the host's authenticate returned {found!r}")
        return found

    def key_principal(self, session: Session | None) -> Principal | None:
        if session is None or session.who is None or not session.who.startswith("key:"):
            return None
        principal = self.keys.get(session.who[4:])
        return principal if principal is not None and principal.role is Role.ADMIN else None

    def _revocation(self, session: Session) -> str:
        return f"commerce-admin-signed-out:{session.id}"

    def revoke(self, session: Session) -> bool:
        """Sign a session out for good: recorded in the rate limits' storage (shared by
        every worker and server when it is Redis; a worker's own memory otherwise) until
        the session could not be used any more anyway. Asked whatever the limits' breaker
        says (a sign-out is rare and must not be lost to a blip), three times; false when it
        could not be recorded (logged): the caller keeps the session and says so."""
        storage = self.limiter.storage
        if not isinstance(storage, Storage):
            return True
        key = self._revocation(session)
        lifetime = max(1, int(self.config.session_lifetime))
        for attempt in range(3):
            try:
                storage.incr(key, expiry=lifetime)
            except StorageError as error:
                failure = error
                time.sleep(0.1 * (attempt + 1))
            else:
                return True
        log.error("admin console: cannot record a sign-out, the session stays signed in: %s",
                  failure)
        return False

    def revoked(self, session: Session) -> bool:
        """Whether the session was signed out. Asked of the storage at every request,
        whatever the limits' breaker says (the console's requests are few; a sign-out must
        hold as soon as the storage answers again); a storage that does not answer: not
        known, logged, and let through, as the rate limits are."""
        storage = self.limiter.storage
        if not isinstance(storage, Storage):
            return False
        try:
            return storage.get(self._revocation(session)) > 0
        except StorageError as error:
            log.warning("admin console: cannot check sign-outs: %s", error)
            return False

    def address(self, request: Request) -> str:
        return f"admin-sign-in:{request.client.host if request.client else '-'}"

    def blocked(self, request: Request) -> int | None:
        return self.limiter.blocked(self.failure_limit, self.address(request))

    def failed(self, request: Request) -> None:
        self.limiter.hit(self.failure_limit, self.address(request))

    # -- requests -----------------------------------------------------------------------------

    def route(self, path: str, view: View, *, methods: tuple[str, ...] = ("GET",),
              public: bool = False) -> Route:
        async def endpoint(request: Request) -> Response:
            response = await self._serve(request, view, public)
            for name, value in HEADERS.items():
                response.headers[name] = value
            return response

        return Route(path, endpoint, methods=list(methods))

    async def _who(self, request: Request) -> tuple[Principal | None, Session | None]:
        """Who is asking (the host's admin, or a key's), and their session (``None``:
        none, forged, expired or signed out); `_Refused` when the host names a customer."""
        session = self.sessions.load(request.cookies.get(COOKIE))
        if session is not None and session.who is not None and await anyio.to_thread.run_sync(
                self.revoked, session, limiter=self._auth_pool):
            session = None  # signed out: a copy of its cookie is worth nothing
        try:
            host = await self._host_principal(request)
        except Exception:
            log.exception("the host's authenticate failed")
            raise _Refused(plain(500, "Something went wrong; it has been logged.")) from None
        if host is not None and host.role is not Role.ADMIN:
            raise _Refused(plain(403, "This console is for admins only."))
        principal = host or self.key_principal(session)
        if host is not None and (session is None or session.who != HOST):
            session = Session.new(HOST)  # a new session (and token) for the host's admin
        elif host is None and session is not None and session.who == HOST:
            session = None  # the host no longer names them
        if principal is None and session is not None and session.who is not None:
            session = None  # a key no longer an admin's: signed out
        return principal, session

    async def _serve(self, request: Request, view: View, public: bool) -> Response:
        try:
            principal, found = await self._who(request)
        except _Refused as stop:
            return stop.response
        session = found or Session.new()
        base = str(request.scope.get("root_path", "")).rstrip("/")
        if principal is None and not public:
            target = request.url.path if request.method == "GET" else f"{base}/"
            return self._with_cookie(request, RedirectResponse(
                f"{base}/sign-in?{urllib.parse.urlencode({'next': target})}", 303), session)
        page = Page(self, request, session, principal, dict(request.path_params),
                    dict(request.query_params.items()))
        if any(_CONTROL.search(value) for value in (*page.params.values(),
                                                     *page.query.values())):
            return self._with_cookie(request, page.render(
                "error.html", 400, fields=[],
                message="The address holds a control character: no such page."), session)
        if request.method == "POST":
            refused = await self._read_form(request, page)
            if refused is not None:
                return self._with_cookie(request, refused, session)
        try:
            response = await anyio.to_thread.run_sync(view, page)
        except CommerceError as error:
            status, message, fields = page.error(error)
            response = page.render("error.html", status, message=message, fields=fields)
        except Exception:
            log.exception("admin console: %s %s failed", request.method, request.url.path)
            response = page.render("error.html", 500, fields=[],
                                   message="Something went wrong; it has been logged.")
        return self._with_cookie(request, response, page.session)

    async def _read_form(self, request: Request, page: Page) -> Response | None:
        """Read a form into ``page.form``; the page that refuses it otherwise."""
        try:
            page.form = await self._form(request, page.session)
        except _Invalid as invalid:
            return page.render("error.html", invalid.status, fields=[], message=invalid.message)
        return None

    async def _form(self, request: Request, session: Session) -> dict[str, list[str]]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise _Invalid(415, "Forms are sent as application/x-www-form-urlencoded.")
        body = b""
        with anyio.move_on_after(self.config.body_timeout) as waited:
            async for chunk in request.stream():
                body += chunk
                if len(body) > self.config.max_form_bytes:
                    raise _Invalid(413, "This form is too large.")
        if waited.cancelled_caught:  # a client sending a byte a second holds nothing long
            raise _Invalid(408, "The form took too long to arrive: send it again.")
        try:
            form = urllib.parse.parse_qs(body.decode("ascii"), keep_blank_values=True,
                                         max_num_fields=500, encoding="utf-8",
                                         errors="strict")
        except (UnicodeError, ValueError):
            raise _Invalid(400, "This form is not valid.") from None
        if any(_FORM_CONTROL.search(value) for values in form.values() for value in values):
            raise _Invalid(400, "A field holds a control character: nothing was changed.")
        if not session.csrf_ok(form.get("csrf", [None])[0]):
            raise _Invalid(403, "This form has expired or did not come from the console: "
                                "nothing was changed. Reload the page and try again.")
        return form

    def _with_cookie(self, request: Request, response: Response, session: Session) -> Response:
        secure = self.config.secure_cookies
        if secure is None:
            secure = request.url.scheme == "https"
        base = str(request.scope.get("root_path", "")).rstrip("/")
        response.set_cookie(COOKIE, self.sessions.dump(session), path=base or "/",
                            httponly=True, samesite="strict", secure=secure)
        return response


class _Invalid(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


#: no field, parameter or path of the console holds a control character (a NUL reaches a
#: database as a parameter some cannot store); form fields may hold tabs and line breaks
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FORM_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def plain(status: int, text: str) -> Response:
    return HTMLResponse(f"<!doctype html><title>{status}</title><p>{text}</p>",
                        status_code=status)


def _is_async(hook: object) -> bool:
    """An ``async def`` function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(hook) or (
        not inspect.isfunction(hook) and inspect.iscoroutinefunction(type(hook).__call__))


def _when(moment: Any) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")
