"""One `Policy` per seed API, each following the lines of that API's error document.

Use them as they are or as a starting point: ``dataclasses.replace(profiles.sarucci,
max_wait=30)``. Statuses a profile does not retry are handed back at once.
"""

from __future__ import annotations

from ._policy import DEFAULT_RETRY_STATUSES, Backoff, Jitter, Policy

__all__ = ["partner_api", "policy_api", "sarucci"]

partner_api: Policy = Policy(
    retry_statuses=frozenset({429, 500}),
    max_reauths=0,
)
"""The partner API (X-API-Key).

- "429 Too Many Requests — rate limit hit | Yes, after Retry-After": 429 retried, its
  ``Retry-After`` waited in full.
- "500 Internal Server Error | Yes, with backoff": 500 retried with exponential backoff.
- "401 Unauthorized — missing or invalid API key | After fixing the key": an API key is not
  re-exchanged, so ``max_reauths=0``.
- "403 ... No", "404 ... No", "410 Gone — resource expired (e.g. an upload session) | No — start
  over", "400 ... After fixing the request", "422 ... Depends on cause": handed back at once.
"""

policy_api: Policy = Policy(
    retry_statuses=DEFAULT_RETRY_STATUSES,
    backoff=Backoff(initial=0.25, multiplier=2.0, max=10.0, jitter=Jitter.FULL),
    max_attempts=5,
    max_reauths=0,
)
"""The policy/validation API (bearer API keys with scopes).

- "Retry on 5xx and 429. Exponential backoff starting at 250ms with jitter, capped at ~10s.
  Give up after 5 attempts."
- "500 ... Retry-safe — exponential backoff with jitter"; "502 / 503 / 504 Edge / upstream ...
  Retry-safe".
- "401 Unauthorized ... Not retry-safe; rotate the key": no re-exchange (``max_reauths=0``).
- "Don't retry 4xx. Fix the request instead." (400, 403, 404, 409 handed back).
- "Use Idempotency-Key on propose so retries don't create duplicate attestation requests":
  a POST carrying ``Idempotency-Key`` is retried after a 5xx; without one it is not.
"""

sarucci: Policy = Policy(
    retry_statuses=DEFAULT_RETRY_STATUSES,
    backoff=Backoff(initial=0.5, multiplier=2.0, max=4.0, jitter=Jitter.NONE),
    max_attempts=5,
    max_reauths=1,
)
"""The Sarucci API (bearer tokens from an exchange).

- "5xx — retry with exponential backoff (suggested: 0.5s, 1s, 2s, 4s, then give up)": an exact
  schedule, four waits, five attempts.
- "4xx — do not retry (other than re-exchanging a token on a 401 and retrying once)": one
  re-exchange (``max_reauths=1``), effective when the adapter is given a `TokenSource`.
- "500 | Server error | Transient; retry with backoff"; "internal_error | Unhandled server-side
  failure; safe to retry". 429 and 502-504 follow RFC 6585 / RFC 9110 as transient answers.
"""
