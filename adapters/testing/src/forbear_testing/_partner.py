"""`PartnerAPI`: an emulator of the partner API (seed 000), keyed by ``X-API-Key``.

Two key tiers: the Partner Key onboards companies, lists them and browses controls; a Company
Key (returned by ``POST /v1/onboard``) submits documents in chunked uploads and polls them.
Every error is the flat envelope ``{"error": ..., "message": ..., "statusCode": ...}``:
400 validation, 401 missing/unknown key, 403 wrong tier, 404 unknown or not yours, 410 an
expired upload session, 422 both ``businessEntityId`` and ``complianceReviewId`` (or a control
not whitelisted), 429 and 5xx when told to by `Faults`. ``/health`` needs no key.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Scope

from ._emulator import NO_FAULTS, Emulator, Faults, phrase, read_json

__all__ = ["FRAMEWORKS", "Company", "PartnerAPI"]

#: The compliance frameworks and the control items and clusters whitelisted for the partner.
FRAMEWORKS: tuple[dict[str, Any], ...] = (
    {
        "id": "soc2",
        "name": "SOC 2",
        "controlItems": ["ci_access_review", "ci_change_management", "ci_encryption_at_rest"],
        "controlClusters": ["cc_security", "cc_availability"],
    },
    {
        "id": "iso27001",
        "name": "ISO/IEC 27001",
        "controlItems": ["ci_asset_inventory", "ci_incident_response"],
        "controlClusters": ["cc_operations"],
    },
)
_ITEMS = frozenset(i for f in FRAMEWORKS for i in f["controlItems"])
_CLUSTERS = frozenset(c for f in FRAMEWORKS for c in f["controlClusters"])
_DAY = 24 * 60 * 60.0


@dataclass(frozen=True, slots=True)
class Company:
    """An onboarded company and its Company Key (never shown in ``repr``)."""

    company_id: str
    legal_name: str
    company_key: str = field(repr=False)


@dataclass(slots=True)
class _Session:
    company_id: str
    file_name: str
    total_chunks: int
    expires: float
    expires_at: str
    chunks: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Document:
    company_id: str
    file_name: str
    status: str = "processing"


def envelope(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The partner API's flat error envelope."""
    body = {"error": phrase(status), "message": message, "statusCode": status}
    return JSONResponse(body, status, headers)


class PartnerAPI(Emulator):
    """The partner API. ``partner_key`` is the Partner Key (generated when not given).

    Upload sessions last ``upload_ttl`` seconds (24 hours, as documented); `expire_uploads`
    ends them all at once. `add_company` onboards a company without a request.
    """

    unfaulted = frozenset({"/health"})

    def __init__(
        self,
        *,
        partner_key: str | None = None,
        upload_ttl: float = _DAY,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self.partner_key = partner_key or "pk_test_" + secrets.token_hex(12)
        self.upload_ttl = upload_ttl
        super().__init__(faults=faults)

    def __repr__(self) -> str:
        return f"PartnerAPI({self._url or 'not served'})"

    def _clear_state(self) -> None:
        self._companies: dict[str, Company] = {}
        self._by_key: dict[str, Company] = {}
        self._sessions: dict[str, _Session] = {}
        self._documents: dict[str, _Document] = {}

    # -- helpers for tests ---------------------------------------------------------------------

    def add_company(self, legal_name: str = "Acme Holdings Ltd") -> Company:
        """Onboard a company directly; its ``company_key`` works at once."""
        company = Company("cmp_" + secrets.token_hex(6), legal_name, "ck_" + secrets.token_hex(12))
        with self._lock:
            self._companies[company.company_id] = company
            self._by_key[company.company_key] = company
        return company

    def expire_uploads(self) -> None:
        """Every upload session open now has expired (its chunks answer 410)."""
        with self._lock:
            for session in self._sessions.values():
                session.expires = float("-inf")

    # -- the app -------------------------------------------------------------------------------

    def _routes(self) -> ASGIApp:
        async def not_found(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            if exc.status_code == 405:
                return envelope(405, f"Cannot {request.method} {request.url.path}")
            return envelope(404, f"Cannot {request.method} {request.url.path}")

        return Starlette(
            routes=[
                Route("/health", self._health, methods=["GET"]),
                Route("/v1/onboard", self._onboard, methods=["POST"]),
                Route("/v1/companies", self._list_companies, methods=["GET"]),
                Route("/v1/compliance-frameworks", self._frameworks, methods=["GET"]),
                Route("/v1/company", self._company, methods=["GET", "PATCH"]),
                Route("/v1/documents/upload/start", self._upload_start, methods=["POST"]),
                Route(
                    "/v1/documents/upload/{session_id}/chunks/{index}",
                    self._upload_chunk,
                    methods=["PUT"],
                ),
                Route(
                    "/v1/documents/upload/{session_id}/complete",
                    self._upload_complete,
                    methods=["POST"],
                ),
                Route("/v1/documents/{document_id}", self._document, methods=["GET"]),
            ],
            exception_handlers={404: not_found, 405: not_found},
        )

    def _fault_response(self, scope: Scope, status: int, retry_after: int | None) -> Response:
        headers = None if retry_after is None else {"Retry-After": str(retry_after)}
        if status == 429:
            wait = f" Retry after {retry_after} seconds." if retry_after else ""
            return envelope(429, "Rate limit exceeded." + wait, headers)
        return envelope(status, "An unexpected error occurred. Please try again.", headers)

    def _caller(self, request: Request, tier: str) -> Company | str | Response:
        """The caller for ``tier`` ("partner" or "company"): the company, "partner", or an error."""
        key = request.headers.get("x-api-key", "").strip()
        if not key:
            return envelope(401, "X-API-Key header is required.")
        is_partner = secrets.compare_digest(key.encode(), self.partner_key.encode())
        with self._lock:
            caller: Company | str | None = "partner" if is_partner else self._by_key.get(key)
        if caller is None:
            return envelope(401, "Invalid API key.")
        if tier == "partner" and caller != "partner":
            return envelope(403, "This operation requires a Partner Key.")
        if tier == "company" and caller == "partner":
            return envelope(403, "This operation requires a Company Key.")
        return caller

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _onboard(self, request: Request) -> Response:
        caller = self._caller(request, "partner")
        if isinstance(caller, Response):
            return caller
        body = await _object(request)
        if isinstance(body, Response):
            return body
        legal_name = body.get("legalName")
        if legal_name is None or legal_name == "":
            return envelope(400, "legalName is required.")
        if not isinstance(legal_name, str):
            return envelope(400, "legalName must be a string.")
        for name, allowed in (
            ("selectedControlItemIds", _ITEMS),
            ("selectedControlClusterIds", _CLUSTERS),
        ):
            ids = body.get(name, [])
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                return envelope(400, f"{name} must be a JSON array of strings.")
            unknown = [i for i in ids if i not in allowed]
            if unknown:
                return envelope(422, f"Control {unknown[0]} is not whitelisted for your partner.")
        company = self.add_company(legal_name)
        return JSONResponse(
            {
                "companyId": company.company_id,
                "legalName": company.legal_name,
                "companyKey": company.company_key,
            },
            201,
        )

    async def _list_companies(self, request: Request) -> Response:
        caller = self._caller(request, "partner")
        if isinstance(caller, Response):
            return caller
        with self._lock:
            companies = [
                {"companyId": c.company_id, "legalName": c.legal_name}
                for c in self._companies.values()
            ]
        return JSONResponse({"companies": companies})

    async def _frameworks(self, request: Request) -> Response:
        caller = self._caller(request, "partner")
        if isinstance(caller, Response):
            return caller
        return JSONResponse({"frameworks": list(FRAMEWORKS)})

    async def _company(self, request: Request) -> Response:
        company = self._caller(request, "company")
        if isinstance(company, Response):
            return company
        assert isinstance(company, Company)
        if request.method == "PATCH":
            body = await _object(request)
            if isinstance(body, Response):
                return body
            legal_name = body.get("legalName")
            if not isinstance(legal_name, str) or not legal_name:
                return envelope(400, "legalName is required.")
            updated = Company(company.company_id, legal_name, company.company_key)
            with self._lock:
                self._companies[company.company_id] = updated
                self._by_key[company.company_key] = updated
            company = updated
        return JSONResponse({"companyId": company.company_id, "legalName": company.legal_name})

    async def _upload_start(self, request: Request) -> Response:
        company = self._caller(request, "company")
        if isinstance(company, Response):
            return company
        assert isinstance(company, Company)
        body = await _object(request)
        if isinstance(body, Response):
            return body
        file_name, total = body.get("fileName"), body.get("totalChunks")
        if not isinstance(file_name, str) or not file_name:
            return envelope(400, "fileName is required.")
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            return envelope(400, "totalChunks must be a positive integer.")
        session_id = "ups_" + secrets.token_hex(8)
        expires_at = (datetime.now(timezone.utc) + timedelta(seconds=self.upload_ttl)).isoformat()
        session = _Session(
            company.company_id, file_name, total, time.monotonic() + self.upload_ttl, expires_at
        )
        with self._lock:
            self._sessions[session_id] = session
        return JSONResponse(
            {"sessionId": session_id, "totalChunks": total, "expiresAt": expires_at}, 201
        )

    def _session(self, company: Company, session_id: str) -> _Session | Response:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.company_id != company.company_id:
            return envelope(404, f"Upload session {session_id} not found.")
        if time.monotonic() >= session.expires:
            return envelope(
                410,
                "Upload session has expired. Start a new session with "
                "POST /v1/documents/upload/start and re-upload.",
            )
        return session

    async def _upload_chunk(self, request: Request) -> Response:
        company = self._caller(request, "company")
        if isinstance(company, Response):
            return company
        assert isinstance(company, Company)
        session_id = request.path_params["session_id"]
        session = self._session(company, session_id)
        if isinstance(session, Response):
            return session
        raw_index = request.path_params["index"]
        if not raw_index.isdigit() or int(raw_index) >= session.total_chunks:
            last = session.total_chunks - 1
            return envelope(400, f"Chunk index must be an integer from 0 to {last}.")
        chunk = await request.body()
        with self._lock:
            session.chunks[int(raw_index)] = len(chunk)
            received = len(session.chunks)
        return JSONResponse(
            {"sessionId": session_id, "chunkIndex": int(raw_index), "receivedChunks": received}
        )

    async def _upload_complete(self, request: Request) -> Response:
        company = self._caller(request, "company")
        if isinstance(company, Response):
            return company
        assert isinstance(company, Company)
        session = self._session(company, request.path_params["session_id"])
        if isinstance(session, Response):
            return session
        body = await _object(request)
        if isinstance(body, Response):
            return body
        entity, review = body.get("businessEntityId"), body.get("complianceReviewId")
        if entity is not None and review is not None:
            return envelope(
                422, "Provide exactly one of businessEntityId or complianceReviewId, not both."
            )
        if entity is None and review is None:
            return envelope(400, "businessEntityId or complianceReviewId is required.")
        if len(session.chunks) < session.total_chunks:
            return envelope(
                400,
                f"Upload is incomplete: {len(session.chunks)} of {session.total_chunks} "
                "chunks received.",
            )
        document_id = "doc_" + secrets.token_hex(8)
        with self._lock:
            self._documents[document_id] = _Document(company.company_id, session.file_name)
        return JSONResponse({"documentId": document_id, "status": "processing"}, 201)

    async def _document(self, request: Request) -> Response:
        company = self._caller(request, "company")
        if isinstance(company, Response):
            return company
        assert isinstance(company, Company)
        document_id = request.path_params["document_id"]
        with self._lock:
            document = self._documents.get(document_id)
        if document is None or document.company_id != company.company_id:
            return envelope(404, f"Document {document_id} not found.")
        return JSONResponse(
            {"documentId": document_id, "fileName": document.file_name, "status": document.status}
        )


async def _object(request: Request) -> dict[str, Any] | Response:
    """The JSON object body, or the 400 saying it is not one."""
    try:
        body = await read_json(request)
    except ValueError:
        return envelope(400, "Request body must be valid JSON.")
    if not isinstance(body, dict):
        return envelope(400, "Request body must be a JSON object.")
    return body
