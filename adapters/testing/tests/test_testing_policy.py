"""The policy API emulator answers every status row of its document (seed 001) with the flat
envelope ``{"statusCode", "message", "error"}``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from forbear_testing import Faults, PolicyAPI, serve

ORDER = {"action": "buy", "symbol": "ACME", "quantity": 10}


@pytest.fixture
def client(policy_api: PolicyAPI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=policy_api.url, timeout=5.0) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def flat(response: httpx.Response, status: int, error: str, message: str | None = None) -> None:
    """The response is ``status`` with exactly the flat envelope's three keys."""
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["statusCode", "message", "error"]
    assert (body["statusCode"], body["error"]) == (status, error)
    assert isinstance(body["message"], str) and body["message"]
    if message is not None:
        assert body["message"] == message


def test_200_allowed(client: httpx.Client, policy_api: PolicyAPI) -> None:
    """200: an order within policy is allowed."""
    response = client.post("/v1/validate", headers=bearer(policy_api.key), json=ORDER)
    assert (response.status_code, response.json()) == (200, {"allowed": True, "violations": []})


def test_200_with_allowed_false(client: httpx.Client, policy_api: PolicyAPI) -> None:
    """200 with allowed: false is still a 200 — the policy did its job."""
    order = {**ORDER, "symbol": "HALT", "quantity": 5000}
    for path in ("/v1/validate", "/v1/propose"):
        response = client.post(path, headers=bearer(policy_api.key), json=order)
        assert response.status_code == 200
        body = response.json()
        assert body["allowed"] is False
        assert {v["rule"] for v in body["violations"]} == {"max_order_size", "restricted_symbol"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "Malformed JSON body."),
        (b'{"action": "buy", "symbol": "ACME"}', "quantity is required."),
        (
            b'{"action": "hold", "symbol": "ACME", "quantity": 1}',
            "action must be one of: buy, sell.",
        ),
    ],
)
def test_400_bad_request(
    client: httpx.Client, policy_api: PolicyAPI, content: bytes, message: str
) -> None:
    """400: malformed JSON, a missing required field, an unknown enum value."""
    headers = {**bearer(policy_api.key), "Content-Type": "application/json"}
    response = client.post("/v1/validate", headers=headers, content=content)
    flat(response, 400, "BadRequest", message)


def test_401_quotes_the_document(client: httpx.Client, policy_api: PolicyAPI) -> None:
    """401: a key without the route's scope is exactly the document's example body."""
    key = policy_api.create_key(scopes=["propose"])
    response = client.post("/v1/validate", headers=bearer(key), json=ORDER)
    assert response.status_code == 401
    assert response.json() == {
        "statusCode": 401,
        "message": "Missing scope: validate",
        "error": "Unauthorized",
    }


def test_401_bad_expired_or_revoked_key(client: httpx.Client, policy_api: PolicyAPI) -> None:
    """401: a missing bearer, an unknown key, an expired key, a revoked key."""
    expired = policy_api.create_key(ttl=0.0)
    revoked = policy_api.create_key()
    policy_api.revoke_key(revoked)
    cases = [
        ({}, "Missing bearer token."),
        (bearer("pol_unknown"), "Invalid API key."),
        (bearer(expired), "API key has expired."),
        (bearer(revoked), "API key has been revoked."),
    ]
    for headers, message in cases:
        flat(client.post("/v1/validate", headers=headers, json=ORDER), 401, "Unauthorized", message)


def test_403_role_lacks_permission(client: httpx.Client, policy_api: PolicyAPI) -> None:
    """403: an org member whose role lacks the permission, though the key has the scope."""
    key = policy_api.create_key(user="usr_viewer", role="viewer")
    response = client.post("/v1/propose", headers=bearer(key), json=ORDER)
    flat(response, 403, "Forbidden", "Role viewer lacks permission: propose")


def test_404_unknown_route_and_id(client: httpx.Client, policy_api: PolicyAPI) -> None:
    """404: an unknown route, and an unknown resource id."""
    flat(client.get("/v1/valdiate", headers=bearer(policy_api.key)), 404, "NotFound")
    response = client.get("/v1/proposals/prop_missing", headers=bearer(policy_api.key))
    flat(response, 404, "NotFound", "Proposal prop_missing not found.")


def test_409_idempotency_key_with_a_different_payload(
    client: httpx.Client, policy_api: PolicyAPI
) -> None:
    """409: the same Idempotency-Key on propose with a different payload."""
    headers = {**bearer(policy_api.key), "Idempotency-Key": "idem-1"}
    assert client.post("/v1/propose", headers=headers, json=ORDER).status_code == 200
    response = client.post("/v1/propose", headers=headers, json={**ORDER, "quantity": 11})
    flat(response, 409, "Conflict")
    assert policy_api.proposal_count == 1


def test_same_idempotency_key_replays_the_first_answer(
    client: httpx.Client, policy_api: PolicyAPI
) -> None:
    """The same key and payload replay the original answer and create no duplicate."""
    headers = {**bearer(policy_api.key), "Idempotency-Key": "idem-2"}
    first = client.post("/v1/propose", headers=headers, json=ORDER)
    second = client.post("/v1/propose", headers=headers, json=dict(reversed(ORDER.items())))
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert policy_api.proposal_count == 1
    proposal = first.json()["proposalId"]
    fetched = client.get(f"/v1/proposals/{proposal}", headers=bearer(policy_api.key))
    assert fetched.json() == first.json()


def test_propose_without_a_key_duplicates(client: httpx.Client, policy_api: PolicyAPI) -> None:
    """Without Idempotency-Key every propose creates a proposal (why retries need a key)."""
    for _ in range(2):
        client.post("/v1/propose", headers=bearer(policy_api.key), json=ORDER)
    assert policy_api.proposal_count == 2


def test_429_per_user_fixed_window() -> None:
    """429: past limit requests per window per user, with Retry-After to the window's end."""
    api = PolicyAPI(limit=3, window=60.0)
    with serve(api), httpx.Client(base_url=api.url) as client:
        other = api.create_key(user="usr_other")
        statuses = [
            client.post("/v1/validate", headers=bearer(api.key), json=ORDER).status_code
            for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        response = client.post("/v1/validate", headers=bearer(api.key), json=ORDER)
        flat(response, 429, "TooManyRequests", "Rate limit exceeded: 3 requests per minute.")
        assert 59 <= int(response.headers["retry-after"]) <= 60
        assert client.post("/v1/validate", headers=bearer(other), json=ORDER).status_code == 200


def test_default_throttle_is_100_a_minute() -> None:
    """The documented throttle: 100 requests a minute per user."""
    api = PolicyAPI()
    assert (api.limit, api.window) == (100, 60.0)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, "InternalServerError"),
        (502, "BadGateway"),
        (503, "ServiceUnavailable"),
        (504, "GatewayTimeout"),
    ],
)
def test_5xx(client: httpx.Client, policy_api: PolicyAPI, status: int, error: str) -> None:
    """500 and 502/503/504 at the edge, when injected, in the same envelope."""
    policy_api.inject(Faults(fail_first=1, status=status))
    headers = bearer(policy_api.key)
    flat(client.post("/v1/validate", headers=headers, json=ORDER), status, error)
    assert client.post("/v1/validate", headers=headers, json=ORDER).status_code == 200
