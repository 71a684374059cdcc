"""The Sarucci API emulator answers every status and error code of its document (seed 004)
with the nested envelope and an ``X-Request-Id`` on every response."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from forbear_testing import Faults, SarucciAPI

PARTNER = "/v1/partner/companies"


@pytest.fixture
def client(sarucci_api: SarucciAPI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sarucci_api.url, timeout=5.0) as client:
        yield client


@pytest.fixture
def partner(client: httpx.Client, sarucci_api: SarucciAPI) -> dict[str, str]:
    response = client.post("/v1/auth/token", json=sarucci_api.partner.form())
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def nested(response: httpx.Response, status: int, code: str) -> None:
    """``status`` with exactly ``{"error": {"code", "message", "request_id"}}``, the request id
    also in ``X-Request-Id``."""
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["error"]
    assert list(body["error"]) == ["code", "message", "request_id"]
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert uuid.UUID(body["error"]["request_id"])
    assert response.headers["x-request-id"] == body["error"]["request_id"]


def test_token_exchange(client: httpx.Client, sarucci_api: SarucciAPI) -> None:
    """200: client credentials (JSON or form) trade for a bearer token with an expiry."""
    for response in (
        client.post("/v1/auth/token", json=sarucci_api.partner.form()),
        client.post("/v1/auth/token", data=sarucci_api.partner.form()),
    ):
        assert response.status_code == 200
        body = response.json()
        assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
        assert body["access_token"].startswith("sar_pt_")
    assert sarucci_api.tokens_issued == 2


def test_200_and_201(client: httpx.Client, partner: dict[str, str]) -> None:
    """201 creates a company; 200 reads it back, with the request id header."""
    created = client.post(PARTNER, headers=partner, json={"name": "Globex"})
    assert created.status_code == 201
    company = created.json()["company_id"]
    response = client.get(f"{PARTNER}/{company}", headers=partner)
    assert response.status_code == 200
    assert response.json() == {"company_id": company, "name": "Globex", "runs": 0}
    assert uuid.UUID(response.headers["x-request-id"])


def test_request_id_echoed_when_a_valid_uuid(client: httpx.Client, partner: dict[str, str]) -> None:
    """A valid UUID sent in X-Request-Id comes back, in the header and the error body."""
    sent = str(uuid.uuid4())
    ok = client.get(f"{PARTNER}/cmp_demo", headers={**partner, "X-Request-Id": sent})
    assert ok.headers["x-request-id"] == sent
    error = client.get(f"{PARTNER}/cmp_nope", headers={**partner, "X-Request-Id": sent})
    assert error.json()["error"]["request_id"] == sent == error.headers["x-request-id"]
    other = client.get(f"{PARTNER}/cmp_demo", headers={**partner, "X-Request-Id": "not-a-uuid"})
    assert other.headers["x-request-id"] != "not-a-uuid"
    assert uuid.UUID(other.headers["x-request-id"])


def test_401_missing_bearer(client: httpx.Client) -> None:
    """401 missing_bearer: no Authorization: Bearer header."""
    nested(client.get(f"{PARTNER}/cmp_demo"), 401, "missing_bearer")
    nested(
        client.get(f"{PARTNER}/cmp_demo", headers={"Authorization": "Basic abc"}),
        401,
        "missing_bearer",
    )


def test_401_invalid_token(client: httpx.Client) -> None:
    """401 invalid_token: a malformed bearer token."""
    response = client.get(f"{PARTNER}/cmp_demo", headers={"Authorization": "Bearer garbage"})
    nested(response, 401, "invalid_token")


def test_401_invalid_credentials(
    client: httpx.Client, sarucci_api: SarucciAPI, partner: dict[str, str]
) -> None:
    """401 invalid_credentials: wrong client secret, an unknown token, an expired token."""
    bad = {**sarucci_api.partner.form(), "client_secret": "wrong"}
    nested(client.post("/v1/auth/token", json=bad), 401, "invalid_credentials")
    unknown = {"Authorization": "Bearer sar_pt_" + "0" * 32}
    nested(client.get(f"{PARTNER}/cmp_demo", headers=unknown), 401, "invalid_credentials")
    sarucci_api.expire_tokens()
    nested(client.get(f"{PARTNER}/cmp_demo", headers=partner), 401, "invalid_credentials")


def test_403_partner_token_required(client: httpx.Client, sarucci_api: SarucciAPI) -> None:
    """403 partner_token_required: a company token on a partner endpoint."""
    token = client.post("/v1/auth/token", json=sarucci_api.company.form()).json()["access_token"]
    company = {"Authorization": f"Bearer {token}"}
    nested(client.get(f"{PARTNER}/cmp_demo", headers=company), 403, "partner_token_required")
    assert client.get("/v1/company", headers=company).json()["company_id"] == "cmp_demo"


def test_404_company_not_found(client: httpx.Client, partner: dict[str, str]) -> None:
    """404 company_not_found: an unknown company_id."""
    nested(client.get(f"{PARTNER}/cmp_unknown", headers=partner), 404, "company_not_found")


def test_404_no_run_at_offset(client: httpx.Client, partner: dict[str, str]) -> None:
    """404 no_run_at_offset: no persisted run at the requested runs_ago offset."""
    runs = f"{PARTNER}/cmp_demo/runs"
    first = client.post(runs, headers=partner).json()["run_id"]
    second = client.post(runs, headers=partner).json()["run_id"]
    assert client.get(runs, headers=partner, params={"runs_ago": 0}).json()["run_id"] == second
    assert client.get(runs, headers=partner, params={"runs_ago": 1}).json()["run_id"] == first
    response = client.get(runs, headers=partner, params={"runs_ago": 2})
    nested(response, 404, "no_run_at_offset")


def test_404_no_trained_artifact(client: httpx.Client, partner: dict[str, str]) -> None:
    """404 no_trained_artifact: approval requested but no trained artifact exists."""
    models = f"{PARTNER}/cmp_demo/models"
    nested(client.get(f"{models}/latest", headers=partner), 404, "no_trained_artifact")
    response = client.post(f"{models}/approve", headers=partner, json={"model_id": "mdl_x"})
    nested(response, 404, "no_trained_artifact")


def test_409_model_id_stale(client: httpx.Client, partner: dict[str, str]) -> None:
    """409 model_id_stale: the model id approved is no longer the latest artifact."""
    runs, models = f"{PARTNER}/cmp_demo/runs", f"{PARTNER}/cmp_demo/models"
    old = client.post(runs, headers=partner, json={"trained": True}).json()["model_id"]
    new = client.post(runs, headers=partner, json={"trained": True}).json()["model_id"]
    response = client.post(f"{models}/approve", headers=partner, json={"model_id": old})
    nested(response, 409, "model_id_stale")
    approved = client.post(f"{models}/approve", headers=partner, json={"model_id": new})
    assert approved.json() == {"model_id": new, "approved": True}


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", PARTNER, {"json": {}}),
        ("GET", f"{PARTNER}/cmp_demo/runs", {"params": {"runs_ago": "-1"}}),
        ("POST", f"{PARTNER}/cmp_demo/models/approve", {"json": {"model": "x"}}),
        ("POST", "/v1/auth/token", {"json": {"client_id": "only"}}),
    ],
)
def test_422_validation_error(
    client: httpx.Client,
    partner: dict[str, str],
    method: str,
    path: str,
    kwargs: dict[str, object],
) -> None:
    """422 validation_error: the body or query params fail validation."""
    response = client.request(method, path, headers=partner, **kwargs)  # type: ignore[arg-type]
    nested(response, 422, "validation_error")


def test_500_internal_error(
    client: httpx.Client, sarucci_api: SarucciAPI, partner: dict[str, str]
) -> None:
    """500 internal_error: an unhandled server-side failure, when injected; safe to retry."""
    sarucci_api.inject(Faults(fail_first=1, status=500))
    nested(client.get(f"{PARTNER}/cmp_demo", headers=partner), 500, "internal_error")
    assert client.get(f"{PARTNER}/cmp_demo", headers=partner).status_code == 200


def test_504_from_the_load_balancer_has_only_the_header(
    client: httpx.Client, sarucci_api: SarucciAPI, partner: dict[str, str]
) -> None:
    """A 504 at the edge has no body, yet carries X-Request-Id."""
    sarucci_api.inject(Faults(fail_first=1, status=504, retry_after=2))
    response = client.get(f"{PARTNER}/cmp_demo", headers=partner)
    assert (response.status_code, response.content) == (504, b"")
    assert uuid.UUID(response.headers["x-request-id"])
    assert response.headers["retry-after"] == "2"


def test_unknown_route_uses_the_envelope(client: httpx.Client) -> None:
    """An unknown route is a 404 in the nested envelope too."""
    nested(client.get("/v1/nowhere"), 404, "not_found")


def test_tokens_expire_after_n_uses(client: httpx.Client, sarucci_api: SarucciAPI) -> None:
    """With token_uses=2 a token serves two requests, then answers invalid_credentials."""
    sarucci_api.inject(Faults(token_uses=2))
    token = client.post("/v1/auth/token", json=sarucci_api.partner.form()).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    statuses = [client.get(f"{PARTNER}/cmp_demo", headers=headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 401]


def test_tokens_expire_after_t_seconds(client: httpx.Client, sarucci_api: SarucciAPI) -> None:
    """With token_ttl the exchange says so in expires_in and the token lapses then."""
    sarucci_api.inject(Faults(token_ttl=2.0))
    body = client.post("/v1/auth/token", json=sarucci_api.partner.form()).json()
    assert body["expires_in"] == 2
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get(f"{PARTNER}/cmp_demo", headers=headers).status_code == 200
    sarucci_api.inject(Faults(token_ttl=0.2))
    body = client.post("/v1/auth/token", json=sarucci_api.partner.form()).json()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    time.sleep(0.25)
    nested(client.get(f"{PARTNER}/cmp_demo", headers=headers), 401, "invalid_credentials")


def test_secrets_never_in_repr(sarucci_api: SarucciAPI) -> None:
    """Client secrets never appear in a repr."""
    assert sarucci_api.partner.client_secret not in repr(sarucci_api.partner)
    assert sarucci_api.partner.client_secret not in repr(sarucci_api)
