"""`SarucciAPI`: an emulator of the Sarucci API (seed 004), with bearer tokens from an exchange.

``POST /v1/auth/token`` trades client credentials for a bearer token that expires (after
``token_ttl`` seconds, or sooner under `Faults`). Partner tokens use the ``/v1/partner/...``
endpoints; a company token there is a 403 ``partner_token_required``. Every error is the nested
envelope ``{"error": {"code", "message", "request_id"}}`` and every response, success or error,
carries the same UUID in ``X-Request-Id`` (the client's own, when it sent a valid UUID). A 502,
503 or 504 injected by `Faults` has no body, like one from a load balancer.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._emulator import NO_FAULTS, Emulator, Faults, read_json

__all__ = ["Credentials", "SarucciAPI"]

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TOKEN = re.compile(r"sar_(pt|ct)_[0-9a-f]{32}")
_STATE_KEY = "forbear.request_id"
_DEMO_COMPANY = "cmp_demo"


@dataclass(frozen=True, slots=True)
class Credentials:
    """OAuth-style client credentials; the secret is never shown in ``repr``."""

    client_id: str
    client_secret: str = field(repr=False)
    #: "partner" or "company".
    kind: str = "partner"
    #: The company a company client acts for.
    company_id: str | None = None

    def form(self) -> dict[str, str]:
        """The body ``POST /v1/auth/token`` expects."""
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }


@dataclass(slots=True)
class _Token:
    kind: str
    company_id: str | None
    expires: float
    uses_left: int | None


@dataclass(slots=True)
class _Company:
    company_id: str
    name: str
    runs: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    approved: str | None = None


def request_id(scope: Scope) -> str:
    """The request id the request-id layer chose for this request."""
    return str(scope.get("state", {}).get(_STATE_KEY, ""))


def envelope(request: Request | Scope, status: int, code: str, message: str) -> JSONResponse:
    """The Sarucci nested error envelope for this request."""
    scope = request.scope if isinstance(request, Request) else request
    body = {"error": {"code": code, "message": message, "request_id": request_id(scope)}}
    return JSONResponse(body, status)


class SarucciAPI(Emulator):
    """The Sarucci API. `partner` and `company` are ready-made client credentials."""

    def __init__(self, *, token_ttl: float = 3600.0, faults: Faults = NO_FAULTS) -> None:
        self.token_ttl = token_ttl
        self.partner = Credentials(
            "cli_partner_" + secrets.token_hex(4), secrets.token_urlsafe(24), "partner"
        )
        self.company = Credentials(
            "cli_company_" + secrets.token_hex(4),
            secrets.token_urlsafe(24),
            "company",
            _DEMO_COMPANY,
        )
        super().__init__(faults=faults)

    def __repr__(self) -> str:
        return f"SarucciAPI({self._url or 'not served'})"

    def _clear_state(self) -> None:
        self._tokens: dict[str, _Token] = {}
        self._tokens_issued = 0
        self._companies: dict[str, _Company] = {_DEMO_COMPANY: _Company(_DEMO_COMPANY, "Demo Co")}

    # -- helpers for tests ---------------------------------------------------------------------

    @property
    def tokens_issued(self) -> int:
        """How many tokens the exchange issued since the last `reset`."""
        with self._lock:
            return self._tokens_issued

    def issue_token(self, credentials: Credentials | None = None) -> str:
        """A token for ``credentials`` (the partner's by default), as the exchange would."""
        credentials = credentials or self.partner
        prefix = "sar_pt_" if credentials.kind == "partner" else "sar_ct_"
        token = prefix + secrets.token_hex(16)
        with self._lock:
            faults = self._faults
            ttl = faults.token_ttl if faults.token_ttl is not None else self.token_ttl
            self._tokens[token] = _Token(
                credentials.kind, credentials.company_id, time.monotonic() + ttl, faults.token_uses
            )
            self._tokens_issued += 1
        return token

    def expire_tokens(self) -> None:
        """Every token issued so far has expired (401 ``invalid_credentials``)."""
        with self._lock:
            for token in self._tokens.values():
                token.expires = float("-inf")

    # -- the app -------------------------------------------------------------------------------

    def _build(self) -> ASGIApp:
        return _with_request_id(self._faulting(self._routes()))

    def _routes(self) -> ASGIApp:
        async def not_found(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            if exc.status_code == 405:
                return envelope(request, 405, "method_not_allowed", "method not allowed")
            return envelope(request, 404, "not_found", "route not found")

        partner = "/v1/partner/companies"
        return Starlette(
            routes=[
                Route("/v1/auth/token", self._exchange, methods=["POST"]),
                Route("/v1/company", self._own_company, methods=["GET"]),
                Route(partner, self._create_company, methods=["POST"]),
                Route(partner + "/{company_id}", self._get_company, methods=["GET"]),
                Route(partner + "/{company_id}/runs", self._runs, methods=["GET", "POST"]),
                Route(partner + "/{company_id}/models/latest", self._latest, methods=["GET"]),
                Route(partner + "/{company_id}/models/approve", self._approve, methods=["POST"]),
            ],
            exception_handlers={404: not_found, 405: not_found},
        )

    def _fault_response(self, scope: Scope, status: int, retry_after: int | None) -> Response:
        response: Response
        if status == 429:
            response = envelope(scope, 429, "rate_limited", "too many requests")
        elif status == 500:
            response = envelope(scope, 500, "internal_error", "internal error")
        else:
            response = Response(b"", status)  # the load balancer's answer: no body
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    async def _exchange(self, request: Request) -> Response:
        body = await request.body()
        form: Any
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(body.decode("latin-1")))
        else:
            try:
                form = await read_json(request)
            except ValueError:
                return envelope(request, 422, "validation_error", "body must be JSON or a form")
        if not isinstance(form, dict):
            return envelope(request, 422, "validation_error", "body must be an object")
        grant = form.get("grant_type", "client_credentials")
        if grant != "client_credentials":
            return envelope(
                request, 422, "validation_error", "grant_type must be client_credentials"
            )
        for name in ("client_id", "client_secret"):
            if not isinstance(form.get(name), str) or not form[name]:
                return envelope(request, 422, "validation_error", f"{name} is required")
        for known in (self.partner, self.company):
            if form["client_id"] == known.client_id and secrets.compare_digest(
                form["client_secret"].encode(), known.client_secret.encode()
            ):
                ttl = self._faults.token_ttl or self.token_ttl
                token = self.issue_token(known)
                return JSONResponse(
                    {"access_token": token, "token_type": "Bearer", "expires_in": round(ttl)}
                )
        return envelope(request, 401, "invalid_credentials", "client credentials are invalid")

    def _bearer(self, request: Request, kind: str) -> _Token | Response:
        """The caller's token if it may use a ``kind`` endpoint, else the 401/403 saying why."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            return envelope(request, 401, "missing_bearer", "missing bearer token")
        if not _TOKEN.fullmatch(value):
            return envelope(request, 401, "invalid_token", "malformed bearer token")
        with self._lock:
            token = self._tokens.get(value)
            valid = token is not None and time.monotonic() < token.expires
            if token is not None and valid and token.uses_left is not None:
                valid = token.uses_left > 0
                token.uses_left -= 1
        if token is None or not valid:
            return envelope(request, 401, "invalid_credentials", "token is invalid or expired")
        if kind == "partner" and token.kind != "partner":
            return envelope(
                request, 403, "partner_token_required", "this endpoint needs a partner token"
            )
        if kind == "company" and token.kind != "company":
            return envelope(
                request, 403, "company_token_required", "this endpoint needs a company token"
            )
        return token

    def _company_of(self, request: Request) -> _Company | Response:
        company_id = request.path_params["company_id"]
        with self._lock:
            company = self._companies.get(company_id)
        if company is None:
            return envelope(request, 404, "company_not_found", "company not found")
        return company

    async def _own_company(self, request: Request) -> Response:
        token = self._bearer(request, "company")
        if isinstance(token, Response):
            return token
        with self._lock:
            company = self._companies.get(token.company_id or "")
        if company is None:
            return envelope(request, 404, "company_not_found", "company not found")
        return JSONResponse({"company_id": company.company_id, "name": company.name})

    async def _create_company(self, request: Request) -> Response:
        token = self._bearer(request, "partner")
        if isinstance(token, Response):
            return token
        try:
            body = await read_json(request)
        except ValueError:
            return envelope(request, 422, "validation_error", "body must be JSON")
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name.strip():
            return envelope(request, 422, "validation_error", "name is required")
        company = _Company("cmp_" + secrets.token_hex(6), name)
        with self._lock:
            self._companies[company.company_id] = company
        return JSONResponse({"company_id": company.company_id, "name": name}, 201)

    async def _get_company(self, request: Request) -> Response:
        token = self._bearer(request, "partner")
        if isinstance(token, Response):
            return token
        company = self._company_of(request)
        if isinstance(company, Response):
            return company
        return JSONResponse(
            {"company_id": company.company_id, "name": company.name, "runs": len(company.runs)}
        )

    async def _runs(self, request: Request) -> Response:
        token = self._bearer(request, "partner")
        if isinstance(token, Response):
            return token
        company = self._company_of(request)
        if isinstance(company, Response):
            return company
        if request.method == "POST":
            return await self._new_run(request, company)
        raw = request.query_params.get("runs_ago", "0")
        if not raw.isdigit():
            return envelope(
                request, 422, "validation_error", "runs_ago must be a non-negative integer"
            )
        runs_ago = int(raw)
        with self._lock:
            run_id = company.runs[-1 - runs_ago] if runs_ago < len(company.runs) else None
        if run_id is None:
            return envelope(request, 404, "no_run_at_offset", f"no run at offset {runs_ago}")
        return JSONResponse({"run_id": run_id, "runs_ago": runs_ago, "version": "v2"})

    async def _new_run(self, request: Request, company: _Company) -> Response:
        try:
            body = await read_json(request) if await request.body() else {}
        except ValueError:
            return envelope(request, 422, "validation_error", "body must be JSON")
        trained = body.get("trained", True) if isinstance(body, dict) else None
        if not isinstance(trained, bool):
            return envelope(request, 422, "validation_error", "trained must be a boolean")
        run_id = "run_" + secrets.token_hex(6)
        model_id = "mdl_" + secrets.token_hex(6) if trained else None
        with self._lock:
            company.runs.append(run_id)
            if model_id is not None:
                company.models.append(model_id)
        return JSONResponse({"run_id": run_id, "model_id": model_id}, 201)

    async def _latest(self, request: Request) -> Response:
        token = self._bearer(request, "partner")
        if isinstance(token, Response):
            return token
        company = self._company_of(request)
        if isinstance(company, Response):
            return company
        with self._lock:
            latest = company.models[-1] if company.models else None
        if latest is None:
            return envelope(request, 404, "no_trained_artifact", "no trained artifact exists")
        return JSONResponse({"model_id": latest, "approved": latest == company.approved})

    async def _approve(self, request: Request) -> Response:
        token = self._bearer(request, "partner")
        if isinstance(token, Response):
            return token
        company = self._company_of(request)
        if isinstance(company, Response):
            return company
        try:
            body = await read_json(request)
        except ValueError:
            return envelope(request, 422, "validation_error", "body must be JSON")
        model_id = body.get("model_id") if isinstance(body, dict) else None
        if not isinstance(model_id, str) or not model_id:
            return envelope(request, 422, "validation_error", "model_id is required")
        with self._lock:
            latest = company.models[-1] if company.models else None
            if latest is not None and model_id == latest:
                company.approved = model_id
        if latest is None:
            return envelope(request, 404, "no_trained_artifact", "no trained artifact exists")
        if model_id != latest:
            return envelope(
                request, 409, "model_id_stale", "model_id is no longer the latest artifact"
            )
        return JSONResponse({"model_id": model_id, "approved": True})


def _with_request_id(app: ASGIApp) -> ASGIApp:
    """Give every request an id (the client's valid UUID, else a new one), sent back in
    ``X-Request-Id`` on every response and kept in the scope state for the error envelope."""

    async def identified(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        sent = None
        for key, value in scope["headers"]:
            if key.lower() == b"x-request-id":
                sent = bytes(value).decode("latin-1").strip()
        rid = sent if sent is not None and _UUID.fullmatch(sent) else str(uuid.uuid4())
        scope["state"] = {**scope.get("state", {}), _STATE_KEY: rid}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        await app(scope, receive, send_with_id)

    return identified
