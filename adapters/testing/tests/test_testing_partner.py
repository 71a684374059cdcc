"""The partner API emulator answers every status row of its document (seed 000) with the
flat envelope ``{"error", "message", "statusCode"}``."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest

from forbear_testing import Faults, PartnerAPI


@pytest.fixture
def client(partner_api: PartnerAPI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=partner_api.url, timeout=5.0) as client:
        yield client


@pytest.fixture
def partner(partner_api: PartnerAPI) -> dict[str, str]:
    return {"X-API-Key": partner_api.partner_key}


@pytest.fixture
def company(partner_api: PartnerAPI) -> dict[str, str]:
    return {"X-API-Key": partner_api.add_company().company_key}


def flat(response: httpx.Response, status: int, error: str, message: str | None = None) -> None:
    """The response is ``status`` with exactly the flat envelope's three keys."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error", "message", "statusCode"]
    assert (body["error"], body["statusCode"]) == (error, status)
    assert isinstance(body["message"], str) and body["message"]
    if message is not None:
        assert body["message"] == message


def test_health_needs_no_key(client: httpx.Client) -> None:
    """/health answers 200 without an API key."""
    response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_onboard_returns_a_company_key(client: httpx.Client, partner: dict[str, str]) -> None:
    """201: onboarding with the Partner Key returns the new company and its Company Key."""
    response = client.post("/v1/onboard", headers=partner, json={"legalName": "Initech LLC"})
    assert response.status_code == 201
    body = response.json()
    assert body["legalName"] == "Initech LLC"
    assert body["companyKey"].startswith("ck_")
    listed = client.get("/v1/companies", headers=partner).json()["companies"]
    assert listed == [{"companyId": body["companyId"], "legalName": "Initech LLC"}]


def test_400_quotes_the_document(client: httpx.Client, partner: dict[str, str]) -> None:
    """400: a missing legalName is exactly the document's example body."""
    response = client.post("/v1/onboard", headers=partner, json={})
    assert response.status_code == 400
    assert response.json() == {
        "error": "Bad Request",
        "message": "legalName is required.",
        "statusCode": 400,
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"legalName": 42}, "legalName must be a string."),
        (
            {"legalName": "A", "selectedControlItemIds": "ci_encryption_at_rest"},
            "selectedControlItemIds must be a JSON array of strings.",
        ),
        (
            {"legalName": "A", "selectedControlClusterIds": [1]},
            "selectedControlClusterIds must be a JSON array of strings.",
        ),
    ],
)
def test_400_wrong_types(
    client: httpx.Client, partner: dict[str, str], body: object, message: str
) -> None:
    """400: a wrong type or a malformed array field names the field."""
    flat(client.post("/v1/onboard", headers=partner, json=body), 400, "Bad Request", message)


def test_400_malformed_json(client: httpx.Client, partner: dict[str, str]) -> None:
    """400: a body that is not JSON."""
    response = client.post("/v1/onboard", headers=partner, content=b"{nope")
    flat(response, 400, "Bad Request", "Request body must be valid JSON.")


@pytest.mark.parametrize("key", [None, "", "pk_unknown"])
def test_401_missing_empty_or_unknown_key(client: httpx.Client, key: str | None) -> None:
    """401: the X-API-Key header is missing, empty or not a recognized key."""
    headers = {} if key is None else {"X-API-Key": key}
    flat(client.get("/v1/companies", headers=headers), 401, "Unauthorized")


def test_403_company_key_on_a_partner_operation(
    client: httpx.Client, company: dict[str, str]
) -> None:
    """403: a Company Key cannot list companies or onboard."""
    flat(client.get("/v1/companies", headers=company), 403, "Forbidden")
    response = client.post("/v1/onboard", headers=company, json={"legalName": "X"})
    flat(response, 403, "Forbidden", "This operation requires a Partner Key.")


def test_403_partner_key_on_a_company_operation(
    client: httpx.Client, partner: dict[str, str]
) -> None:
    """403: a Partner Key cannot start a document upload."""
    response = client.post(
        "/v1/documents/upload/start", headers=partner, json={"fileName": "a", "totalChunks": 1}
    )
    flat(response, 403, "Forbidden", "This operation requires a Company Key.")


def _upload(client: httpx.Client, key: dict[str, str], chunks: int = 2) -> str:
    started = client.post(
        "/v1/documents/upload/start",
        headers=key,
        json={"fileName": "report.pdf", "totalChunks": chunks},
    )
    assert started.status_code == 201
    session = str(started.json()["sessionId"])
    for index in range(chunks):
        response = client.put(
            f"/v1/documents/upload/{session}/chunks/{index}", headers=key, content=b"x" * 10
        )
        assert response.status_code == 200
        assert response.json()["receivedChunks"] == index + 1
    return session


def test_chunked_upload_and_status_polling(client: httpx.Client, company: dict[str, str]) -> None:
    """200/201: upload in chunks, complete with one entity id, then poll the document."""
    session = _upload(client, company)
    done = client.post(
        f"/v1/documents/upload/{session}/complete",
        headers=company,
        json={"businessEntityId": "be_1"},
    )
    assert done.status_code == 201
    document = done.json()["documentId"]
    polled = client.get(f"/v1/documents/{document}", headers=company)
    assert polled.status_code == 200
    assert polled.json() == {
        "documentId": document,
        "fileName": "report.pdf",
        "status": "processing",
    }


def test_404_unknown_or_not_yours(
    client: httpx.Client, partner_api: PartnerAPI, company: dict[str, str]
) -> None:
    """404: an unknown document, and a document belonging to another company."""
    flat(client.get("/v1/documents/doc_missing", headers=company), 404, "Not Found")
    session = _upload(client, company, chunks=1)
    document = client.post(
        f"/v1/documents/upload/{session}/complete",
        headers=company,
        json={"complianceReviewId": "cr_1"},
    ).json()["documentId"]
    other = {"X-API-Key": partner_api.add_company("Other Co").company_key}
    flat(client.get(f"/v1/documents/{document}", headers=other), 404, "Not Found")


def test_404_unknown_route(client: httpx.Client, partner: dict[str, str]) -> None:
    """404: a route that does not exist, in the same envelope."""
    flat(client.get("/v1/nothing-here", headers=partner), 404, "Not Found")


def test_410_expired_upload_session(
    client: httpx.Client, partner_api: PartnerAPI, company: dict[str, str]
) -> None:
    """410: a chunk sent to an expired upload session."""
    started = client.post(
        "/v1/documents/upload/start", headers=company, json={"fileName": "a", "totalChunks": 2}
    )
    session = started.json()["sessionId"]
    partner_api.expire_uploads()
    response = client.put(f"/v1/documents/upload/{session}/chunks/0", headers=company, content=b"x")
    flat(response, 410, "Gone")
    assert "Start a new session" in response.json()["message"]


def test_410_after_the_session_ttl() -> None:
    """410: sessions last upload_ttl seconds (24 hours by default)."""
    api = PartnerAPI(upload_ttl=0.0)
    assert PartnerAPI().upload_ttl == 24 * 60 * 60
    key = {"X-API-Key": api.add_company().company_key}
    transport = httpx.ASGITransport(app=api.app)

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            started = await client.post(
                "/v1/documents/upload/start", headers=key, json={"fileName": "a", "totalChunks": 1}
            )
            session = started.json()["sessionId"]
            return await client.put(
                f"/v1/documents/upload/{session}/chunks/0", headers=key, content=b"x"
            )

    flat(anyio.run(run), 410, "Gone")


def test_422_both_entity_and_review(client: httpx.Client, company: dict[str, str]) -> None:
    """422: submitting both businessEntityId and complianceReviewId."""
    session = _upload(client, company, chunks=1)
    response = client.post(
        f"/v1/documents/upload/{session}/complete",
        headers=company,
        json={"businessEntityId": "be_1", "complianceReviewId": "cr_1"},
    )
    flat(response, 422, "Unprocessable Entity")


def test_422_control_not_whitelisted(client: httpx.Client, partner: dict[str, str]) -> None:
    """422: referencing a control that is not whitelisted for the partner."""
    response = client.post(
        "/v1/onboard",
        headers=partner,
        json={"legalName": "A", "selectedControlItemIds": ["ci_not_whitelisted"]},
    )
    flat(response, 422, "Unprocessable Entity")
    frameworks = client.get("/v1/compliance-frameworks", headers=partner).json()["frameworks"]
    item = frameworks[0]["controlItems"][0]
    ok = client.post(
        "/v1/onboard", headers=partner, json={"legalName": "A", "selectedControlItemIds": [item]}
    )
    assert ok.status_code == 201


def test_429_with_retry_after(
    client: httpx.Client, partner_api: PartnerAPI, partner: dict[str, str]
) -> None:
    """429: past the rate, with Retry-After in seconds."""
    partner_api.inject(Faults(rate=0.5, burst=1))
    assert [client.get("/v1/companies", headers=partner).status_code for _ in range(2)] == [
        200,
        200,
    ]
    response = client.get("/v1/companies", headers=partner)
    flat(response, 429, "Too Many Requests")
    assert response.headers["retry-after"] == "2"


def test_500_internal_server_error(
    client: httpx.Client, partner_api: PartnerAPI, partner: dict[str, str]
) -> None:
    """500: an unexpected server-side error, when injected."""
    partner_api.inject(Faults(fail_first=1, status=500))
    flat(client.get("/v1/companies", headers=partner), 500, "Internal Server Error")
    assert client.get("/v1/companies", headers=partner).status_code == 200


def test_health_is_never_faulted(client: httpx.Client, partner_api: PartnerAPI) -> None:
    """Injected faults leave /health alone."""
    partner_api.inject(Faults(every=1, status=500))
    assert client.get("/health").status_code == 200


def test_company_update(client: httpx.Client, company: dict[str, str]) -> None:
    """200: a Company Key reads and updates its own company."""
    response = client.patch("/v1/company", headers=company, json={"legalName": "Renamed"})
    assert (response.status_code, response.json()["legalName"]) == (200, "Renamed")
    assert client.get("/v1/company", headers=company).json()["legalName"] == "Renamed"


def test_keys_never_in_repr(partner_api: PartnerAPI) -> None:
    """Neither the emulator's nor a company's repr shows a key."""
    company = partner_api.add_company()
    assert partner_api.partner_key not in repr(partner_api)
    assert company.company_key not in repr(company)


def test_reset_forgets_companies_but_keeps_the_partner_key(
    client: httpx.Client, partner_api: PartnerAPI, company: dict[str, str]
) -> None:
    """reset drops companies and their keys; the Partner Key keeps working."""
    partner_api.reset()
    assert client.get("/v1/company", headers=company).status_code == 401
    headers = {"X-API-Key": partner_api.partner_key}
    assert client.get("/v1/companies", headers=headers).json() == {"companies": []}
