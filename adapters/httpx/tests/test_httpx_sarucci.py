"""`RetryTransport` with the Sarucci profile against the emulated Sarucci API (seed 004)."""

from __future__ import annotations

import time

import httpx
import pytest

from forbear import TokenSource, profiles
from forbear_httpx import RetryTransport
from forbear_testing import Faults, SarucciAPI

COMPANY = "/v1/partner/companies/cmp_demo"


def exchange_with(api: SarucciAPI) -> TokenSource:
    """A token source whose exchange posts the partner's credentials to ``/v1/auth/token``."""

    def exchange() -> str:
        with httpx.Client() as plain:
            response = plain.post(api.url + "/v1/auth/token", data=api.partner.form())
            response.raise_for_status()
            return str(response.json()["access_token"])

    return TokenSource(exchange, origins=[api.url])


def test_retry_after_2_is_waited_in_full(sarucci_api: SarucciAPI) -> None:
    """A 503 with ``Retry-After: 2`` is retried no sooner than two seconds later."""
    transport = RetryTransport(policy=profiles.sarucci, token=exchange_with(sarucci_api))
    with httpx.Client(transport=transport) as http:
        assert http.get(sarucci_api.url + COMPANY).status_code == 200
        sarucci_api.inject(Faults(fail_first=1, status=503, retry_after=2))
        started = time.monotonic()
        response = http.get(sarucci_api.url + COMPANY)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed >= 2.0
    ok, refused, retried = sarucci_api.arrivals(COMPANY)
    assert (ok.status, refused.status, retried.status) == (200, 503, 200)
    assert refused.retry_after == "2"
    assert retried.time - refused.time >= 2.0


@pytest.mark.anyio
async def test_expired_token_is_re_exchanged_through_the_real_endpoint(
    sarucci_api: SarucciAPI,
) -> None:
    """An expired token's 401 makes one async exchange at ``/v1/auth/token``, then succeeds."""

    async def exchange() -> str:
        async with httpx.AsyncClient() as plain:
            response = await plain.post(
                sarucci_api.url + "/v1/auth/token", data=sarucci_api.partner.form()
            )
            return str(response.json()["access_token"])

    token = TokenSource(exchange, origins=[sarucci_api.url])
    transport = RetryTransport(policy=profiles.sarucci, token=token)
    async with httpx.AsyncClient(transport=transport) as http:
        assert (await http.get(sarucci_api.url + COMPANY)).status_code == 200
        sarucci_api.expire_tokens()
        assert (await http.get(sarucci_api.url + COMPANY)).status_code == 200
    assert [a.status for a in sarucci_api.arrivals(COMPANY)] == [200, 401, 200]
    assert len(sarucci_api.arrivals("/v1/auth/token")) == 2
    assert sarucci_api.tokens_issued == 2
