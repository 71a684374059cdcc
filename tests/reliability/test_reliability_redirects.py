"""Redirect isolation: a hop to another origin never carries the token or forbear's headers.

Server A answers with a redirect to server B, a different origin; the token source is for A
only. B must receive neither the token (in ``Authorization`` or in a custom header such as
``X-API-Key``, which the clients' own cross-origin stripping does not know about) nor the
``Idempotency-Key`` or ``X-Request-Id`` forbear attached to the request to A.

The choice for the headers forbear injects: they belong to one logical request to one
origin, and each redirect hop is a logical request of its own, so a hop gets its own (a fresh
key for a POST kept by a 307, a fresh request id), never the previous hop's. An idempotency
key is the origin's handle on one operation and a request id names one exchange with it;
another origin has no use for either, and the same rule keeps every adapter alike (requests
and aiohttp rebuild each hop from the caller's request anyway). Headers the caller set
themselves are the client library's business, not forbear's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from forbear_testing import FaultServer, Reply, serve

from forbear import Policy, TokenSource

from .drivers import Driver, Options

TOKEN = "tok-redirect-canary-7f3a"
INJECTED = ("idempotency-key", "x-request-id")


@dataclass(frozen=True)
class Credential:
    """How the token is sent."""

    header: str
    scheme: str

    def __str__(self) -> str:
        return self.header


@pytest.fixture(scope="module")
def _other_origin() -> Iterator[FaultServer]:
    with serve() as server:
        yield server


@pytest.fixture
def other_origin(_other_origin: FaultServer) -> FaultServer:
    """A second fault server: another origin (another port of 127.0.0.1)."""
    _other_origin.reset()
    return _other_origin


@pytest.mark.parametrize(
    "credential",
    [Credential("Authorization", "Bearer"), Credential("X-API-Key", "")],
    ids=str,
)
@pytest.mark.parametrize(("method", "status"), [("GET", 302), ("POST", 307)], ids=str)
def test_redirect_to_another_origin(
    header_driver: Driver,
    credential: Credential,
    method: str,
    status: int,
    fault_server: FaultServer,
    other_origin: FaultServer,
) -> None:
    """A redirect to another origin carries neither the token nor the first hop's headers."""
    fault_server.script("/start", [Reply(status, headers={"Location": other_origin.url + "/land"})])
    token = TokenSource(
        lambda: TOKEN,
        origins=[fault_server.url],
        header=credential.header,
        scheme=credential.scheme,
    )
    options = Options(Policy(), token=token, idempotency_keys=True, request_ids=True)
    body = b'{"order": 42}' if method == "POST" else None
    with header_driver.open(options) as session:
        answer = session.send(method, fault_server.url + "/start", body=body)
    assert (answer.status, answer.body) == (200, b"ok"), answer.error

    [first] = fault_server.arrivals("/start")
    [landed] = other_origin.arrivals("/land")
    assert TOKEN in (first.header(credential.header) or "")
    assert landed.header(credential.header) is None
    assert all(TOKEN not in value for _, value in landed.headers)
    assert landed.method == method
    for name in INJECTED:
        sent = first.header(name)
        assert sent is not None or (name == "idempotency-key" and method == "GET")
        assert landed.header(name) != sent or sent is None
    # The hop is a logical request of its own: a kept POST gets its own key, any hop its own id.
    assert landed.header("x-request-id") is not None
    assert (landed.header("idempotency-key") is not None) == (method == "POST")
