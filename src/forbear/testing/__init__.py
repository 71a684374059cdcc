"""forbear.testing: real loopback servers to test retrying HTTP clients against.

- `serve` runs a `FaultServer` (scripted replies, rate limits, tokens) or a seed API emulator
  (`PartnerAPI`, `PolicyAPI`, `SarucciAPI`) on 127.0.0.1 at a free port, in a thread.
- `RawFaults` and `refused_port` give the connection-level faults: resets, silence, half
  responses, refused connections.
- `SCENARIOS`, `run_scenario` and `arun_scenario` are the conformance suite every adapter runs.
- The ``forbear`` pytest plugin (`forbear.testing.plugin`) exposes all of it as fixtures.

Needs the ``testing`` extra: ``pip install "forbear[testing]"``.
"""

from __future__ import annotations

from ._emulator import NO_FAULTS, Emulator, Faults
from ._harness import (
    AsyncDriver,
    Driver,
    Result,
    ScenarioEnv,
    SendContext,
    arun_scenario,
    run_scenario,
)
from ._limits import FixedWindow, TokenBucket
from ._partner import Company, PartnerAPI
from ._policy import PolicyAPI
from ._records import Arrival
from ._sarucci import Credentials, SarucciAPI
from ._scenarios import (
    FAST_POLICY,
    SCENARIOS,
    BodyKind,
    Expect,
    Scenario,
    Target,
    scenario_named,
)
from ._server import DEFAULT_REPLY, FaultServer, Reply, serve
from ._service import HOST, Service
from ._sockets import HALF_RESPONSE, RawArrival, RawFaults, RawMode, refused_port

__all__ = [
    "DEFAULT_REPLY",
    "FAST_POLICY",
    "HALF_RESPONSE",
    "HOST",
    "NO_FAULTS",
    "SCENARIOS",
    "Arrival",
    "AsyncDriver",
    "BodyKind",
    "Company",
    "Credentials",
    "Driver",
    "Emulator",
    "Expect",
    "FaultServer",
    "Faults",
    "FixedWindow",
    "PartnerAPI",
    "PolicyAPI",
    "RawArrival",
    "RawFaults",
    "RawMode",
    "Reply",
    "Result",
    "SarucciAPI",
    "Scenario",
    "ScenarioEnv",
    "SendContext",
    "Service",
    "Target",
    "TokenBucket",
    "arun_scenario",
    "refused_port",
    "run_scenario",
    "scenario_named",
    "serve",
]
