"""`ForbearInstrumentor`: forbear's decisions as OpenTelemetry metrics and span events.

Fed by `forbear.subscribe`, so every adapter in the process is covered (httpx, requests,
aiohttp, backoff, ...) without touching a client. `uninstrument` unsubscribes: with no
subscriber left, forbear builds no events at all.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.metrics import CallbackOptions, Observation

import forbear

from . import _traces
from ._attributes import GATE, REASON, decision_attributes, origin_attributes, request_attributes

__all__ = [
    "ATTEMPTS",
    "BUDGET_REFUSALS",
    "GATE_DELAY",
    "GATE_RATE",
    "GIVE_UPS",
    "REAUTHS",
    "RETRIES",
    "RETRY_WAIT",
    "ForbearInstrumentor",
]

#: Sends judged, by origin, method, action, reason and status (or error type).
ATTEMPTS = "forbear.attempts"
#: Retries decided, by reason (``retry-after``, ``backoff``, ...) and status or error type.
RETRIES = "forbear.retries"
#: Requests given up on, by reason (``attempts-exhausted``, ``budget-exhausted``, ...).
GIVE_UPS = "forbear.give_ups"
#: Seconds waited before a retry (the server's ``Retry-After`` or backoff), by reason.
RETRY_WAIT = "forbear.retry.wait"
#: Seconds the gate held an attempt before it was sent (0 when it went at once).
GATE_DELAY = "forbear.gate.delay"
#: The rate a gate paces an origin at, in sends per second (only origins being paced).
GATE_RATE = "forbear.gate.rate"
#: Retries the retry budget refused (the reason ``budget-exhausted``).
BUDGET_REFUSALS = "forbear.budget.refusals"
#: Token re-exchanges after a 401 (the action ``reauth``).
REAUTHS = "forbear.reauths"

#: Bucket boundaries for waits, in seconds: from a millisecond's pacing to `Policy.max_wait`.
WAIT_BUCKETS = (0.0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_log = logging.getLogger(__name__)
_RETRY = forbear.Action.RETRY
_GIVE_UP = forbear.Action.GIVE_UP
_REAUTH = forbear.Action.REAUTH
_BUDGET = forbear.Reason.BUDGET_EXHAUSTED

#: One `ResendProcessor` per SDK tracer provider, reused on every `instrument` (a provider
#: cannot drop a processor, so re-instrumenting switches the same one back on).
_PROCESSORS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_PROCESSORS_LOCK = threading.Lock()

GateSpec = Iterable[Any] | Mapping[str, Any]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("forbear-otel")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0"


class ForbearInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Metrics and span events for every forbear decision in the process.

    ``instrument(meter_provider=..., tracer_provider=..., gates=...)`` subscribes to forbear's
    events; ``uninstrument()`` unsubscribes. Providers default to the global ones. ``gates``
    adds gates to report the pacing rate of, besides `forbear.process_gate` (a sequence, named
    ``gate-1``, ``gate-2``, ... in the ``forbear.gate`` attribute, or a mapping of names).
    ``spans=False`` records metrics only.

    Pass the tracer provider the client instrumentation uses: on an SDK provider a span
    processor stamps each re-sent attempt's own span with ``http.request.resend_count``.
    """

    _unsubscribe: Callable[[], None] | None = None
    _processor: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """The library instrumented: forbear's core, in the range this release serves."""
        return ("forbear >= 0.2, < 0.3",)

    def _instrument(self, **kwargs: Any) -> None:
        meter = metrics.get_meter(
            __name__.rpartition(".")[0] or __name__,
            _version(),
            kwargs.get("meter_provider"),
        )
        tracer_provider = kwargs.get("tracer_provider") or trace.get_tracer_provider()
        spans = bool(kwargs.get("spans", True))
        self._gates = _named_gates(kwargs.get("gates"))
        self._active = True

        attempts = meter.create_counter(
            ATTEMPTS, unit="{attempt}", description="Sends judged by forbear."
        )
        retries = meter.create_counter(
            RETRIES, unit="{retry}", description="Retries forbear decided, by reason."
        )
        give_ups = meter.create_counter(
            GIVE_UPS, unit="{request}", description="Requests forbear gave up on, by reason."
        )
        reauths = meter.create_counter(
            REAUTHS, unit="{reauth}", description="Token re-exchanges after a 401."
        )
        refusals = meter.create_counter(
            BUDGET_REFUSALS, unit="{retry}", description="Retries the retry budget refused."
        )
        waits = meter.create_histogram(
            RETRY_WAIT,
            unit="s",
            description="Time waited before a retry.",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        gate_delays = meter.create_histogram(
            GATE_DELAY,
            unit="s",
            description="Time the gate held an attempt before it was sent.",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        meter.create_observable_gauge(
            GATE_RATE,
            callbacks=[self._observe_rates],
            unit="{request}/s",
            description="The rate a gate paces an origin at.",
        )

        stamp = spans and self._enable_processor(tracer_provider)

        def hook(event: forbear.Event) -> None:
            try:
                attributes = decision_attributes(event)
                attempts.add(1, attributes)
                request = request_attributes(event)
                gate_delays.record(event.gate_wait, request)
                action = event.action
                if action is _RETRY:
                    by_reason = {**attributes}
                    del by_reason["forbear.action"]
                    retries.add(1, by_reason)
                    waits.record(event.wait, {**request, REASON: event.reason.value})
                elif action is _GIVE_UP:
                    by_reason = {**attributes}
                    del by_reason["forbear.action"]
                    give_ups.add(1, by_reason)
                    if event.reason is _BUDGET:
                        refusals.add(1, by_reason)
                elif action is _REAUTH:
                    reauths.add(1, request)
                if spans:
                    _traces.on_event(event, stamp)
            except Exception:  # a hook must never break the request it observes
                _log.debug("forbear_otel: recording an event failed", exc_info=True)

        self._unsubscribe = forbear.subscribe(hook)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._active = False
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        processor, self._processor = self._processor, None
        if processor is not None:
            processor.enabled = False
        _traces.pending.set(None)

    def _enable_processor(self, provider: Any) -> bool:
        add = getattr(provider, "add_span_processor", None)
        if add is None:  # not the SDK's provider: nothing to stamp attempts with
            return False
        from ._processor import ResendProcessor

        with _PROCESSORS_LOCK:
            processor = _PROCESSORS.get(provider)
            if processor is None:
                processor = _PROCESSORS[provider] = ResendProcessor()
                add(processor)
            processor.enabled = True
        self._processor = processor
        return True

    def _observe_rates(self, options: CallbackOptions) -> Iterable[Observation]:
        if not getattr(self, "_active", False):
            return []
        observations = []
        for name, gate in (("process", forbear.process_gate()), *self._gates):
            rates = getattr(gate, "rates", None)
            if rates is None:
                continue
            for key, rate in rates().items():
                # Only origin keys: a gate keyed by API key or route must not leak the key.
                origin = origin_attributes(key) if forbear.origin_of(key) == key else ()
                if origin:
                    observations.append(Observation(rate, {**dict(origin), GATE: name}))
        return observations


def _named_gates(gates: GateSpec | None) -> tuple[tuple[str, Any], ...]:
    if gates is None:
        return ()
    if isinstance(gates, Mapping):
        return tuple((str(name), gate) for name, gate in gates.items())
    return tuple((f"gate-{number}", gate) for number, gate in enumerate(gates, 1))
