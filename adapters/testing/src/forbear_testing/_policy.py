"""`PolicyAPI`: an emulator of the policy/validation API (seed 001), keyed by bearer API keys.

Keys carry scopes (``validate``, ``propose``, ``read``) and belong to a user whose role grants
permissions (RBAC). ``POST /v1/validate`` and ``POST /v1/propose`` answer 200 even when the
policy says ``allowed: false``; ``propose`` honours ``Idempotency-Key`` (the same key and
payload replay the first answer, a different payload is a 409). Each user is throttled at
``limit`` requests per ``window`` seconds (100 a minute, as documented; smaller for tests).
Every error is the flat envelope ``{"statusCode": ..., "message": ..., "error": ...}`` whose
``error`` is the category without spaces (``BadRequest``, ``NotFound``, ``Unauthorized``).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Scope

from ._emulator import NO_FAULTS, Emulator, Faults, phrase, read_json
from ._limits import FixedWindow, retry_after_seconds

__all__ = ["RESTRICTED_SYMBOLS", "ROLES", "SCOPES", "PolicyAPI"]

#: Every scope a key can carry.
SCOPES: tuple[str, ...] = ("validate", "propose", "read")
#: The permissions each role grants (a key needs the scope and its user the permission).
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "member": frozenset({"validate", "read"}),
    "viewer": frozenset({"read"}),
}
#: Symbols the policy never allows.
RESTRICTED_SYMBOLS: frozenset[str] = frozenset({"HALT", "XXX"})
_ACTIONS = ("buy", "sell")
_FIVE_XX = {
    500: "Internal server error.",
    502: "Bad gateway.",
    503: "Service temporarily unavailable.",
    504: "Gateway timeout.",
}


@dataclass(slots=True)
class _Key:
    user: str
    role: str
    scopes: frozenset[str]
    expires: float | None = None
    revoked: bool = False


@dataclass(slots=True)
class _Stored:
    fingerprint: str
    body: dict[str, Any] = field(repr=False)


def envelope(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The policy API's flat error envelope."""
    body = {"statusCode": status, "message": message, "error": phrase(status).replace(" ", "")}
    return JSONResponse(body, status, headers)


class PolicyAPI(Emulator):
    """The policy API. ``key`` is an admin key with every scope (generated when not given)."""

    def __init__(
        self,
        *,
        key: str | None = None,
        limit: int = 100,
        window: float = 60.0,
        max_quantity: int = 1000,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self.key = key or "pol_" + secrets.token_hex(16)
        self.max_quantity = max_quantity
        self._throttle = FixedWindow(limit, window)
        super().__init__(faults=faults)

    def __repr__(self) -> str:
        return f"PolicyAPI({self._url or 'not served'})"

    def _clear_state(self) -> None:
        self._keys: dict[str, _Key] = {self.key: _Key("usr_default", "admin", frozenset(SCOPES))}
        self._proposals: dict[str, dict[str, Any]] = {}
        self._idempotent: dict[tuple[str, str], _Stored] = {}
        self._throttle.clear()

    # -- helpers for tests ---------------------------------------------------------------------

    def create_key(
        self,
        *,
        scopes: Iterable[str] = SCOPES,
        user: str = "usr_default",
        role: str = "admin",
        ttl: float | None = None,
    ) -> str:
        """A new key with ``scopes`` for ``user`` (whose ``role`` is one of `ROLES`)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {sorted(ROLES)}, got {role!r}")
        key = "pol_" + secrets.token_hex(16)
        expires = None if ttl is None else time.monotonic() + ttl
        with self._lock:
            self._keys[key] = _Key(user, role, frozenset(scopes), expires)
        return key

    def revoke_key(self, key: str) -> None:
        """``key`` answers 401 from now on."""
        with self._lock:
            if key in self._keys:
                self._keys[key].revoked = True

    @property
    def limit(self) -> int:
        """Requests each user may make per `window`."""
        return self._throttle.limit

    @property
    def window(self) -> float:
        """The throttle's fixed window, in seconds."""
        return self._throttle.window

    @property
    def proposal_count(self) -> int:
        """How many proposals were created (a replayed Idempotency-Key creates none)."""
        with self._lock:
            return len(self._proposals)

    # -- the app -------------------------------------------------------------------------------

    def _routes(self) -> ASGIApp:
        async def not_found(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            return envelope(exc.status_code, f"Cannot {request.method} {request.url.path}")

        return Starlette(
            routes=[
                Route("/v1/validate", self._validate, methods=["POST"]),
                Route("/v1/propose", self._propose, methods=["POST"]),
                Route("/v1/proposals/{proposal_id}", self._proposal, methods=["GET"]),
            ],
            exception_handlers={404: not_found, 405: not_found},
        )

    def _fault_response(self, scope: Scope, status: int, retry_after: int | None) -> Response:
        headers = None if retry_after is None else {"Retry-After": str(retry_after)}
        if status == 429:
            return envelope(429, "Too many requests. Back off and retry.", headers)
        return envelope(status, _FIVE_XX.get(status, phrase(status) + "."), headers)

    def _authorize(self, request: Request, scope: str) -> _Key | Response:
        """The caller's key if it may use ``scope``, else the 401/403/429 saying why not."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return envelope(401, "Missing bearer token.")
        with self._lock:
            key = self._keys.get(token)
        if key is None:
            return envelope(401, "Invalid API key.")
        if key.revoked:
            return envelope(401, "API key has been revoked.")
        if key.expires is not None and time.monotonic() >= key.expires:
            return envelope(401, "API key has expired.")
        if scope not in key.scopes:
            return envelope(401, f"Missing scope: {scope}")
        if scope not in ROLES[key.role]:
            return envelope(403, f"Role {key.role} lacks permission: {scope}")
        with self._lock:
            wait = self._throttle.hit(key.user, time.monotonic())
        if wait > 0:
            per = "minute" if self.window == 60.0 else f"{self.window:g} seconds"
            return envelope(
                429,
                f"Rate limit exceeded: {self.limit} requests per {per}.",
                {"Retry-After": str(retry_after_seconds(wait))},
            )
        return key

    async def _order(self, request: Request) -> dict[str, Any] | Response:
        """The validated order in the body, or the 400 saying what is wrong with it."""
        try:
            body = await read_json(request)
        except ValueError:
            return envelope(400, "Malformed JSON body.")
        if not isinstance(body, dict):
            return envelope(400, "Request body must be a JSON object.")
        for name in ("action", "symbol", "quantity"):
            if name not in body:
                return envelope(400, f"{name} is required.")
        if body["action"] not in _ACTIONS:
            return envelope(400, f"action must be one of: {', '.join(_ACTIONS)}.")
        if not isinstance(body["symbol"], str) or not body["symbol"]:
            return envelope(400, "symbol must be a non-empty string.")
        quantity = body["quantity"]
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            return envelope(400, "quantity must be a positive integer.")
        return body

    def _judge(self, order: dict[str, Any]) -> dict[str, Any]:
        violations = []
        if order["quantity"] > self.max_quantity:
            violations.append(
                {
                    "rule": "max_order_size",
                    "message": f"quantity {order['quantity']} exceeds the maximum order size "
                    f"of {self.max_quantity}",
                }
            )
        if order["symbol"].upper() in RESTRICTED_SYMBOLS:
            violations.append(
                {"rule": "restricted_symbol", "message": f"{order['symbol']} is restricted"}
            )
        return {"allowed": not violations, "violations": violations}

    async def _validate(self, request: Request) -> Response:
        key = self._authorize(request, "validate")
        if isinstance(key, Response):
            return key
        order = await self._order(request)
        if isinstance(order, Response):
            return order
        return JSONResponse(self._judge(order))

    async def _propose(self, request: Request) -> Response:
        key = self._authorize(request, "propose")
        if isinstance(key, Response):
            return key
        order = await self._order(request)
        if isinstance(order, Response):
            return order
        idempotency_key = request.headers.get("idempotency-key")
        fingerprint = json.dumps(order, sort_keys=True, separators=(",", ":"))
        with self._lock:
            if idempotency_key is not None:
                stored = self._idempotent.get((key.user, idempotency_key))
                if stored is not None:
                    if stored.fingerprint != fingerprint:
                        return envelope(
                            409,
                            "Idempotency-Key was already used with a different payload. "
                            "Use a fresh key.",
                        )
                    return JSONResponse(stored.body, headers={"Idempotent-Replayed": "true"})
            proposal_id = "prop_" + secrets.token_hex(8)
            verdict = self._judge(order)
            proposal = {
                "proposalId": proposal_id,
                "status": "pending_attestation" if verdict["allowed"] else "rejected",
                **verdict,
                "order": order,
            }
            self._proposals[proposal_id] = proposal
            if idempotency_key is not None:
                self._idempotent[(key.user, idempotency_key)] = _Stored(fingerprint, proposal)
        return JSONResponse(proposal)

    async def _proposal(self, request: Request) -> Response:
        key = self._authorize(request, "read")
        if isinstance(key, Response):
            return key
        proposal_id = request.path_params["proposal_id"]
        with self._lock:
            proposal = self._proposals.get(proposal_id)
        if proposal is None:
            return envelope(404, f"Proposal {proposal_id} not found.")
        return JSONResponse(proposal)
