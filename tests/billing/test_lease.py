"""The local arithmetic of a credit lease (`billing/lease.py`): what a push asks of Redis, and what the lease
may still hand out meanwhile."""

from __future__ import annotations

import itertools

from clearmaas.billing.lease import Lease, PushResult


def lease(granted: int = 0) -> Lease:
    made = Lease("ws", "key", "lease:test", itertools.count(1))
    made.granted = granted
    return made


def test_calls_take_from_the_headroom_and_settled_costs_count_until_pushed() -> None:
    held = lease(granted=1_000)
    assert held.take(600) and not held.take(401)
    held.finish(600, 450)
    assert (held.inflight, held.unpushed, held.headroom) == (0, 450, 550)


def test_a_tick_charges_the_costs_out_of_the_lease_and_gives_back_what_an_idle_lease_holds() -> None:
    held = lease(granted=1_000)
    held.take(600)
    held.finish(600, 450)
    held.retarget()  # busy since the last tick: aim at twice what was reserved
    assert held.target == 1_200
    busy = held.plan()
    assert (busy.charge, busy.release, busy.extra, busy.forced, busy.need) == (450, 450, 650, 0, 0)
    held.confirm(PushResult(status=1, amount=1_200, squeezed=False, others=False))
    held.retarget()  # nothing reserved since: idle
    idle = held.plan()
    assert (idle.charge, idle.release, idle.extra) == (0, 1_200, 0)
    assert held.headroom == 0  # given back at once, before Redis confirms


def test_a_call_that_does_not_fit_asks_only_for_what_the_headroom_lacks() -> None:
    held = lease(granted=300)
    push = held.plan(need=1_000)
    assert (push.need, push.release, push.forced) == (700, 0, 0)


def test_after_a_pause_a_call_that_does_not_fit_asks_for_one_more_bound_so_the_next_one_fits() -> None:
    held = lease()
    assert held.target == 0  # nothing reserved lately: no rate to size the headroom from
    push = held.plan(need=1_000)
    assert (push.need, push.extra) == (1_000, 1_000)
    held.confirm(PushResult(status=1, amount=2_000, squeezed=False, others=False))
    assert held.take(1_000)
    held.finish(1_000, 30)
    assert held.take(1_000)  # the second call fits without a push of its own


def test_an_overrun_forces_cover_for_the_calls_still_in_flight() -> None:
    held = lease(granted=1_000)
    held.take(500)
    held.take(500)
    held.finish(500, 900)  # cost 400 over its bound; another call of 500 is still running
    push = held.plan()
    assert (push.charge, push.release, push.forced) == (900, 900, 400)
    held.confirm(PushResult(status=1, amount=500, squeezed=False, others=False))
    assert held.headroom == 0 and held.inflight == 500


def test_a_squeezed_lease_takes_no_extra_and_aims_at_nothing() -> None:
    held = lease(granted=100)
    held.take(100)
    held.confirm(PushResult(status=1, amount=100, squeezed=True, others=True))
    held.retarget()
    assert held.target == 0
    assert held.plan(need=50).extra == 0


def test_pushes_are_numbered_across_leases_of_one_process() -> None:
    sequence = itertools.count(1)
    first, second = Lease("ws", "a", "l:a", sequence), Lease("ws", "a", "l:a", sequence)
    assert [first.plan().seq, second.plan().seq, first.plan().seq] == [1, 2, 3]
