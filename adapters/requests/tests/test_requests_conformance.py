"""The whole `forbear.testing` conformance table, through a `requests.Session`."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from forbear.testing import SCENARIOS, Result, Scenario, ScenarioEnv, SendContext, run_scenario
from forbear_requests import RetryAdapter, error_kind

import requests


def _failure(exc: requests.RequestException) -> Result:
    kind = error_kind(exc)
    if kind is None:
        raise exc  # not a failure the table expects: let the test show it
    return Result.failure(exc, kind)


class SessionDriver:
    """A `requests.Session` with `RetryAdapter` mounted on ``http://``, one per scenario."""

    name = "requests"

    def send(self, ctx: SendContext) -> Sequence[Result]:
        adapter = RetryAdapter(
            policy=ctx.policy,
            token=ctx.token_source(),
            idempotency_keys=ctx.idempotency_keys,
            # A pool of one blocks for its connection: a leaked response would hang the test.
            pool_maxsize=ctx.pool_size or max(10, ctx.concurrency),
            pool_block=ctx.pool_size is not None,
        )
        with requests.Session() as session:
            session.mount("http://", adapter)

            def send_one() -> Result:
                try:
                    response = session.request(
                        ctx.method,
                        ctx.url,
                        headers=ctx.headers,
                        data=ctx.content(),
                        timeout=ctx.timeout,
                    )
                except requests.RequestException as exc:
                    return _failure(exc)
                return Result.response(response.status_code, response.content)

            return ctx.gather(send_one)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_conformance(scenario: Scenario, conformance_env: ScenarioEnv) -> None:
    """requests.Session with RetryAdapter does what the scenario's summary says."""
    run_scenario(SessionDriver(), scenario, conformance_env)
