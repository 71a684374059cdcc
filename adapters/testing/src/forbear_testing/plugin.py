"""The ``forbear`` pytest plugin: live loopback servers as fixtures.

Loaded through the ``pytest11`` entry point of the forbear-testing distribution (the core
registers none). It imports only pytest at import time, so loading it costs every test session
nothing; the servers (Starlette, uvicorn) are imported when a fixture is first used.

Fixtures (servers are started once per session and reset before each test):

- ``fault_server``: a `forbear_testing.FaultServer`.
- ``raw_faults``: a `forbear_testing.RawFaults` listener (mode reset to its default).
- ``refused_port``: a port of 127.0.0.1 where nothing listens (held for the test).
- ``partner_api``, ``policy_api``, ``sarucci_api``: the seed API emulators.
- ``conformance_env``: a `forbear_testing.ScenarioEnv` for `run_scenario` / `arun_scenario`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from forbear_testing import (
        FaultServer,
        PartnerAPI,
        PolicyAPI,
        RawFaults,
        SarucciAPI,
        ScenarioEnv,
    )


@pytest.fixture(scope="session")
def _forbear_fault_server() -> Iterator[FaultServer]:
    from forbear_testing import serve

    with serve() as server:
        yield server


@pytest.fixture
def fault_server(_forbear_fault_server: FaultServer) -> FaultServer:
    """A live `FaultServer` on 127.0.0.1, reset (no scripts, no arrivals) for this test."""
    _forbear_fault_server.reset()
    return _forbear_fault_server


@pytest.fixture(scope="session")
def _forbear_raw_faults() -> Iterator[RawFaults]:
    from forbear_testing import RawFaults

    with RawFaults() as raw:
        yield raw


@pytest.fixture
def raw_faults(_forbear_raw_faults: RawFaults) -> RawFaults:
    """A live `RawFaults` listener on 127.0.0.1, reset for this test."""
    _forbear_raw_faults.reset()
    return _forbear_raw_faults


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port of 127.0.0.1 where nothing listens, held for this test."""
    from forbear_testing import refused_port as hold

    with hold() as port:
        yield port


@pytest.fixture(scope="session")
def _forbear_partner_api() -> Iterator[PartnerAPI]:
    from forbear_testing import PartnerAPI, serve

    with serve(PartnerAPI()) as api:
        yield api


@pytest.fixture
def partner_api(_forbear_partner_api: PartnerAPI) -> PartnerAPI:
    """The partner API emulator, live on 127.0.0.1, reset for this test."""
    _forbear_partner_api.reset()
    return _forbear_partner_api


@pytest.fixture(scope="session")
def _forbear_policy_api() -> Iterator[PolicyAPI]:
    from forbear_testing import PolicyAPI, serve

    with serve(PolicyAPI()) as api:
        yield api


@pytest.fixture
def policy_api(_forbear_policy_api: PolicyAPI) -> PolicyAPI:
    """The policy API emulator, live on 127.0.0.1, reset for this test."""
    _forbear_policy_api.reset()
    return _forbear_policy_api


@pytest.fixture(scope="session")
def _forbear_sarucci_api() -> Iterator[SarucciAPI]:
    from forbear_testing import SarucciAPI, serve

    with serve(SarucciAPI()) as api:
        yield api


@pytest.fixture
def sarucci_api(_forbear_sarucci_api: SarucciAPI) -> SarucciAPI:
    """The Sarucci API emulator, live on 127.0.0.1, reset for this test."""
    _forbear_sarucci_api.reset()
    return _forbear_sarucci_api


@pytest.fixture
def conformance_env(
    fault_server: FaultServer, raw_faults: RawFaults, refused_port: int
) -> ScenarioEnv:
    """The live servers a conformance scenario runs against."""
    from forbear_testing import ScenarioEnv

    return ScenarioEnv(server=fault_server, raw=raw_faults, refused_port=refused_port)
