"""Several replicas' allowances against a model of the lease script (the Lua in `redis_counter.py`, in
Python), driven by random admissions, adjustments, ticks and window changes: together they never admit more
requests than the limit, the shared count never falls below what was admitted, and once every replica has
given back it is exactly what was admitted."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from clearmaas.limits import Limits
from clearmaas.limits.allowance import Allowance, Back

LENGTH = 60.0
LIMITS = Limits(rpm=40, tpm=4000)


@dataclass
class Script:
    """The lease script over one key: window index and counts."""

    now: float = 0.0
    window: int = 0
    requests: int = 0
    tokens: int = 0

    def lease(self, back: Back, cost: int | None, units: int, per: int) -> tuple[bool, int, float, int]:
        window = int(self.now // LENGTH)
        if window != self.window:
            self.window, self.requests, self.tokens = window, 0, 0
        back_r, back_t = back.requests, back.tokens
        if back.window != window:
            back_r, back_t = min(back_r, 0), min(back_t, 0)
        self.requests = max(0, self.requests - back_r)
        self.tokens = max(0, self.tokens - back_t)
        rpm, tpm = LIMITS.rpm, LIMITS.tpm
        assert rpm is not None and tpm is not None
        if cost is not None:
            if self.requests + 1 > rpm or (self.tokens > 0 and self.tokens + cost > tpm):
                return False, window, (window + 1) * LENGTH - self.now, 0
            self.requests += 1
            self.tokens += cost
        units = min(units, max(0, rpm - self.requests) // 16)
        if per > 0:
            units = min(units, max(0, tpm - self.tokens) // 16 // per)
        self.requests += units
        self.tokens += units * per
        return True, window, (window + 1) * LENGTH - self.now, units


@dataclass
class Replica:
    allowance: Allowance = field(default_factory=Allowance)
    admitted: dict[int, int] = field(default_factory=dict)  # requests admitted per window

    def admit(self, script: Script, cost: int) -> None:
        state = self.allowance
        current = int(script.now // LENGTH)  # admissions are counted in the window they really happen in
        if state.take(LIMITS, cost, script.now):
            assert state.window == current
            self.admitted[current] = self.admitted.get(current, 0) + 1
            return
        units, per = state.wanted(cost)
        back = state.hand_back(script.now, everything=True)
        ok, window, reset, granted = script.lease(back, cost, units, per)
        state.settled(window, script.now + reset, LIMITS, back, cost=cost if ok else None, units=granted, per=per)
        if ok:
            state.counted(cost)
            self.admitted[window] = self.admitted.get(window, 0) + 1

    def tick(self, script: Script) -> None:
        state = self.allowance
        state.rotate(script.now)
        plan = state.plan(script.now)
        if plan is not None:
            self.settle(script, everything=plan.everything, units=plan.units, per=plan.per)

    def settle(self, script: Script, *, everything: bool, units: int = 0, per: int = 0) -> None:
        state = self.allowance
        back = state.hand_back(script.now, everything=everything)
        _, window, reset, granted = script.lease(back, None, units, per)
        state.settled(window, script.now + reset, state.limits, back, cost=None, units=granted, per=per)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.integers(0, 2), st.integers(0, 300)),
        st.tuples(st.just("adjust"), st.integers(0, 2), st.integers(-400, 400)),
        st.tuples(st.just("tick"), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("wait"), st.just(0), st.integers(1, 40)),
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_replicas_never_admit_past_the_limit_and_give_back_exactly(ops: list[tuple[str, int, int]]) -> None:
    script = Script()
    replicas = [Replica(), Replica(), Replica()]
    for op, which, amount in ops:
        replica = replicas[which]
        if op == "admit":
            replica.admit(script, amount)
        elif op == "adjust":
            replica.allowance.use(amount, replica.allowance.window, script.now)
        elif op == "tick":
            replica.tick(script)
        else:
            script.now += amount
        window = int(script.now // LENGTH)
        admitted = sum(r.admitted.get(window, 0) for r in replicas)
        assert admitted <= (LIMITS.rpm or 0)
        live = [r.allowance for r in replicas if r.allowance.live(script.now)]
        for state in live:
            # What a replica has admitted (and spent) is what it holds less its allowance: never negative.
            assert state.held_requests - state.requests >= 0
            assert state.held_tokens - state.tokens >= 0
        if script.window == window:
            assert script.requests >= admitted
            # The shared counts are exactly the sum of what the replicas hold of them.
            assert script.requests == sum(state.held_requests for state in live)
            assert script.tokens == sum(state.held_tokens for state in live)
    for replica in replicas:
        replica.settle(script, everything=True)
    window = int(script.now // LENGTH)
    assert script.requests == sum(r.admitted.get(window, 0) for r in replicas)
    for replica in replicas:
        state = replica.allowance
        # What a replica holds of the shared count is what it admitted (and spent) in the window.
        if state.live(script.now):
            assert state.held_requests == replica.admitted.get(window, 0)
