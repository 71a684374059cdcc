"""Injected faults: 5xx bursts, every Nth request, a seeded fraction, rate limits, and their
reset; shared by the three emulators."""

from __future__ import annotations

import httpx
import pytest

from forbear_testing import Faults, PartnerAPI, PolicyAPI, SarucciAPI, serve


def statuses(client: httpx.Client, url: str, headers: dict[str, str], n: int) -> list[int]:
    return [client.get(url, headers=headers).status_code for _ in range(n)]


def test_fail_first_then_every_nth(partner_api: PartnerAPI) -> None:
    """The first N requests fail, then every Nth request counted from the first."""
    partner_api.inject(Faults(fail_first=2, every=3, status=500))
    key = {"X-API-Key": partner_api.partner_key}
    with httpx.Client() as client:
        got = statuses(client, partner_api.url + "/v1/companies", key, 7)
    assert got == [500, 500, 500, 200, 200, 500, 200]


def test_fraction_is_seeded(policy_api: PolicyAPI) -> None:
    """A seeded fraction fails the same requests every time it is injected."""
    key = {"Authorization": f"Bearer {policy_api.key}"}
    url = policy_api.url + "/v1/proposals/nope"
    runs = []
    with httpx.Client() as client:
        for _ in range(2):
            policy_api.inject(Faults(fraction=0.5, seed=7, status=502))
            runs.append(statuses(client, url, key, 20))
    assert runs[0] == runs[1]
    assert set(runs[0]) == {404, 502}


def test_retry_after_on_injected_5xx(partner_api: PartnerAPI) -> None:
    """An injected 5xx carries Retry-After when asked to."""
    partner_api.inject(Faults(fail_first=1, status=503, retry_after=1.5))
    response = httpx.get(
        partner_api.url + "/v1/companies", headers={"X-API-Key": partner_api.partner_key}
    )
    assert (response.status_code, response.headers["retry-after"]) == (503, "2")
    assert response.json()["statusCode"] == 503


def test_rate_limit_is_per_credential(sarucci_api: SarucciAPI) -> None:
    """Each credential has its own bucket."""
    sarucci_api.inject(Faults(rate=0.1))
    one = {"Authorization": f"Bearer {sarucci_api.issue_token()}"}
    two = {"Authorization": f"Bearer {sarucci_api.issue_token()}"}
    url = sarucci_api.url + "/v1/partner/companies/cmp_demo"
    with httpx.Client() as client:
        assert statuses(client, url, one, 2) == [200, 429]
        assert statuses(client, url, two, 1) == [200]
        limited = client.get(url, headers=one)
    assert limited.json()["error"]["code"] == "rate_limited"
    assert limited.headers["retry-after"] == "10"


def test_reset_restores_the_constructors_faults() -> None:
    """reset drops injected faults and goes back to those given at construction."""
    api = PartnerAPI(faults=Faults(every=2, status=500))
    key = {"X-API-Key": api.partner_key}
    with serve(api), httpx.Client() as client:
        assert statuses(client, api.url + "/v1/companies", key, 2) == [200, 500]
        api.inject(Faults())
        assert statuses(client, api.url + "/v1/companies", key, 2) == [200, 200]
        api.reset()
        assert api.faults == Faults(every=2, status=500)
        assert statuses(client, api.url + "/v1/companies", key, 2) == [200, 500]


def test_emulators_record_arrivals(sarucci_api: SarucciAPI) -> None:
    """Emulators record every arrival like the fault server, and reset forgets them."""
    with httpx.Client() as client:
        client.post(sarucci_api.url + "/v1/auth/token", json=sarucci_api.partner.form())
    (arrival,) = sarucci_api.arrivals("/v1/auth/token")
    assert (arrival.method, arrival.status) == ("POST", 200)
    assert b"client_secret" in arrival.body
    assert "client_secret" not in repr(arrival)
    sarucci_api.reset()
    assert sarucci_api.arrivals() == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fail_first": -1},
        {"every": 1.5},
        {"fraction": 2.0},
        {"status": 404},
        {"rate": 0.0},
        {"token_uses": 0},
        {"token_ttl": 0.0},
    ],
)
def test_faults_refuse_bad_values(kwargs: dict[str, object]) -> None:
    """Faults validates its fields when built."""
    with pytest.raises(ValueError):
        Faults(**kwargs)  # type: ignore[arg-type]
