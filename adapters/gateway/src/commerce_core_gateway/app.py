"""The gateway: an ASGI app in front of a platform. Every request passes, in order: size and
content-type checks, authentication, rate limiting, validation, routing to a service, and
errors mapped to RFC 9457 problems."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import anyio
import anyio.to_thread
import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from commerce_core import (
    CommerceError,
    FieldError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidInput,
    Platform,
)
from commerce_core.checkout import check_idempotency_key
from commerce_core.orders import IdempotencyRecord
from commerce_core.telemetry import Telemetry, guarded
from commerce_core_gateway import handlers
from commerce_core_gateway._schemas import structure
from commerce_core_gateway.bodies import Problem
from commerce_core_gateway.headers import ResponseHeaders, current_request_id, proxy_networks
from commerce_core_gateway.openapi import openapi_document
from commerce_core_gateway.problems import clip, problem, problem_for
from commerce_core_gateway.routing import (
    Access,
    Call,
    Endpoint,
    Query,
    Readiness,
    Stop,
    StoredAnswer,
    WebhookParser,
)
from commerce_core_gateway.security import (
    Authenticator,
    KeyRing,
    NotAuthenticated,
    Principal,
    RateLimiter,
    Role,
    Window,
)

__all__ = ["GatewayConfig", "create_app"]

log = logging.getLogger("commerce_core.gateway")


@attrs.frozen(kw_only=True)
class GatewayConfig:
    """How the gateway authenticates, limits and bounds requests."""

    api_keys: Mapping[str, Principal] = attrs.field(factory=dict)
    #: the host's own authentication (its session, its JWT, its users), asked first; the
    #: API keys are looked at when it names nobody (`Authenticator`)
    authenticate: Authenticator | None = None
    rate_limits_url: str = "memory://"
    #: seconds the rate limit's storage may take to answer before the limit is skipped
    rate_limits_timeout: float = 0.25
    rate_limit: str = "100/second"
    checkout_rate_limit: str = "20/second"
    max_body_bytes: int = 64 * 1024
    #: seconds a request may take to send its body, once its headers are in: a client
    #: sending a byte a second gets 408 instead of holding the request open (OWASP API4)
    body_timeout: float = 10.0
    #: failed authentications (401, 403) allowed per client address, ``limits`` notation;
    #: past it, 429 (OWASP API2: no guessing keys at full speed)
    auth_failure_limit: str = "20/minute"
    #: requests of the routes that are never rate limited (health checks, webhooks) run on a
    #: thread pool of their own this big, so that a hung dependency of the others cannot
    #: take them down with it
    probe_threads: int = 4
    #: how long a request holds its ``Idempotency-Key`` without finishing before a repeat
    #: may take it over (its process died): longer than any request runs
    idempotency_lease: float = 60.0
    #: provider name (the ``{provider}`` of ``/v1/webhooks/payments/{provider}``) -> verifier
    webhooks: Mapping[str, WebhookParser] = attrs.field(factory=dict)
    title: str = "commerce-core"
    version: str = "0.1.0"
    #: what else must answer for ``/readyz`` to say ready (200), besides both stores:
    #: name -> a check that raises when it does not (503 then)
    readiness: Mapping[str, Callable[[], None]] = attrs.field(factory=dict)
    #: what the server can run without for a while, checked by ``/readyz`` too: when one
    #: does not answer, the answer is still 200, ``{"status": "degraded"}``, and the log says
    #: which (the rate limits' storage, when not in memory, is one already; the reference
    #: server adds its broker: the outboxes keep the events meanwhile)
    dependencies: Mapping[str, Callable[[], None]] = attrs.field(factory=dict)
    #: the proxies in front whose ``X-Request-Id`` is taken instead of making one:
    #: addresses or networks, comma-separated or a sequence, ``*`` for any peer; compared
    #: with the immediate peer (`KeepPeer`'s, when a proxy-headers middleware rewrites the
    #: client address), so a client that reaches the server around the proxy cannot choose
    #: its request id
    trusted_proxies: str | Sequence[str] = ()
    #: where refusals by a rate limit are told (``rate_limited``, by ``limit``:
    #: ``requests``, ``checkout``, ``auth_failures``); the platform's telemetry usually
    telemetry: Telemetry | None = None


_BODY_ERRORS = frozenset({400, 413, 415, 422})
# any route answers 401 to a key it does not know, and 429 past too many failures
_AUTH_ERRORS = {Access.PUBLIC: frozenset({401, 429}),
                Access.CUSTOMER: frozenset({401, 403, 429}),
                Access.ADMIN: frozenset({401, 403, 429}),
                Access.AUTHENTICATED: frozenset({401, 429})}


class Gateway:
    """The request pipeline around the route table."""

    def __init__(self, platform: Platform, config: GatewayConfig,
                 endpoints: Sequence[Endpoint]) -> None:
        self.platform = platform
        self.config = config
        self.telemetry: Telemetry = guarded(config.telemetry)  # never fails a request
        self.endpoints = [
            attrs.evolve(e, errors=e.errors | _AUTH_ERRORS[e.access]
                         | (_BODY_ERRORS | {408} if e.body else frozenset({408, 413}))
                         | (frozenset({429}) if e.limited else frozenset())
                         | (frozenset({422}) if e.query or e.path_params else frozenset()))
            for e in endpoints
        ]
        self.limiter = RateLimiter(config.rate_limits_url, timeout=config.rate_limits_timeout)
        self.default_limit = self.limiter.parse(config.rate_limit)
        self.checkout_limit = self.limiter.parse(config.checkout_rate_limit)
        self.auth_failure_limit = self.limiter.parse(config.auth_failure_limit)
        try:
            proxy_networks(config.trusted_proxies)
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {exc}") from None
        for principal in config.api_keys.values():
            wrong = principal.problem() if isinstance(principal, Principal) else (
                f"{type(principal).__name__} is not a Principal")
            if wrong is not None:  # a customer key without its customer would see everyone's
                raise InvalidInput("invalid API keys", [FieldError("api_keys", wrong)])
        self.keys = KeyRing(config.api_keys)
        self.readiness = Readiness(required=dict(config.readiness), optional={
            **({} if config.rate_limits_url.lower().startswith("memory")
               else {"rate limits": self._rate_limits_answer}),
            **config.dependencies})
        #: a host's sync `authenticate` runs on at most this many threads at once: a session
        #: store that hangs holds these, never the threads of the routes and the probes
        self._auth_pool = anyio.CapacityLimiter(16)
        self._probe_pool = anyio.CapacityLimiter(config.probe_threads)
        # failed authentications are counted on threads of their own too: a flood of bad
        # keys meeting a slow limiter storage must not take the health checks' threads
        self._failure_pool = anyio.CapacityLimiter(config.probe_threads)
        self.document = openapi_document(self.endpoints, title=config.title,
                                         version=config.version, problem_type=Problem)
        self._documents: dict[str, dict[str, Any]] = {}

    def _rate_limits_answer(self) -> None:
        storage = self.limiter.storage
        check = getattr(storage, "check", None)
        if callable(check) and check() is not True:
            raise ConnectionError(f"the rate limits' storage {type(storage).__name__} "
                                  "does not answer")

    def open(self) -> None:
        """Start what `close` stopped (the app's lifespan calls it; building the gateway
        starts it already)."""
        self.limiter.open()

    def close(self) -> None:
        """Stop what the gateway runs (the in-memory rate limits' sweeping). The app's
        lifespan calls it; a host that mounts the app (whose lifespan a mount does not run)
        calls it, or enters `lifespan`, from its own."""
        self.limiter.close()

    def document_for(self, root_path: str) -> dict[str, Any]:
        """The OpenAPI document as seen under ``root_path`` (where a host mounted the app):
        its ``servers`` name the mount, so a generated client calls the right URLs."""
        if not root_path or not _SAFE_ROOT.fullmatch(root_path):
            return self.document  # none, or not one to echo into a document
        found = self._documents.get(root_path)
        if found is None:
            found = {**self.document, "servers": [{"url": root_path}]}
            if len(self._documents) < 16:  # a handful of mounts; any Host cannot grow it
                self._documents[root_path] = found
        return found

    # -- the pipeline ----------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """One route per path, whatever its methods, so a 405 lists every allowed method."""
        by_path: dict[str, dict[str, Endpoint]] = {}
        for endpoint in self.endpoints:
            by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
        return [self._route(path, methods) for path, methods in by_path.items()]

    def _route(self, path: str, by_method: dict[str, Endpoint]) -> Route:
        async def serve(request: Request) -> Response:
            endpoint = by_method[request.method if request.method != "HEAD" else "GET"]
            windows: list[Window] = []
            try:
                self._check_declared_size(request)
                # who is calling is known before the body is read: an anonymous client
                # cannot keep a request open by sending its body slowly
                principal = await self._principal(request, endpoint)
                raw = await self._read(request, endpoint)
                if endpoint.name == "healthz":  # no I/O: answered whatever the pool does
                    response = self._dispatch(endpoint, self._validate(
                        request, endpoint, principal, raw))
                else:
                    # one trip to a worker thread for everything that may block (the rate
                    # limit's storage, the services): two cost a tenth of a place-order
                    # request; the routes never limited have a pool of their own
                    response, windows = await anyio.to_thread.run_sync(
                        self._limit_validate_dispatch, request, endpoint, principal, raw,
                        limiter=None if endpoint.limited else self._probe_pool)
            except Stop as stop:
                response = stop.response
            except Exception:  # a bug must never leak a traceback or a plain-text 500
                log.exception("unhandled error in %s %s (request %s)", request.method, path,
                              current_request_id())
                response = _internal_error()
            return _with_windows(response, windows) if windows else response

        return Route(path, serve, methods=list(by_method))

    def _check_declared_size(self, request: Request) -> None:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit()
                                     or int(declared) > self.config.max_body_bytes):
            raise self._too_large()

    def _too_large(self) -> Stop:
        limit = self.config.max_body_bytes
        return Stop(problem(413, "body-too-large", "Body too large",
                            f"request bodies are limited to {limit} bytes"))

    async def _read(self, request: Request, endpoint: Endpoint) -> bytes:
        limit = self.config.max_body_bytes
        raw = bytearray()
        try:
            with anyio.fail_after(self.config.body_timeout):
                async for chunk in request.stream():  # chunked bodies counted as they come
                    raw += chunk
                    if len(raw) > limit:
                        raise self._too_large()
        except TimeoutError:
            raise Stop(problem(408, "request-timeout", "Request timeout",
                               f"the body did not arrive within {self.config.body_timeout:g} s",
                               headers={"Connection": "close"})) from None
        if endpoint.body is not None and (raw.strip() or not endpoint.body_optional):
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                raise Stop(problem(415, "unsupported-media-type", "Unsupported media type",
                                    "send the body as application/json"))
        return bytes(raw)

    async def _principal(self, request: Request, endpoint: Endpoint) -> Principal | None:
        """The caller, or `Stop` with 401 or 403; each of those counts against the client
        address's failures, and past ``auth_failure_limit`` the answer is 429."""
        try:
            # the probes and the webhooks (never limited) do not ask the host: a session
            # store that hangs must not take the health checks with it
            host = await self._host_principal(request, endpoint) if endpoint.limited else None
            return self._authorize(host, request, endpoint)
        except Stop as refused:
            who = _address(request)
            window = await anyio.to_thread.run_sync(
                self.limiter.hit, self.auth_failure_limit, "auth-failures", who,
                limiter=self._failure_pool)
            if window is not None and not window.allowed:
                self.telemetry.record("rate_limited", limit="auth_failures")
                raise Stop(_too_many_failures(window.reset_seconds)) from None
            raise refused

    async def _host_principal(self, request: Request, endpoint: Endpoint) -> Principal | None:
        """Who the host's `Authenticator` says is calling (``None``: nobody, or no hook);
        `Stop` with 401 when it says the credentials are not good. Anything else it raises,
        or a principal that is not one, is the host's bug: 500, logged."""
        hook = self.config.authenticate
        if hook is None:
            return None
        try:
            if _is_async(hook):
                found = await hook(request)  # type: ignore[misc]
            else:
                found = await anyio.to_thread.run_sync(hook, request, limiter=self._auth_pool)
                if inspect.isawaitable(found):
                    found = await found
        except NotAuthenticated as exc:
            if endpoint.access is Access.PUBLIC:
                return None  # a stale session on a public page: anyone may read it
            raise Stop(self._unauthenticated(clip(str(exc.detail)))) from None
        if found is None:
            return None
        problem_found = found.problem() if isinstance(found, Principal) else (
            f"{type(found).__name__} is not a Principal")
        if problem_found is not None:
            raise TypeError(f"the host's authenticate returned {found!r}: {problem_found}")
        principal: Principal = found
        return principal

    def _authorize(self, host: Principal | None, request: Request,
                   endpoint: Endpoint) -> Principal | None:
        header = request.headers.get("authorization")
        principal = host
        if principal is None and header is not None:
            scheme, _, key = header.partition(" ")
            principal = self.keys.principal(key.strip()) if scheme.lower() == "bearer" else None
            if principal is None:
                raise Stop(self._unauthenticated("the API key is not valid"))
        if endpoint.access is Access.PUBLIC:
            return principal
        if principal is None:
            raise Stop(self._unauthenticated("send Authorization: Bearer <API key>"))
        if endpoint.access is Access.ADMIN and principal.role is not Role.ADMIN:
            raise Stop(problem(403, "forbidden", "Forbidden", "this route is for admins"))
        if endpoint.access is Access.CUSTOMER and principal.role is not Role.CUSTOMER:
            raise Stop(problem(403, "forbidden", "Forbidden", "this route is for customers"))
        return principal

    @staticmethod
    def _unauthenticated(detail: str) -> Response:
        return problem(401, "unauthenticated", "Not authenticated", detail,
                       headers={"WWW-Authenticate": "Bearer"})

    def _limit(self, request: Request, endpoint: Endpoint,
               principal: Principal | None) -> list[Window]:
        if not endpoint.limited:
            return []
        who = principal.id if principal else f"ip:{request.client.host if request.client else '-'}"
        overall = self.limiter.hit(self.default_limit, "all", who)
        checkout = (self.limiter.hit(self.checkout_limit, "checkout", who)
                    if endpoint.checkout else None)
        windows = [w for w in (overall, checkout) if w is not None]
        refused = [w for w in windows if not w.allowed]
        if refused:
            self.telemetry.record("rate_limited", limit="requests" if overall in refused
                                  else "checkout")
            wait = max(1, *(w.reset_seconds for w in refused))
            response = problem(429, "rate-limited", "Too many requests",
                               f"over the rate limit; retry in {wait} s",
                               headers={"Retry-After": str(wait)})
            raise Stop(_with_windows(response, windows))
        return windows

    def _validate(self, request: Request, endpoint: Endpoint, principal: Principal | None,
                  raw: bytes) -> Call:
        errors: list[FieldError] = []
        params = dict(request.path_params)
        for name, schema in endpoint.path_params:
            if "pattern" in schema and not re.fullmatch(schema["pattern"][1:-1], params[name]):
                errors.append(FieldError(name, f"must match {schema['pattern']}"))
        query = {q.name: _query_value(q, request.query_params.get(q.name), errors)
                 for q in endpoint.query}
        known = {q.name for q in endpoint.query}
        for name in dict.fromkeys(request.query_params):
            if name not in known:
                errors.append(FieldError(name, "unknown query parameter"))
            elif len(request.query_params.getlist(name)) > 1:
                errors.append(FieldError(name, "given more than once"))
        body: Any = None
        if endpoint.body is not None:
            try:
                data = ({} if endpoint.body_optional and not raw.strip()
                        else json.loads(raw, object_pairs_hook=_unique_keys))
            except _DuplicateKey as exc:
                raise Stop(problem(400, "malformed-json", "Malformed JSON",
                                   f"the key {clip(exc.key)!r} appears twice in one object")
                           ) from None
            except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                raise Stop(problem(400, "malformed-json", "Malformed JSON",
                                    "the body is not valid JSON")) from None
            try:
                body = structure(data, endpoint.body)
            except InvalidInput as exc:
                errors.extend(exc.errors)
                if endpoint.more_errors is not None:
                    errors.extend(endpoint.more_errors(self.platform, data))
        if errors:
            raise Stop(problem_for(InvalidInput("invalid request", errors)))
        headers = {k.lower(): v for k, v in request.headers.items()}
        return Call(self.platform, principal, params, query, body, headers, raw,
                    self.config.webhooks, readiness=self.readiness)

    def _limit_validate_dispatch(
        self, request: Request, endpoint: Endpoint, principal: Principal | None, raw: bytes,
    ) -> tuple[Response, list[Window]]:
        if principal is not None:
            # an address past its failures is refused whatever key it sends: were a right
            # key answered, guessing would go on at full speed, 429 meaning "wrong"
            wait = self.limiter.blocked(self.auth_failure_limit, "auth-failures",
                                        _address(request))
            if wait is not None:
                self.telemetry.record("rate_limited", limit="auth_failures")
                return _too_many_failures(wait), []
        windows = self._limit(request, endpoint, principal)
        try:
            call = self._validate(request, endpoint, principal, raw)
        except Stop as stop:
            return stop.response, windows
        return self._dispatch(endpoint, call), windows

    def _dispatch(self, endpoint: Endpoint, call: Call) -> Response:
        if endpoint.idempotent:
            return self._idempotently(endpoint, call)
        return self._run(endpoint, call)

    def _run(self, endpoint: Endpoint, call: Call) -> Response:
        try:
            return endpoint.handler(call)
        except Stop as stop:
            return stop.response
        except CommerceError as error:
            return problem_for(error)
        except Exception:  # a bug must not take the server down or leak a traceback
            log.exception("unhandled error in %s", endpoint.name)
            return _internal_error()

    def _idempotently(self, endpoint: Endpoint, call: Call) -> Response:
        """``Idempotency-Key`` on a route that changes something: the same request again
        gets the first answer (``Idempotent-Replayed: true``); another request under the
        key, 422; one while the first still runs, 409. The key goes down to the command
        too, so that a request taken over after its process died does its work once."""
        key = call.headers.get("idempotency-key")
        if key is None and not endpoint.key_required:
            return self._run(endpoint, call)
        try:
            check_idempotency_key(key)
        except InvalidInput:
            return problem(400, "idempotency-key-required", "Idempotency key required",
                           "send an Idempotency-Key header of 1 to 255 printable ASCII "
                           "characters")
        principal = call.principal
        assert key is not None  # noqa: S101 - checked just above
        assert principal is not None  # noqa: S101 - idempotent routes authenticate
        call = attrs.evolve(call, idempotency_key=key)
        scope = principal.key_scope
        fingerprint = (endpoint.fingerprint(call) if endpoint.fingerprint is not None
                       else _request_fingerprint(endpoint.name, call))
        orders = self.platform.orders
        record = orders.idempotency_record(scope, key)
        if record is not None and record.response_status is not None:
            return _replay(record, fingerprint, key)
        claimed = None
        if not endpoint.core_keyed:
            record, claimed_it = orders.claim_key(
                scope, key, fingerprint,
                stale_after=timedelta(seconds=self.config.idempotency_lease))
            if not claimed_it:
                if record.response_status is not None or record.fingerprint != fingerprint:
                    return _replay(record, fingerprint, key)
                return problem_for(IdempotencyKeyInUse(key, record.order_id))
            claimed = record
        response = self._run(endpoint, call)
        if isinstance(response, StoredAnswer):
            pass  # the command stored it with its change
        elif _lasting(response):
            orders.save_response(scope, key, status=response.status_code,
                                 body=bytes(response.body).decode())
        elif claimed is not None:
            orders.release_key(claimed)  # nothing lasting happened: the key may be used again
        if endpoint.core_keyed and record is not None:
            # the command answered from the key's record, unless it tried again in the place
            # of an attempt that failed with nothing held (a new order under the key)
            current = orders.idempotency_record(scope, key)
            if current is not None and current.order_id == record.order_id:
                response.headers["Idempotent-Replayed"] = "true"
        return response


#: Answers that are no outcome of the request itself, and are never replayed: the key in
#: use or reused, a write that lost a race (worth trying again)
_TRANSIENT_PROBLEMS = frozenset({"/problems/idempotency-key-in-use",
                                 "/problems/idempotency-key-reused",
                                 "/problems/concurrency-conflict"})


#: A mount path the OpenAPI document may name as its server (no markup, no line breaks).
_SAFE_ROOT = re.compile(r"/[A-Za-z0-9._~/-]{0,200}")


def _is_async(hook: object) -> bool:
    """An ``async def`` function, or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(
        type(hook).__call__ if not inspect.isfunction(hook) else None)


def _lasting(response: Response) -> bool:
    """Whether a response is the request's outcome, to be replayed to a repeat: a success or
    a client error, not a 5xx (a 503 says: try again) or a lost race."""
    if response.status_code >= 500 or response.status_code == 429:
        return False
    if response.status_code == 409:
        try:
            kind = json.loads(bytes(response.body)).get("type")
        except ValueError:
            return True
        return kind not in _TRANSIENT_PROBLEMS
    return True


def _replay(record: IdempotencyRecord, fingerprint: str, key: str) -> Response:
    if record.fingerprint != fingerprint:
        return problem_for(IdempotencyKeyReused(key))
    status = int(record.response_status or 500)
    return Response(record.response_body, status_code=status,
                    media_type="application/json" if status < 400
                    else "application/problem+json",
                    headers={"Idempotent-Replayed": "true"})


def _request_fingerprint(route: str, call: Call) -> str:
    """The route, its path parameters and its body, canonically: what a repeat must match."""
    try:
        body = json.loads(call.raw) if call.raw else None
    except ValueError:
        body = call.raw.decode("utf-8", "replace")
    text = json.dumps({"route": route, "params": dict(call.params), "body": body}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: which of two values would count is
    parser folklore (the last, here; the first, elsewhere), so neither does."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _internal_error() -> Response:
    return problem(500, "internal-error", "Internal error",
                   "something went wrong on our side; it has been logged")


def _address(request: Request) -> str:
    return f"ip:{request.client.host if request.client else '-'}"


def _too_many_failures(wait: int) -> Response:
    wait = max(1, wait)
    return problem(429, "rate-limited", "Too many requests",
                   f"too many failed authentications from this address; retry in {wait} s",
                   headers={"Retry-After": str(wait)})


def _query_value(query: Query, value: str | None, errors: list[FieldError]) -> Any:
    """A query parameter read against its schema; problems are added to ``errors``."""
    schema = query.schema
    if value is None:
        return schema.get("default")
    if schema.get("type") == "integer":
        if re.fullmatch(r"-?\d{1,9}", value) and (
                schema["minimum"] <= int(value) <= schema["maximum"]):
            return int(value)
        errors.append(FieldError(query.name, f"must be an integer from {schema['minimum']} "
                                 f"to {schema['maximum']}"))
    elif "enum" in schema and value not in schema["enum"]:
        errors.append(FieldError(query.name, f"must be one of {', '.join(schema['enum'])}"))
    elif "pattern" in schema and not re.fullmatch(schema["pattern"][1:-1], value):
        errors.append(FieldError(query.name, f"must match {schema['pattern']}"))
    elif not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 200):
        errors.append(FieldError(query.name, "has the wrong length"))
    else:
        return value
    return None


def _with_windows(response: Response, windows: list[Window]) -> Response:
    """RateLimit-* headers from the tightest of the limits that applied."""
    tightest = min(windows, key=lambda w: (w.remaining, -w.reset_seconds))
    response.headers["RateLimit-Limit"] = str(tightest.limit)
    response.headers["RateLimit-Remaining"] = str(tightest.remaining)
    response.headers["RateLimit-Reset"] = str(tightest.reset_seconds)
    return response


def create_app(platform: Platform, config: GatewayConfig | None = None) -> Starlette:
    """The gateway as an ASGI application (mount it in any ASGI host, or serve it)."""
    gateway = Gateway(platform, config or GatewayConfig(), handlers.endpoints())

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            allow = dict(getattr(exc, "headers", None) or {})  # Starlette lists the methods
            return problem(405, "method-not-allowed", "Method not allowed",
                           f"{request.method} is not allowed on {clip(request.url.path)}",
                           headers={"Allow": allow.get("Allow", "")})
        return problem(404, "not-found", "Not found", f"no route for {clip(request.url.path)}")

    async def openapi(request: Request) -> Response:
        return JSONResponse(gateway.document_for(str(request.scope.get("root_path", ""))))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        gateway.open()  # again, if a lifespan ran and closed it before
        try:
            yield
        finally:
            gateway.close()

    routes = gateway.routes()
    routes.append(Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False))
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found},
                    middleware=[Middleware(ResponseHeaders,
                                           trusted_proxies=gateway.config.trusted_proxies)],
                    lifespan=lifespan)
    # "/v1/orders/" is not found, not redirected: Starlette builds the redirect from the
    # Host header, which anyone can set (OWASP API8)
    app.router.redirect_slashes = False
    app.state.gateway = gateway
    return app

