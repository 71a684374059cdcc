"""`HostGate`: pacing learned from 429s, the host-wide pause, expiry; then the simulated crawl.

The unit tests drive the gate with plain `Decision` values and an injected clock (``now=``), so
nothing sleeps. The crawl runs N clients through one `Retrier` on a virtual clock against a
simulated token-bucket server (see ``simulation.py``).
"""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from simulation import VirtualClock, crawl

from forbear import Action, Decision, HostGate, Reason, origin_of

ORIGIN = "https://api.example.test"
DATE_FORM = "Sun, 06 Nov 1994 08:49:37 GMT"


def success(status: int = 200) -> Decision:
    return Decision(Action.RETURN, 0.0, "success", 1, status)


def refused(
    status: int = 429, wait: float = 1.0, action: Action = Action.RETRY, *, dated: bool = False
) -> Decision:
    """A retryable refusal whose server named ``wait`` seconds (as a date when ``dated``)."""
    reason = Reason.WAIT_EXCEEDS_MAX if action is Action.GIVE_UP else Reason.RETRY_AFTER
    return Decision(
        action, 0.0 if action is Action.GIVE_UP else wait, reason, 1, status, None, wait, dated
    )


def gate_at(now: float = 0.0, **options: float) -> tuple[HostGate, VirtualClock]:
    """A gate on a virtual clock at ``now``; these tests hold at 0.95 unless told otherwise."""
    clock = VirtualClock()
    clock.now = now
    options.setdefault("hold", 0.95)
    return HostGate(clock=clock, **options), clock  # type: ignore[arg-type]


def successes(gate: HostGate, start: float, stop: float, per_second: float) -> float:
    """Feed successes at ``per_second`` from ``start`` until ``stop``; the time reached."""
    now = start
    while now < stop:
        gate.observe(ORIGIN, success(), {}, now=now)
        now += 1.0 / per_second
    return now


def reservations(gate: HostGate, count: int, now: float) -> list[float]:
    """The absolute send times of ``count`` reservations all made at ``now``."""
    return [now + gate.delay(ORIGIN, now=now) for _ in range(count)]


class SpyLock:
    """A lock that counts acquisitions."""

    def __init__(self) -> None:
        self.inner = threading.Lock()
        self.acquired = 0

    def __enter__(self) -> None:
        self.acquired += 1
        self.inner.acquire()

    def __exit__(self, *exc: object) -> None:
        self.inner.release()


# -- origins and configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://api.example.test/v1/items?x=1", "https://api.example.test"),
        ("HTTPS://API.Example.TEST/", "https://api.example.test"),
        ("https://user:secret@api.example.test:8443/x", "https://api.example.test:8443"),
        ("http://api.example.test?q=1", "http://api.example.test"),
        ("http://api.example.test#frag", "http://api.example.test"),
        ("https://good.test@evil.test/", "https://evil.test"),
        ("/relative/path", ""),
    ],
)
def test_origin_of(url: str, origin: str) -> None:
    """The gate key is scheme://host[:port], lower-cased, without userinfo, path or query."""
    assert origin_of(url) == origin


@pytest.mark.parametrize("options", [{"burst": 0}, {"hold": 0.0}, {"hold": 1.5}])
def test_bad_configuration_raises(options: dict[str, float]) -> None:
    """A burst below one or a hold outside (0, 1] is a configuration error."""
    with pytest.raises(ValueError, match="HostGate"):
        HostGate(**options)  # type: ignore[arg-type]


# -- before the first 429: free ---------------------------------------------------------------


def test_no_pacing_before_the_first_429() -> None:
    """An origin that never refused is neither paced nor paused: every delay is zero."""
    gate, _ = gate_at()
    successes(gate, 0.0, 3.0, per_second=1000)
    assert reservations(gate, 100, now=3.0) == [3.0] * 100
    assert gate.rate(ORIGIN) is None
    assert gate.paused_until(ORIGIN) is None
    assert gate.delay("https://never-seen.test", now=3.0) == 0.0


def test_happy_path_takes_no_lock() -> None:
    """Once an origin is known, delays and successes within a second take no lock at all."""
    gate, _ = gate_at(learn_for=0.0)
    gate.observe(ORIGIN, success(), {}, now=0.0)  # the first sight of the origin registers it
    spy = SpyLock()
    gate._lock = spy  # type: ignore[assignment]
    for step in range(100):
        assert gate.delay(ORIGIN, now=step * 0.005) == 0.0
        gate.observe(ORIGIN, success(), {}, now=step * 0.005)
    assert spy.acquired == 0


def test_errors_and_other_statuses_do_not_start_pacing() -> None:
    """Transport errors, 404s and 5xx without a wait leave the origin unpaced and unpaused."""
    gate, _ = gate_at()
    gate.observe(ORIGIN, Decision(Action.RETRY, 0.2, "backoff", 1, None), None, now=0.0)
    gate.observe(ORIGIN, Decision(Action.RETURN, 0.0, "not-retryable", 1, 404), {}, now=0.1)
    gate.observe(ORIGIN, Decision(Action.RETRY, 0.3, "backoff", 1, 500), {}, now=0.2)
    assert gate.rate(ORIGIN) is None
    assert gate.paused_until(ORIGIN) is None
    assert gate.delay(ORIGIN, now=0.3) == 0.0


# -- pacing ------------------------------------------------------------------------------------


def test_first_429_starts_pacing_from_recent_successes() -> None:
    """The first 429 paces the origin at a first guess: half the success rate just seen."""
    gate, _ = gate_at()
    now = successes(gate, 0.0, 0.5, per_second=200)
    gate.observe(ORIGIN, refused(), {"Retry-After": "1"}, now=now)
    assert gate.rate(ORIGIN) == pytest.approx(0.5 * 200, rel=0.05)


def test_first_guess_after_a_long_happy_path_still_reflects_recent_successes() -> None:
    """After many seconds of successes the first guess comes from the last seconds, not 1 r/s."""
    gate, _ = gate_at()
    now = successes(gate, 0.0, 5.0, per_second=100)
    gate.observe(ORIGIN, refused(), {"Retry-After": "1"}, now=now)
    rate = gate.rate(ORIGIN)
    assert rate is not None
    assert 25.0 <= rate <= 100.0


def test_paced_sends_are_spaced_one_interval_apart() -> None:
    """Sends reserved at once go one interval apart at the rate of their slot: a first guess
    gives the first gap, and the guess's doubling schedule only shortens the later ones."""
    gate, _ = gate_at(burst=1, learn_for=0.0)
    now = successes(gate, 0.0, 0.5, per_second=200)
    gate.observe(ORIGIN, refused(), {"Retry-After": "1"}, now=now)
    rate = gate.rate(ORIGIN)
    assert rate is not None
    slots = reservations(gate, 10, now=now)
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert slots[0] == now
    assert gaps[0] == pytest.approx(1.0 / rate, rel=1e-6)
    for at, gap in zip(slots, gaps, strict=False):
        assert gap == pytest.approx(1.0 / (rate * 2.0 ** ((at - now) / 0.5)), rel=1e-6)


def test_a_crowd_under_a_first_guess_follows_its_doubling_schedule() -> None:
    """2,000 sends reserved at once after a 429 with no success seen (a guess of 1/s) are spread
    over the guess's doubling schedule, seconds, not the 2,000 s the guess alone would take."""
    gate, _ = gate_at(burst=2, learn_for=0.0)
    gate.observe(ORIGIN, refused(), {"Retry-After": "1"}, now=0.0)
    assert gate.rate(ORIGIN) == 1.0
    slots = reservations(gate, 2000, now=1.0)
    assert slots[:2] == [1.0, 1.0]
    assert all(later > earlier for earlier, later in itertools.pairwise(slots[1:]))
    assert sum(1 for at in slots if at < 2.0) <= 12
    assert slots[-1] < 10.0


def test_run_of_429s_measures_the_server_rate_and_holds_at_095() -> None:
    """Successes between 429s of one run give the server's rate; the pacer holds at 0.95 of it."""
    gate, _ = gate_at(learn_for=0.0)
    now = successes(gate, 0.0, 1.0, per_second=1000)  # a generous first guess (~500 r/s)
    gate.observe(ORIGIN, refused(), {}, now=now)
    episode, let_through = now, 0
    while now < episode + 0.2:  # what the server let through
        now += 0.005
        gate.observe(ORIGIN, success(), {}, now=now)
        let_through += 1
    now += 0.005
    gate.observe(ORIGIN, refused(), {}, now=now)
    measured = let_through / (now - episode)
    assert gate.rate(ORIGIN) == pytest.approx(0.95 * measured, rel=0.03)


def measured_gate() -> tuple[HostGate, float, float]:
    """A gate whose rate was measured in a run of 429s: (gate, the time, the hold rate)."""
    gate, _ = gate_at()
    now = successes(gate, 0.0, 1.0, per_second=1000)
    gate.observe(ORIGIN, refused(), {}, now=now)
    now = successes(gate, now + 0.001, now + 0.2, per_second=200)
    gate.observe(ORIGIN, refused(), {}, now=now)
    hold = gate.rate(ORIGIN)
    assert hold is not None
    return gate, now, hold


def test_probing_is_flat_then_slow_then_bounded() -> None:
    """A client held back by the pacer sees the rate hold for a second, then creep up, capped."""
    gate, now, hold = measured_gate()
    clock = now

    def rate_after(calm: float) -> float:
        # A busy client: it asks for slots faster than the pacer gives them, right up to `calm`.
        nonlocal clock
        while clock < now + calm:
            gate.delay(ORIGIN, now=clock)
            clock += 0.5 / (gate.rate(ORIGIN) or 1.0)
        gate.delay(ORIGIN, now=now + calm)
        rate = gate.rate(ORIGIN)
        assert rate is not None
        return rate

    assert rate_after(0.9) == pytest.approx(hold)
    assert hold < rate_after(2.0) <= 1.05 * hold
    assert rate_after(4.0) > rate_after(3.0) > rate_after(2.0)
    assert rate_after(29.0) == pytest.approx(10 * hold)


def test_probing_waits_while_the_client_does_not_use_the_rate() -> None:
    """Seconds in which nobody waited on the pacer do not raise the rate."""
    gate, now, hold = measured_gate()
    for second in range(1, 20):  # one send a second: far below the paced rate
        gate.delay(ORIGIN, now=now + second)
    assert gate.rate(ORIGIN) == pytest.approx(hold)


def test_unmeasured_first_guess_doubles_until_the_server_objects() -> None:
    """A first guess (no run measured yet) doubles every half second of calm."""
    gate, _ = gate_at(learn_for=0.0)
    now = successes(gate, 0.0, 0.5, per_second=200)
    gate.observe(ORIGIN, refused(), {}, now=now)
    guess = gate.rate(ORIGIN)
    assert guess is not None
    gate.delay(ORIGIN, now=now + 1.0)
    assert gate.rate(ORIGIN) == pytest.approx(4 * guess)


def test_calm_crossing_holds_just_under_the_rate_that_crossed() -> None:
    """The first 429 after calm (a second of successes at the pace) marks the probe's rate as
    too high: hold at 0.95 of it."""
    gate, _ = gate_at(learn_for=0.0)
    now = successes(gate, 0.0, 0.5, per_second=200)
    gate.observe(ORIGIN, refused(), {}, now=now)
    gate.delay(ORIGIN, now=now + 1.0)
    crossed = gate.rate(ORIGIN)
    assert crossed is not None
    now = successes(gate, now + 0.01, now + 1.0, per_second=crossed)
    gate.observe(ORIGIN, refused(), {}, now=now)
    assert gate.rate(ORIGIN) == pytest.approx(0.95 * crossed)


def test_refused_again_after_their_retry_after_the_run_goes_on() -> None:
    """Sends refused together come back after their Retry-After and are refused again, with
    little getting through between: the run of 429s goes on and measures the server's rate
    (here 3 successes in its last half second, trusted in part), instead of holding
    just under the pace as after a calm spell (which, wave after wave, cut 5 % a second)."""
    gate, _ = gate_at(learn_for=0.0)
    now = successes(gate, 0.0, 0.5, per_second=200)
    gate.observe(ORIGIN, refused(), {}, now=now)  # a first guess: paced from here
    gate.delay(ORIGIN, now=now + 0.01)
    probed = gate.rate(ORIGIN)
    assert probed is not None
    start = now = successes(gate, now + 0.01, now + 1.0, per_second=probed)
    for _ in range(8):  # the crowd meets the limit: a run of 429s begins
        gate.observe(ORIGIN, refused(), {}, now=now)
    held = gate.rate(ORIGIN)
    assert held == pytest.approx(0.95 * probed)
    for moment in (1.0, 1.02, 1.04):  # back after Retry-After: 1; three get through
        gate.observe(ORIGIN, success(), {}, now=start + moment)
    gate.observe(ORIGIN, refused(), {}, now=start + 1.05)
    measured = 0.95 * 3 / 0.5  # over the run's last half second
    trust = 3 / (0.1 * held)  # a tenth of a second's worth at the pace is trusted in full
    assert gate.rate(ORIGIN) == pytest.approx(held - trust * (held - measured))


@pytest.mark.parametrize("burst", [1, 2, 4])
def test_after_a_wait_at_most_burst_sends_go_at_once(burst: int) -> None:
    """After a pause ends, exactly ``burst`` sends are released together, the rest one by one."""
    gate, _ = gate_at(burst=burst)
    gate.observe(ORIGIN, refused(503, wait=10.0), {"Retry-After": "10"}, now=0.0)
    rate = gate.rate(ORIGIN)
    assert rate is not None
    slots = reservations(gate, burst + 5, now=0.5)
    assert slots[:burst] == [10.0] * burst
    assert slots[burst] == pytest.approx(10.0 + 1.0 / rate)
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots[burst - 1 :])]
    assert all(0.0 < later <= earlier for earlier, later in itertools.pairwise(gaps))


def test_idle_paced_origin_banks_at_most_burst_tokens() -> None:
    """A paced origin idle for a while releases at most ``burst`` sends at once, never a flood."""
    gate, _ = gate_at(burst=2)
    now = successes(gate, 0.0, 1.0, per_second=1000)
    gate.observe(ORIGIN, refused(), {}, now=now)
    now = successes(gate, now + 0.001, now + 0.2, per_second=200)
    gate.observe(ORIGIN, refused(), {}, now=now)
    slots = reservations(gate, 50, now=now + 10.0)
    assert slots.count(now + 10.0) == 2
    assert len(set(slots)) == 49


def test_pacing_ends_after_calm() -> None:
    """Thirty seconds without a 429 and without a paced wait return the origin to the free path."""
    gate, _ = gate_at()
    now = successes(gate, 0.0, 0.5, per_second=200)
    gate.observe(ORIGIN, refused(), {}, now=now)
    assert gate.rate(ORIGIN) is not None
    assert gate.delay(ORIGIN, now=now + 31.0) == 0.0
    assert gate.rate(ORIGIN) is None
    assert reservations(gate, 20, now=now + 31.5) == [now + 31.5] * 20


def test_a_new_pacing_spell_probes_again_after_a_header_rate() -> None:
    """A header-given rate from an earlier spell does not freeze the next spell's probing."""
    gate, _ = gate_at()
    policy = {"RateLimit-Policy": '"burst";q=10;w=1'}
    gate.observe(ORIGIN, refused(), policy, now=0.0)
    assert gate.rate(ORIGIN) == pytest.approx(9.5)
    assert gate.delay(ORIGIN, now=40.0) == 0.0  # calm: unpaced
    now = successes(gate, 40.0, 40.5, per_second=200)
    gate.observe(ORIGIN, refused(), {}, now=now)
    guess = gate.rate(ORIGIN)
    assert guess is not None
    gate.delay(ORIGIN, now=now + 1.0)
    rate = gate.rate(ORIGIN)
    assert rate is not None
    assert rate > 2 * guess


# -- rates named by the server --------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "rate"),
    [
        ({"RateLimit-Policy": '"default";q=100;w=10'}, 9.5),
        ({"RateLimit-Policy": "100;w=10"}, 9.5),
        ({"X-RateLimit-Policy": "60;w=60"}, 0.95),
        ({"RateLimit-Policy": '"default";q=100;w=10', "RateLimit": '"default";r=40;t=5'}, 7.6),
        ({"RateLimit-Policy": '"a";q=100;w=10, "b";q=10;w=10'}, 9.5 / 10),
    ],
)
def test_policy_header_sets_the_rate_directly(headers: dict[str, str], rate: float) -> None:
    """The tightest announced rate sets the pace (at the hold, 0.95) and stops probing."""
    gate, _ = gate_at()
    gate.observe(ORIGIN, refused(), headers, now=0.0)
    assert gate.rate(ORIGIN) == pytest.approx(rate)
    gate.delay(ORIGIN, now=20.0)
    assert gate.rate(ORIGIN) == pytest.approx(rate)


@pytest.mark.parametrize(
    ("headers", "rate"),
    [
        ({"RateLimit": '"default";r=50;t=10'}, 0.95 * 5.0),
        ({"RateLimit-Remaining": "30", "RateLimit-Reset": "10"}, 0.95 * 3.0),
        ({"X-RateLimit-Remaining": "8", "X-RateLimit-Reset": "4"}, 0.95 * 2.0),
    ],
)
def test_remaining_over_reset_sets_the_rate_while_paced(
    headers: dict[str, str], rate: float
) -> None:
    """Remaining requests over the seconds to reset (at the hold), read while paced."""
    gate, _ = gate_at()
    gate.observe(ORIGIN, refused(), {}, now=0.0)
    gate.observe(ORIGIN, success(), headers, now=0.1)
    assert gate.rate(ORIGIN) == pytest.approx(rate)


@pytest.mark.parametrize(
    "headers",
    [
        {"RateLimit-Policy": "q=abc;w=10"},
        {"RateLimit-Policy": '"default";q=100;w=0'},
        {"X-RateLimit-Remaining": "8", "X-RateLimit-Reset": "1767225600"},  # a Unix time
        {"X-RateLimit-Remaining": "-8", "X-RateLimit-Reset": "4"},
        {"X-RateLimit-Remaining": "٨", "X-RateLimit-Reset": "4"},
        {"RateLimit": "garbage"},
        {"RateLimit": '"default";r=0;t=10'},
    ],
)
def test_unusable_rate_headers_are_ignored(headers: dict[str, str]) -> None:
    """Garbage, zero windows, Unix-time resets and nothing remaining leave the rate alone."""
    gate, _ = gate_at()
    now = successes(gate, 0.0, 0.5, per_second=200)
    gate.observe(ORIGIN, refused(), {}, now=now)
    before = gate.rate(ORIGIN)
    gate.observe(ORIGIN, success(), headers, now=now)
    gate.observe(ORIGIN, refused(), headers, now=now)
    assert gate.rate(ORIGIN) == before


def test_announced_limits_pace_before_any_429() -> None:
    """The first response's announcement paces the origin at once: no 429 needed."""
    gate, _ = gate_at()
    gate.observe(ORIGIN, success(), {"RateLimit-Policy": '"default";q=10;w=1'}, now=0.0)
    assert gate.rate(ORIGIN) == pytest.approx(9.5)
    assert not gate.free(ORIGIN)
    assert reservations(gate, 4, now=0.0) == pytest.approx([0.0, 1 / 9.5, 2 / 9.5, 3 / 9.5])


def test_announced_is_the_announced_pace_while_fresh() -> None:
    """`HostGate.announced`: the pace an announcement set (after the hold), the tightest
    partition heard lately; None before, once stale, and for a rate learned from 429s."""
    gate, _ = gate_at()
    assert gate.announced(ORIGIN) is None
    gate.observe(ORIGIN, success(), {"RateLimit-Policy": '"p";q=10;w=1;pk=a'}, now=0.0)
    gate.observe(ORIGIN, success(), {"RateLimit-Policy": '"p";q=100;w=1;pk=b'}, now=0.0)
    assert gate.announced(ORIGIN, now=1.0) == pytest.approx(9.5)
    assert gate.announced(ORIGIN, now=30.0) is None  # nothing heard for 30 s
    learnt, _ = gate_at()
    now = successes(learnt, 0.0, 0.5, per_second=200)
    learnt.observe(ORIGIN, refused(), {}, now=now)
    assert learnt.rate(ORIGIN) is not None
    assert learnt.announced(ORIGIN, now=now) is None
    only = {"RateLimit-Policy": '"inflight";q=2;qu="concurrent-requests"'}
    gate.observe("http://other.test", success(), only, now=0.0)
    assert gate.announced("http://other.test", now=0.0) is None


def test_headers_are_read_once_a_second_on_the_happy_path() -> None:
    """An unpaced origin's headers are read on its first response, then once a second."""
    gate, _ = gate_at(learn_for=0.0)
    quiet = {"RateLimit-Policy": '"default";q=100000;w=1'}
    gate.observe(ORIGIN, success(), {}, now=0.0)
    gate.observe(ORIGIN, success(), quiet, now=0.5)  # inside the first second: not read
    assert gate.rate(ORIGIN) is None
    gate.observe(ORIGIN, success(), quiet, now=1.0)  # a second later: read
    assert gate.rate(ORIGIN) == pytest.approx(95000.0)


def test_nothing_remaining_pauses_until_the_reset() -> None:
    """A success saying nothing remains pauses the origin until the reset it names."""
    gate, _ = gate_at()
    headers = {"RateLimit-Policy": '"d";q=100;w=10', "RateLimit": '"d";r=0;t=5'}
    gate.observe(ORIGIN, success(), headers, now=0.0)
    assert gate.paused_until(ORIGIN) == pytest.approx(5.0)
    assert gate.delay(ORIGIN, now=1.0) == pytest.approx(4.0)


def test_partitions_are_kept_apart_and_the_tightest_paces() -> None:
    """Each partition's announcement is kept; the key is paced at the tightest heard lately."""
    gate, clock = gate_at()
    gate.observe(ORIGIN, success(), {"RateLimit-Policy": '"p";q=10;w=1;pk=a'}, now=0.0)
    clock.now = 0.1
    gate.observe(ORIGIN, success(), {"RateLimit-Policy": '"p";q=100;w=1;pk=b'}, now=0.1)
    assert gate.rate(ORIGIN) == pytest.approx(9.5)  # b does not overwrite a
    clock.now = 20.0  # a not heard from for a while: b alone paces
    gate.observe(ORIGIN, success(), {"RateLimit-Policy": '"p";q=100;w=1;pk=b'}, now=20.0)
    assert gate.rate(ORIGIN) == pytest.approx(95.0)


def test_concurrent_requests_quota_caps_sends_in_flight() -> None:
    """A ``concurrent-requests`` quota lets that many sends fly; the next waits for one."""
    gate, clock = gate_at()
    policy = {"RateLimit-Policy": '"inflight";q=2;qu="concurrent-requests"'}
    gate.observe(ORIGIN, success(), policy, now=0.0)
    assert reservations(gate, 2, now=0.0) == pytest.approx([0.0, 0.0], abs=1e-6)
    clock.now = 0.1
    gate.observe(ORIGIN, success(), policy, now=0.0)  # one answered: a send takes 0.1 s
    # Its place is free; then the next waits for the oldest in flight to end (0.0 + 0.1),
    # and the one after for the send just reserved (0.1 + 0.1).
    assert reservations(gate, 3, now=0.1) == pytest.approx([0.1, 0.1, 0.2], abs=1e-6)


# -- the host-wide pause ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "wait", "pauses"),
    [
        (429, {"Retry-After": "1"}, 1.0, False),
        (429, {"Retry-After": "4"}, 4.0, False),
        (429, {"Retry-After": "5"}, 5.0, True),
        (429, {"Retry-After": "30"}, 30.0, True),
        (429, {"Retry-After": DATE_FORM}, 2.0, True),
        (503, {"Retry-After": "1"}, 1.0, True),
        (503, {"Retry-After": "2"}, 2.0, True),
        (502, {"Retry-After": "2"}, 2.0, False),
    ],
)
def test_pause_only_when_the_wait_carries_information(
    status: int, headers: dict[str, str], wait: float, pauses: bool
) -> None:
    """A 503 with a wait, an HTTP-date or a long wait pauses the origin; a short 429 does not."""
    gate, _ = gate_at()
    dated = "GMT" in headers["Retry-After"]  # decide says so; the gate no longer re-parses
    gate.observe(ORIGIN, refused(status, wait=wait, dated=dated), headers, now=100.0)
    if pauses:
        assert gate.paused_until(ORIGIN) == 100.0 + wait
        assert gate.delay(ORIGIN, now=100.5) == pytest.approx(wait - 0.5)
    else:
        assert gate.paused_until(ORIGIN) is None
        assert gate.delay(ORIGIN, now=100.5) < 0.1


def test_short_retry_after_does_not_stop_the_pipe() -> None:
    """After a 429 with ``Retry-After: 1`` other requests keep flowing at the paced rate."""
    gate, _ = gate_at()
    now = successes(gate, 0.0, 1.0, per_second=400)
    gate.observe(ORIGIN, refused(), {"Retry-After": "1"}, now=now)
    slots = reservations(gate, 20, now=now)
    assert max(slots) - now < 0.5


def test_pause_lasts_until_its_end_and_never_shrinks() -> None:
    """A later, shorter wait does not end a longer pause early."""
    gate, _ = gate_at()
    gate.observe(ORIGIN, refused(503, wait=10.0), {"Retry-After": "10"}, now=0.0)
    gate.observe(ORIGIN, refused(503, wait=1.0), {"Retry-After": "1"}, now=1.0)
    assert gate.paused_until(ORIGIN) == 10.0
    assert gate.delay(ORIGIN, now=2.0) == pytest.approx(8.0)


def test_unpaced_pause_clears_once_over() -> None:
    """When a pause on an unpaced origin ends, the origin is reported unpaused."""
    gate, _ = gate_at()
    gate.observe(ORIGIN, refused(503, wait=2.0), {"Retry-After": "2"}, now=0.0)
    assert gate.paused_until(ORIGIN) == 2.0
    assert gate.delay(ORIGIN, now=40.0) == 0.0  # calm and past the pause
    assert gate.delay(ORIGIN, now=40.1) == 0.0
    assert gate.paused_until(ORIGIN) is None


def test_a_wait_nobody_honours_pauses_nobody() -> None:
    """A 503 asking for an hour (beyond ``max_wait``: the request gives up) pauses no one."""
    gate, _ = gate_at()
    gate.observe(
        ORIGIN, refused(503, wait=3600.0, action=Action.GIVE_UP), {"Retry-After": "3600"}, now=0.0
    )
    assert gate.paused_until(ORIGIN) is None
    assert gate.delay(ORIGIN, now=1.0) == 0.0


def test_probing_counts_from_the_end_of_a_pause() -> None:
    """Seconds spent paused teach nothing: the rate after a pause starts from the hold."""
    gate, _ = gate_at(learn_for=0.0)
    now = successes(gate, 0.0, 0.5, per_second=200)
    gate.observe(ORIGIN, refused(wait=10.0), {"Retry-After": "10"}, now=now)
    guess = gate.rate(ORIGIN)
    assert guess is not None
    gate.delay(ORIGIN, now=now + 10.0)
    assert gate.rate(ORIGIN) == pytest.approx(guess)
    gate.delay(ORIGIN, now=now + 11.0)
    assert gate.rate(ORIGIN) == pytest.approx(4 * guess)


# -- memory and threads ------------------------------------------------------------------------


def test_idle_origins_expire() -> None:
    """Origins idle for longer than ``idle_expiry`` are dropped: memory stays bounded."""
    gate, _ = gate_at(idle_expiry=300.0)
    stale = [f"https://host{n}.test" for n in range(500)]
    for key in stale:
        gate.observe(key, refused(), {}, now=0.0)
    assert all(gate.rate(key) is not None for key in stale)
    gate.observe(ORIGIN, refused(), {}, now=200.0)
    assert repr(gate) == "HostGate(origins=501)"  # not idle long enough yet
    gate.observe("https://fresh.test", refused(), {}, now=400.0)
    assert repr(gate) == "HostGate(origins=2)"
    assert all(gate.rate(key) is None for key in stale)
    assert gate.rate(ORIGIN) is not None


def test_an_origin_in_use_does_not_expire() -> None:
    """An origin with steady successes stays known, even on the lock-free happy path."""
    gate, _ = gate_at(idle_expiry=300.0)
    successes(gate, 0.0, 400.0, per_second=2)
    gate.observe("https://fresh.test", refused(), {}, now=400.0)
    assert repr(gate) == "HostGate(origins=2)"


def test_concurrent_reservations_never_share_a_slot() -> None:
    """Threads reserving at once get distinct slots, one interval apart (burst aside)."""
    gate, _ = gate_at(burst=1)
    now = successes(gate, 0.0, 0.5, per_second=200)
    gate.observe(ORIGIN, refused(), {}, now=now)
    rate = gate.rate(ORIGIN)
    assert rate is not None
    slots: list[float] = []
    barrier = threading.Barrier(8)

    def reserve() -> None:
        barrier.wait()
        mine = [gate.delay(ORIGIN, now=now) for _ in range(50)]
        slots.extend(mine)

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slots.sort()
    assert len(slots) == 400
    assert slots[0] == 0.0
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert min(gaps) > 0.0
    assert max(gaps) == pytest.approx(1.0 / rate)


# -- the simulated crawl -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    ("latency", "limit"),
    [(0.001, 1.25), (0.02, 1.2)],
    ids=["latency-1ms", "latency-20ms"],
)
def test_crawl_runs_near_the_server_rate(seed: int, latency: float, limit: float) -> None:
    """2,000 requests, 50 clients, 400 r/s burst 20: none lost, < 5 % 429, near N / rate."""
    started = time.perf_counter()
    result = crawl(seed=seed, latency=latency)
    assert time.perf_counter() - started < 0.5
    assert result.succeeded == 2000, result
    assert result.lost == 0, result
    assert result.early_retries == 0, result
    assert result.rejected_share < 0.05, result
    assert result.ratio <= limit, result


@pytest.mark.parametrize("seed", [1, 2])
def test_crawl_learns_about_the_server_rate(seed: int) -> None:
    """At the end of the crawl the gate paces near the server's 400 r/s."""
    result = crawl(seed=seed)
    assert result.gate is not None
    rate = result.gate.rate("http://limited.test")
    assert rate is not None
    assert 0.9 * 400 <= rate <= 1.15 * 400


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_gate_beats_the_unpaced_crawl(seed: int) -> None:
    """Without the gate the same crawl is far slower, meets far more 429s and loses requests."""
    gated = crawl(seed=seed)
    unpaced = crawl(seed=seed, use_gate=False)
    assert unpaced.elapsed > 1.5 * gated.elapsed, (gated, unpaced)
    assert unpaced.rejected_share > 3 * gated.rejected_share, (gated, unpaced)
    assert unpaced.lost > 0 == gated.lost, (gated, unpaced)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_gate_halves_429s_with_latency(seed: int) -> None:
    """With 20 ms latency the gate still meets under half the unpaced crawl's 429s."""
    gated = crawl(seed=seed, latency=0.02)
    unpaced = crawl(seed=seed, latency=0.02, use_gate=False)
    assert gated.rejected_share < 0.5 * unpaced.rejected_share, (gated, unpaced)
    assert gated.lost == 0, gated


@pytest.mark.parametrize("latency", [0.001, 0.02])
def test_crawl_with_a_policy_header_paces_at_the_named_rate(latency: float) -> None:
    """A server naming its quota (``RateLimit-Policy``) is met with even fewer 429s."""
    named = {"RateLimit-Policy": '"bucket";q=400;w=1'}
    result = crawl(latency=latency, limit_headers=named)
    assert result.lost == 0, result
    assert result.rejected_share < 0.03, result
    assert result.ratio <= 1.25, result
    assert result.gate is not None
    assert result.gate.rate("http://limited.test") == pytest.approx(0.97 * 400)


def test_crawl_with_long_retry_after_pauses_and_still_beats_unpaced() -> None:
    """``Retry-After: 5`` pauses the host; the crawl loses nothing and beats the unpaced one."""
    gated = crawl(retry_after="5")
    unpaced = crawl(retry_after="5", use_gate=False)
    assert gated.lost == 0, gated
    assert gated.rejected_share < 0.05, gated
    assert gated.elapsed < 0.7 * unpaced.elapsed, (gated, unpaced)


def test_requests_back_from_a_long_pause_are_paced_not_released_at_once() -> None:
    """After a pause longer than the calm period, returning requests are spread by the pacer."""
    gate, _ = gate_at()
    for _ in range(200):
        gate.observe(ORIGIN, refused(503, wait=40.0), {"Retry-After": "40"}, now=0.0)
    # Each request waited out its own Retry-After; they all come back at once.
    delays = [gate.delay(ORIGIN, now=40.0) for _ in range(200)]
    assert sum(delay == 0.0 for delay in delays) <= 2  # at most the burst goes at once
    assert delays == sorted(delays)
    assert max(delays) > 1.0


# -- first contact: a crowd against a new origin meets a slow start --------------------------


def test_a_new_origin_counts_sends_in_flight_and_a_crowd_is_not_free() -> None:
    """While new, `free` counts each send it lets go; the one beyond `crowd` is not free, and
    its `delay` starts a slow start."""
    gate, _ = gate_at(crowd=4, start_rate=100.0)
    assert [gate.free(ORIGIN) for _ in range(5)] == [True] * 4 + [False]
    assert gate.rate(ORIGIN) is None
    assert gate.delay(ORIGIN) == 0.0  # the first slot of the slow start is now
    assert gate.rate(ORIGIN) == pytest.approx(100.0)
    assert not gate.free(ORIGIN)


def test_answers_free_places_in_a_new_origins_crowd() -> None:
    """A client that never has more than `crowd` sends in flight never waits on the gate."""
    gate, clock = gate_at(crowd=4)
    for step in range(1000):
        clock.now = step * 0.001
        assert all(gate.free(ORIGIN) for _ in range(4))
        for _ in range(4):
            gate.succeeded(ORIGIN, {}, clock.now)
    assert gate.rates() == {}


def test_the_learning_ends_after_learn_for_and_free_is_plain_again() -> None:
    """Past `learn_for` without a crowd the origin is no longer new: nothing is counted and a
    later crowd goes unpaced (as before any 429)."""
    gate, clock = gate_at(crowd=2, learn_for=1.0)
    assert gate.free(ORIGIN)
    gate.succeeded(ORIGIN, {}, 0.0)
    clock.now = 1.5
    gate.succeeded(ORIGIN, {}, 1.5)
    assert all(gate.free(ORIGIN) for _ in range(50))
    assert gate.delay(ORIGIN) == 0.0
    assert gate.rates() == {}


def test_a_slow_start_doubles_on_schedule() -> None:
    """A crowd reserving at once follows the doubling schedule, slot by slot."""
    gate, _ = gate_at(crowd=1, start_rate=100.0, double_every=0.1, burst=1)
    assert gate.free(ORIGIN)
    slots = reservations(gate, 60, now=0.0)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert gaps[0] == pytest.approx(0.01, rel=0.05)
    late = [gap for slot, gap in zip(slots[1:], gaps, strict=True) if slot > 0.2]
    assert late and max(late) <= 0.01 / 3.5


def test_a_slow_start_that_outgrows_the_client_ends_free() -> None:
    """Nobody held back for two doubling periods: the origin is free again, for good."""
    gate, clock = gate_at(crowd=1, start_rate=100.0, double_every=0.1)
    assert gate.free(ORIGIN)
    assert gate.delay(ORIGIN) == 0.0
    assert gate.rate(ORIGIN) is not None
    clock.now = 0.5  # the client sends one request now and then: the rate is not its limit
    assert gate.delay(ORIGIN) == 0.0
    assert gate.rate(ORIGIN) is None
    assert gate.free(ORIGIN)


def test_a_429_after_the_first_period_cuts_the_slow_start_to_half() -> None:
    """The slow start crossed the server's rate: it holds at half the rate it reached, the
    pace of its last slot (a crowd reserving at once follows its schedule slot by slot)."""
    gate, _ = gate_at(crowd=1, start_rate=100.0, double_every=0.1)
    assert gate.free(ORIGIN)
    slots = reservations(gate, 120, now=0.0)
    assert slots[-1] > 0.3
    gate.observe(ORIGIN, refused(), {}, now=0.05)  # the crowd before it: carries on
    assert gate.rate(ORIGIN) == pytest.approx(100.0)
    gate.observe(ORIGIN, refused(), {}, now=0.3)
    assert gate.rate(ORIGIN) == pytest.approx(100.0 * 2**3 / 2, rel=0.05)


def test_a_slow_start_from_a_slow_guess_doubles_at_most_once_a_slot() -> None:
    """A client that formed no crowd meets its first 429 after few successes: a slow start
    from a guess of about one send a second. Its second slot is a second away; those after it
    double at most once a slot (they sent nothing meanwhile), and a 429 then halves the pace
    it sent at, not what ten doublings would have reached."""
    gate, _ = gate_at(crowd=16, double_every=0.1)
    assert gate.free(ORIGIN)
    gate.observe(ORIGIN, refused(), {}, now=0.001)
    assert gate.rate(ORIGIN) is not None
    slots = reservations(gate, 6, now=0.002)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert gaps[0] > 0.5
    assert all(later >= 0.5 * earlier - 1e-9 for earlier, later in itertools.pairwise(gaps))
    gate.observe(ORIGIN, refused(), {}, now=slots[2])
    assert gate.rate(ORIGIN) <= 1.01 / gaps[-1]  # type: ignore[operator]
    assert gate.rate(ORIGIN) < 50.0  # ten doublings of the guess would be 1,000


def test_an_announced_rate_replaces_a_slow_start_and_voids_its_slots() -> None:
    """An announcement during a slow start paces at it from now: the slots the slow start gave
    out ahead are void, and their holders get fresh ones at the announced pace."""
    gate, _ = gate_at(crowd=1, start_rate=10.0, hold=1.0, burst=1)
    assert gate.free(ORIGIN)
    slots = reservations(gate, 5, now=0.0)
    seen = gate.generation(ORIGIN)
    gate.observe(ORIGIN, success(), {"RateLimit-Policy": '"d";q=50;w=1'}, now=0.01)
    assert gate.rate(ORIGIN) == pytest.approx(50.0)
    assert gate.generation(ORIGIN) != seen
    # The pace starts over from now: one interval of it at most (not at once, so answers
    # read one after another, each a cut, do not each let a send go).
    first = gate.delay(ORIGIN, now=0.01)
    assert 0.0 < first <= 1 / 50
    # The holders of the slow start's last slots, woken at them, ask again: fresh slots at the
    # announced pace, after the one given out since.
    fresh = [gate.confirm(ORIGIN, seen, now=slots[-1]) for _ in range(2)]
    assert fresh[1] - fresh[0] == pytest.approx(1 / 50)


def test_a_slot_under_an_unchanged_view_is_confirmed_without_a_lock() -> None:
    """`confirm` with the generation read after `delay`: 0.0, no lock, while nothing changed."""
    gate, clock = gate_at()
    gate.observe(ORIGIN, refused(), {}, now=0.0)  # paced
    wait = gate.delay(ORIGIN, now=0.0)
    seen = gate.generation(ORIGIN)
    spy = SpyLock()
    gate._lock = spy  # type: ignore[assignment]
    clock.now = wait
    assert gate.confirm(ORIGIN, seen) == 0.0
    assert gate.confirm("https://unknown.test", 0) == 0.0
    assert spy.acquired == 0


def test_a_rate_cut_voids_the_slots_ahead_and_their_holders_queue_again() -> None:
    """A slow start crossing the server's rate: the generation moves, the pace restarts from
    now at half, and a holder woken on its old slot gets a fresh one in the new schedule."""
    gate, _ = gate_at(crowd=1, start_rate=100.0, double_every=0.1, burst=1)
    assert gate.free(ORIGIN)
    slots = reservations(gate, 40, now=0.0)
    seen = gate.generation(ORIGIN)
    gate.observe(ORIGIN, refused(), {}, now=0.15)
    assert gate.generation(ORIGIN) == seen + 1
    assert gate.delay(ORIGIN, now=0.15) == 0.0  # the schedule starts over from now
    woken = [slot for slot in slots if slot > 0.15]
    assert len(woken) >= 10
    fresh = [at + gate.confirm(ORIGIN, seen, now=at) for at in woken]
    interval = 1.0 / gate.rate(ORIGIN)  # type: ignore[operator]
    gaps = [b - a for a, b in itertools.pairwise(fresh)]
    assert min(gaps) >= interval - 1e-9


def test_a_holder_woken_late_is_spaced_from_the_send_before_it_while_the_quota_is_spent() -> None:
    """The quota is spent and refills at the pace: a holder woken late (a busy event loop)
    goes out just before the next, woken on time, who then waits out the rest of one interval
    after it (its slot still holds: the same generation confirms it). With units to spare,
    nothing is spaced."""
    gate, _ = gate_at(hold=1.0)
    spent = {"RateLimit-Policy": '"b";q=20;w=1', "RateLimit": '"b";r=0;t=1'}
    gate.observe(ORIGIN, success(), spent, now=0.0)
    assert gate.rate(ORIGIN) == pytest.approx(20.0)
    interval = 1 / 20
    slots = reservations(gate, 3, now=0.0)
    seen = gate.generation(ORIGIN)
    late = slots[1] - 0.1 * interval  # the first slot's holder, woken late
    assert gate.confirm(ORIGIN, seen, now=late) == 0.0
    wait = gate.confirm(ORIGIN, seen, now=slots[1])
    assert wait == pytest.approx(late + interval - slots[1])
    assert gate.confirm(ORIGIN, seen, now=slots[1] + wait) == 0.0
    assert gate.generation(ORIGIN) == seen
    spare = {"RateLimit-Policy": '"b";q=20;w=1', "RateLimit": '"b";r=15;t=0'}
    roomy, _ = gate_at(hold=1.0)
    roomy.observe(ORIGIN, success(), spare, now=0.0)
    slots = reservations(roomy, 3, now=0.0)
    seen = roomy.generation(ORIGIN)
    assert roomy.confirm(ORIGIN, seen, now=slots[1] - 0.1 * interval) == 0.0
    assert roomy.confirm(ORIGIN, seen, now=slots[1]) == 0.0


def test_a_slow_starts_slots_are_void_when_its_crowd_spends_what_the_first_reading_left() -> None:
    """The first answer reads the quota nearly whole, but more sends of the slow start's crowd
    are in flight than it has left: the slots given out ahead are void, and a holder woken on
    one waits for the reset instead of going into an empty quota."""
    gate, clock = gate_at(crowd=4, start_rate=200.0, hold=1.0)
    assert all(gate.free(ORIGIN) for _ in range(4))
    slots = reservations(gate, 20, now=0.0)
    seen = gate.generation(ORIGIN)
    whole = {"RateLimit-Limit": "11", "RateLimit-Remaining": "10", "RateLimit-Reset": "0.005"}
    clock.now = 0.02
    gate.observe(ORIGIN, success(), whole, now=0.02)
    assert gate.generation(ORIGIN) != seen
    ahead = [slot for slot in slots if slot > 0.02]
    assert len(ahead) >= 10
    assert ahead[0] + gate.confirm(ORIGIN, seen, now=ahead[0]) >= 0.025 - 1e-9


def test_without_holders_that_ask_again_a_change_voids_nothing() -> None:
    """Nobody read `generation`: the slots given out are kept, the new pace begins after them."""
    gate, _ = gate_at(crowd=1, start_rate=10.0, hold=1.0)
    assert gate.free(ORIGIN)
    last = max(reservations(gate, 5, now=0.0))
    gate.observe(ORIGIN, success(), {"RateLimit-Policy": '"d";q=50;w=1'}, now=0.01)
    assert gate.delay(ORIGIN, now=0.01) >= last - 0.01
