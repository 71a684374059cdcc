"""The loop's parts, for libraries that run a retry loop of their own (backoff, tenacity, ...).

`forbear.Retrier.flow` gives one logical request as a generator of effects (`Send`, `Sleep`,
`Release`, `Replayable`, `forbear.Call`); a `CallSite` and its `Stepper` drive that flow from a
library's callbacks, reading responses and exceptions of httpx, requests and aiohttp
(`read_attempt`) without importing them. `sending` and `subscribers` serve instrumentation;
`Reading` is the plain tuple an adapter's ``outcome`` may return instead of an `forbear.Outcome`.
Ordinary adapters need none of this: `forbear.Retrier.run_sync` / `run_async` run the loop.
"""

from __future__ import annotations

from ._contract import Effect, Flow, Release, Replayable, Send, Sent, Sleep, add_note
from ._events import Sending, redact_url, sending, subscribers
from ._readers import Attempt, read_attempt
from ._state import Reading
from ._stepper import UNKNOWN_METHOD, CallSite, Stepper, attempt_headers

__all__ = [
    "UNKNOWN_METHOD",
    "Attempt",
    "CallSite",
    "Effect",
    "Flow",
    "Release",
    "Reading",
    "Replayable",
    "Send",
    "Sending",
    "Sent",
    "Sleep",
    "Stepper",
    "add_note",
    "attempt_headers",
    "read_attempt",
    "redact_url",
    "sending",
    "subscribers",
]
