"""The local allowance's bookkeeping, without Redis: what it admits, what adjustments do to it, what it
hands back and asks for, and how it follows the lease script's replies."""

from __future__ import annotations

from clearmaas.limits import Limits
from clearmaas.limits.allowance import NO_WINDOW, Allowance, Back, Plan

LIMITS = Limits(rpm=100, tpm=10_000)
NOTHING = Back(NO_WINDOW, 0, 0)


def leased(units: int, per: int, *, limits: Limits = LIMITS, window: int = 7, ends_at: float = 60.0) -> Allowance:
    """An allowance whose lease admitted one request of `per` tokens and granted `units` more."""
    allowance = Allowance()
    allowance.settled(window, ends_at, limits, NOTHING, cost=per, units=units, per=per)
    allowance.counted(per)
    return allowance


def test_it_admits_while_both_counts_cover_the_request() -> None:
    allowance = leased(2, 100)
    assert (allowance.requests, allowance.tokens) == (2, 200)
    assert (allowance.held_requests, allowance.held_tokens) == (3, 300)
    assert allowance.take(LIMITS, 150, now=1.0)
    assert not allowance.take(LIMITS, 51, now=1.0)  # one request left, but only 50 tokens
    assert allowance.take(LIMITS, 50, now=1.0)
    assert not allowance.take(LIMITS, 0, now=1.0)  # no request left
    assert (allowance.requests, allowance.tokens) == (0, 0)
    assert (allowance.admitted, allowance.admitted_tokens) == (3, 300)


def test_it_admits_nothing_after_its_window_or_under_other_limits() -> None:
    allowance = leased(5, 10, ends_at=60.0)
    assert not allowance.take(LIMITS, 10, now=60.0)
    assert not allowance.take(Limits(rpm=50, tpm=10_000), 10, now=1.0)
    assert allowance.take(Limits(rpm=100, tpm=10_000), 10, now=1.0)  # equal limits, another object


def test_a_limit_that_is_not_set_is_not_checked() -> None:
    rpm_only = Limits(rpm=100)
    allowance = leased(1, 10, limits=rpm_only)
    assert allowance.take(rpm_only, 500, now=1.0)
    assert allowance.tokens == -490
    tpm_only = Limits(tpm=1000)
    allowance = leased(0, 300, limits=tpm_only)
    allowance.tokens = 300
    assert allowance.take(tpm_only, 300, now=1.0)
    assert allowance.requests == -1


def test_tokens_beyond_the_estimate_are_spent_from_the_allowance_even_below_zero() -> None:
    allowance = leased(1, 100)
    allowance.use(250, 7, now=1.0)
    assert allowance.tokens == -150
    assert not allowance.take(LIMITS, 0, now=1.0)  # it owes tokens: Redis settles that first


def test_unused_estimate_comes_back_only_to_its_window_and_never_past_what_is_held() -> None:
    allowance = leased(0, 400)
    allowance.use(-300, 6, now=1.0)  # an admission of an earlier window
    assert allowance.tokens == 0
    allowance.use(-300, 7, now=1.0)
    assert allowance.tokens == 300
    allowance.use(-5000, None, now=1.0)  # unknown window: still no more than this replica holds
    assert allowance.tokens == allowance.held_tokens == 400
    allowance.use(-10, 7, now=61.0)  # its window has ended
    assert allowance.tokens == 0


def test_an_ended_window_keeps_only_what_it_owes() -> None:
    allowance = leased(3, 100)
    allowance.use(500, 7, now=1.0)
    assert allowance.tokens == -200
    assert allowance.hand_back(now=61.0, everything=True) == Back(NO_WINDOW, 0, -200)
    assert (allowance.requests, allowance.tokens, allowance.held_tokens) == (0, 0, 0)


def test_hand_back_takes_everything_or_only_what_is_owed() -> None:
    allowance = leased(4, 100)
    allowance.use(600, 7, now=1.0)  # 400 - 600 = -200 tokens, 4 requests
    assert allowance.hand_back(now=1.0, everything=False) == Back(7, 0, -200)
    assert (allowance.requests, allowance.tokens) == (4, 0)
    assert allowance.held_tokens == 500 + 200
    assert allowance.hand_back(now=1.0, everything=True) == Back(7, 4, 0)
    assert (allowance.requests, allowance.held_requests) == (0, 1)


def test_a_failed_call_restores_what_is_owed_but_not_what_was_unused() -> None:
    allowance = leased(2, 100)
    allowance.use(300, 7, now=1.0)  # 200 - 300 = -100
    back = allowance.hand_back(now=1.0, everything=True)
    assert back == Back(7, 2, -100)
    allowance.restore(back)
    assert (allowance.requests, allowance.tokens) == (0, -100)
    assert allowance.held_tokens - allowance.tokens == 400  # what it admitted and spent, unchanged


def test_a_reply_for_a_new_window_starts_over_and_charges_what_the_old_owed() -> None:
    allowance = leased(2, 100)
    allowance.use(300, 7, now=1.0)
    back = allowance.hand_back(now=61.0, everything=True)
    assert back == Back(NO_WINDOW, 0, -100)
    allowance.settled(8, 120.0, LIMITS, back, cost=50, units=3, per=20)
    assert allowance.window == 8
    assert (allowance.requests, allowance.tokens) == (3, 60)
    assert (allowance.held_requests, allowance.held_tokens) == (4, 100 + 50 + 60)


def test_it_asks_for_more_as_a_burst_ramps_up_and_for_twice_the_last_tick() -> None:
    allowance = Allowance()
    assert allowance.wanted(10) == (0, 10)  # a first request asks for nothing beyond itself
    for _ in range(8):
        allowance.counted(10)
    assert allowance.wanted(30) == (8, 13)  # ceil((80 + 30) / 9)
    allowance.waiting = 20
    assert allowance.wanted(10)[0] == 20
    allowance.waiting = 0
    allowance.rotate(now=1.0)
    assert (allowance.recent, allowance.admitted) == (8, 0)
    assert allowance.wanted(10)[0] == 16


def test_after_a_pause_it_asks_at_once_for_the_busiest_tick_of_the_window() -> None:
    allowance = Allowance()
    for burst in (30, 50, 20):  # three busy ticks
        for _ in range(burst):
            allowance.counted(10)
        allowance.rotate(now=1.0)
    for _ in range(5):  # idle ticks: nothing recent, the allowance given back
        allowance.rotate(now=1.0)
    assert allowance.recent == 0
    assert allowance.wanted(10)[0] == 50


def test_the_tick_tops_up_a_busy_workspace_and_gives_back_an_idle_one() -> None:
    allowance = leased(10, 100, ends_at=60.0)
    for _ in range(9):
        assert allowance.take(LIMITS, 100, now=1.0)
    allowance.rotate(now=1.0)  # 10 admitted in the last tick, 1 left: top up to 20
    assert allowance.plan(now=1.0) == Plan(everything=False, units=19, per=100)
    allowance.settled(7, 60.0, LIMITS, Back(7, 0, 0), cost=None, units=19, per=100)
    allowance.rotate(now=1.05)  # nothing admitted since: hand all 20 back
    assert allowance.plan(now=1.05) == Plan(everything=True, units=0, per=0)
    allowance.hand_back(now=1.05, everything=True)
    allowance.rotate(now=1.1)
    assert allowance.plan(now=1.1) is None
    assert not allowance.disposable(now=1.1)  # its window is current: adjustments may still give back
    assert allowance.disposable(now=60.0)


def test_a_busy_workspace_is_leased_ahead_into_the_next_window() -> None:
    allowance = leased(0, 100, ends_at=60.0)
    for _ in range(5):
        allowance.counted(100)
    allowance.rotate(now=60.5)
    assert allowance.plan(now=60.5) == Plan(everything=False, units=12, per=100)


def test_what_is_owed_is_pushed_even_when_idle() -> None:
    allowance = Allowance()  # no lease yet: an adjustment for a workspace this replica holds nothing of
    allowance.use(70, None, now=1.0)
    allowance.rotate(now=1.0)
    assert not allowance.disposable(now=1.0)
    assert allowance.plan(now=1.0) == Plan(everything=True, units=0, per=0)
    assert allowance.hand_back(now=1.0, everything=True) == Back(NO_WINDOW, 0, -70)
    assert allowance.disposable(now=1.0)


def test_a_refusal_is_remembered_for_a_while() -> None:
    allowance = leased(0, 100)
    allowance.refuse("tpm", 300, now=1.0, hold=0.05)
    assert allowance.cached_refusal(LIMITS, 300, now=1.01) == "tpm"
    assert allowance.cached_refusal(LIMITS, 299, now=1.01) is None  # a smaller request may still fit
    assert allowance.cached_refusal(LIMITS, 300, now=1.06) is None
    allowance.refuse("rpm", 1, now=2.0, hold=0.05)
    assert allowance.cached_refusal(LIMITS, 0, now=2.01) == "rpm"
    assert allowance.cached_refusal(Limits(rpm=200, tpm=10_000), 0, now=2.01) is None  # a new limit
    allowance.use(-50, 7, now=2.02)  # tokens came back: ask again
    assert allowance.cached_refusal(LIMITS, 0, now=2.03) is None


def test_unsettled_is_the_unused_allowance_of_the_current_window_and_what_is_owed() -> None:
    allowance = leased(3, 100)
    assert allowance.unsettled(7, now=1.0) == (3, 300)
    assert allowance.unsettled(8, now=1.0) == (0, 0)
    allowance.use(500, 7, now=1.0)
    assert allowance.unsettled(7, now=1.0) == (3, -200)
    assert allowance.unsettled(8, now=61.0) == (0, -200)


def test_it_is_quiet_once_nothing_is_held_owed_or_recent() -> None:
    allowance = leased(2, 10)
    allowance.rotate(now=1.0)
    assert not allowance.quiet()  # allowance, and an admission in the last tick
    allowance.hand_back(now=1.0, everything=True)
    assert not allowance.quiet()
    allowance.rotate(now=1.05)
    assert allowance.quiet()
    allowance.use(5, 7, now=1.1)
    assert not allowance.quiet()  # it owes 5 tokens
