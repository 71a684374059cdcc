"""`RetryBudget`: a fraction of first attempts, expiring after ``ttl``, plus a refilling floor.

Every call gets an injected ``now`` (or a fixed clock), so nothing sleeps; one test hammers the
budget from 32 threads and checks the accounting to the retry.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Iterator

import pytest

from forbear import RetryBudget


def withdraw_all(budget: RetryBudget, now: float, limit: int = 100_000) -> int:
    """Withdraw until refused; how many retries were granted."""
    granted = 0
    while granted < limit and budget.try_withdraw(now=now):
        granted += 1
    return granted


def test_defaults() -> None:
    """20 % of first attempts, a floor of 10 retries per second, deposits kept 10 s."""
    budget = RetryBudget()
    assert (budget.ratio, budget.min_per_second, budget.ttl) == (0.2, 10.0, 10.0)


def test_floor_alone_allows_min_per_second_never_more_at_once() -> None:
    """With no first attempts, the floor grants one second's worth, then refills at its rate."""
    budget = RetryBudget(min_per_second=10.0, ttl=10.0, clock=lambda: 0.0)
    assert withdraw_all(budget, now=0.0) == 10
    assert budget.balance(now=0.0) == 0.0
    assert withdraw_all(budget, now=0.5) == 5
    assert withdraw_all(budget, now=60.0) == 10  # a long calm refills one second's worth only


def test_an_outage_cannot_spend_a_long_floor_as_one_burst() -> None:
    """200 first attempts failing at once get 20 % of them plus one second of floor: 50."""
    budget = RetryBudget(clock=lambda: 0.0)
    for _ in range(200):
        budget.deposit(now=0.0)
    assert withdraw_all(budget, now=0.0) == 50


def test_each_key_has_its_own_account() -> None:
    """An outage of one origin never spends the retries another origin needs."""
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, clock=lambda: 0.0)
    for _ in range(10):
        budget.deposit("https://a.test", now=0.0)
        budget.deposit("https://b.test", now=0.0)
    assert withdraw_all(budget, now=0.0) == 0  # the shared "" key earned nothing
    granted = 0
    while budget.try_withdraw("https://a.test", now=0.0):
        granted += 1
    assert granted == 5
    assert budget.balance("https://b.test", now=0.0) == 5.0


def test_ratio_of_first_attempts() -> None:
    """Each first attempt earns ``ratio`` of a retry: 50 attempts at 20 % give 10 retries."""
    budget = RetryBudget(ratio=0.2, min_per_second=0.0, clock=lambda: 0.0)
    for _ in range(50):
        budget.deposit(now=0.0)
    assert withdraw_all(budget, now=0.0) == 10


def test_a_spent_budget_refills_as_first_attempts_arrive() -> None:
    """After the budget is spent, five more first attempts buy one more retry at 20 %."""
    budget = RetryBudget(ratio=0.2, min_per_second=0.0, clock=lambda: 0.0)
    assert not budget.try_withdraw(now=0.0)
    for _ in range(4):
        budget.deposit(now=0.0)
    assert not budget.try_withdraw(now=0.0)
    budget.deposit(now=0.0)
    assert budget.try_withdraw(now=0.0)
    assert not budget.try_withdraw(now=0.0)


def test_deposits_expire_after_ttl() -> None:
    """First attempts older than ``ttl`` no longer pay for retries."""
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, ttl=10.0, clock=lambda: 0.0)
    for _ in range(20):
        budget.deposit(now=100.0)
    assert budget.balance(now=109.5) == pytest.approx(10.0)
    assert budget.balance(now=110.5) == 0.0
    assert not budget.try_withdraw(now=110.5)


def test_withdrawals_expire_so_deposits_pay_again() -> None:
    """Retries spent more than ``ttl`` ago stop counting against newer first attempts."""
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, ttl=10.0, clock=lambda: 0.0)
    for _ in range(10):
        budget.deposit(now=50.0)
    assert withdraw_all(budget, now=50.0) == 10
    assert withdraw_all(budget, now=55.0) == 0
    for _ in range(10):
        budget.deposit(now=61.0)
    assert withdraw_all(budget, now=61.0) == 10


def test_a_long_gap_clears_everything() -> None:
    """After far more than ``ttl`` of silence only the floor is left."""
    budget = RetryBudget(ratio=1.0, min_per_second=1.0, ttl=10.0, clock=lambda: 0.0)
    for _ in range(1000):
        budget.deposit(now=0.0)
    assert budget.balance(now=0.0) == pytest.approx(1001.0)
    assert budget.balance(now=10_000.0) == pytest.approx(1.0)


def test_injected_clock_is_read_when_now_is_omitted() -> None:
    """Without ``now`` the budget reads its clock, so expiry follows the injected time."""
    now = [0.0]
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, ttl=10.0, clock=lambda: now[0])
    budget.deposit()
    assert budget.balance() == 1.0
    now[0] = 11.0
    assert budget.balance() == 0.0
    assert not budget.try_withdraw()


def test_balance_never_negative_and_earnings_bound_it() -> None:
    """The balance stays within [0, what was earned] however deposits and withdrawals interleave."""
    budget = RetryBudget(ratio=0.3, min_per_second=0.5, ttl=2.0, clock=lambda: 0.0)
    now = 0.0
    for step in range(2000):
        now += 0.013
        if step % 3:
            budget.try_withdraw(now=now)
        else:
            budget.deposit(now=now)
        balance = budget.balance(now=now)
        assert 0.0 <= balance <= 0.3 * (step // 3 + 1) + 1.0


@pytest.mark.parametrize(
    "options",
    [
        {"ratio": -0.1},
        {"ratio": math.nan},
        {"min_per_second": math.inf},
        {"min_per_second": -1.0},
        {"ttl": 0.0},
        {"ttl": -5.0},
        {"ratio": "0.2"},
    ],
)
def test_bad_configuration_raises(options: dict[str, object]) -> None:
    """Negative, non-finite or non-numeric settings and a zero ``ttl`` are refused."""
    with pytest.raises(ValueError, match="RetryBudget"):
        RetryBudget(**options)  # type: ignore[arg-type]


def test_repr_shows_settings_and_keys() -> None:
    """The repr names the settings and how many keys have accounts."""
    budget = RetryBudget(clock=lambda: 0.0)
    assert repr(budget) == "RetryBudget(ratio=0.2, min_per_second=10.0, ttl=10.0, keys=0)"
    budget.deposit("https://a.test")
    assert repr(budget).endswith("keys=1)")


THREADS = 32


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Switch threads as often as the interpreter allows, so unlocked races would show."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def run_threads(work: object) -> None:
    threads = [threading.Thread(target=work) for _ in range(THREADS)]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.usefixtures("tiny_switch_interval")
def test_threads_get_exactly_what_was_earned() -> None:
    """Round after round, 32 threads race for 8 earned retries: exactly 8 are granted each time."""
    budget = RetryBudget(ratio=0.25, min_per_second=0.0, ttl=10.0, clock=lambda: 5.0)
    rounds = 40
    barrier = threading.Barrier(THREADS)
    granted = [[0] * THREADS for _ in range(rounds)]
    ids = iter(range(THREADS))

    def work() -> None:
        me = next(ids)
        for round_ in range(rounds):
            budget.deposit()
            barrier.wait()  # every deposit of the round is in before anyone withdraws
            granted[round_][me] = int(budget.try_withdraw()) + int(budget.try_withdraw())
            barrier.wait()

    run_threads(work)
    assert [sum(row) for row in granted] == [THREADS // 4] * rounds
    assert budget.balance() == 0.0


@pytest.mark.usefixtures("tiny_switch_interval")
def test_threads_hammering_keep_exact_accounting_and_bounds() -> None:
    """Interleaved deposits and withdrawals from 32 threads: granted + balance == earned."""
    budget = RetryBudget(ratio=0.25, min_per_second=1.0, ttl=10.0, clock=lambda: 5.0)
    granted = [0] * THREADS
    ids = iter(range(THREADS))
    out_of_bounds: list[tuple[float, float]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            balance = budget.balance()
            if not 0.0 <= balance <= earned:
                out_of_bounds.append((balance, earned))

    earned = 0.25 * THREADS * 300 + 1.0  # 2400, and one second of the floor
    watcher = threading.Thread(target=watch)
    watcher.start()

    def work() -> None:
        me = next(ids)
        for _ in range(300):
            budget.deposit()
            for _ in range(2):
                if budget.try_withdraw():
                    granted[me] += 1

    try:
        run_threads(work)
    finally:
        done.set()
        watcher.join()
    assert out_of_bounds == []
    assert sum(granted) + budget.balance() == pytest.approx(earned)
    assert sum(granted) <= earned
    assert budget.balance() < 1.0  # everyone kept asking, so nothing whole was left unspent
    assert budget.balance() + sum(granted) == pytest.approx(earned)  # no deposit was lost
