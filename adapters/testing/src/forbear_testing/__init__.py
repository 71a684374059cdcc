"""forbear_testing: real loopback servers to test retrying HTTP clients against.

- `serve` runs a `FaultServer` (scripted replies, rate limits, tokens) or a seed API emulator
  (`PartnerAPI`, `PolicyAPI`, `SarucciAPI`) on 127.0.0.1 at a free port, in a thread.
- `RawFaults` and `refused_port` give the connection-level faults: resets, silence, half
  responses, refused connections.
- `SCENARIOS`, `run_scenario` and `arun_scenario` are the conformance suite every adapter runs.
- The ``forbear`` pytest plugin (`forbear_testing.plugin`, registered by this distribution
  only) exposes all of it as fixtures.

Install it with ``pip install forbear-testing``; ``forbear.testing`` is an alias of this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from ._limits import EpochWindow, FixedWindow, InFlight, TokenBucket
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
    "EpochWindow",
    "Expect",
    "FaultServer",
    "Faults",
    "FixedWindow",
    "InFlight",
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

#: Where each public name lives. Imported on first use, so that ``forbear_testing.plugin``
#: (loaded by pytest for every project that installed forbear-testing) imports nothing it lacks.
_EXPORTS: dict[str, str] = {
    "DEFAULT_REPLY": "._server",
    "FAST_POLICY": "._scenarios",
    "HALF_RESPONSE": "._sockets",
    "HOST": "._service",
    "NO_FAULTS": "._emulator",
    "SCENARIOS": "._scenarios",
    "Arrival": "._records",
    "AsyncDriver": "._harness",
    "BodyKind": "._scenarios",
    "Company": "._partner",
    "Credentials": "._sarucci",
    "Driver": "._harness",
    "Emulator": "._emulator",
    "EpochWindow": "._limits",
    "Expect": "._scenarios",
    "FaultServer": "._server",
    "Faults": "._emulator",
    "FixedWindow": "._limits",
    "InFlight": "._limits",
    "PartnerAPI": "._partner",
    "PolicyAPI": "._policy",
    "RawArrival": "._sockets",
    "RawFaults": "._sockets",
    "RawMode": "._sockets",
    "Reply": "._server",
    "Result": "._harness",
    "SarucciAPI": "._sarucci",
    "Scenario": "._scenarios",
    "ScenarioEnv": "._harness",
    "SendContext": "._harness",
    "Service": "._service",
    "Target": "._scenarios",
    "TokenBucket": "._limits",
    "arun_scenario": "._harness",
    "refused_port": "._sockets",
    "run_scenario": "._harness",
    "scenario_named": "._scenarios",
    "serve": "._server",
}


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'forbear_testing' has no attribute {name!r}")
    try:
        module = importlib.import_module(module_name, __name__)
    except ImportError as exc:
        raise ImportError(
            f"forbear_testing.{name} needs starlette, uvicorn and h11: "
            "install them with `pip install forbear-testing`"
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
