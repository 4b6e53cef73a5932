"""How much of the machine's CPU PostgreSQL and Redis may take from the request's path during a bench.

On a machine with few cores the database and Redis run beside the client, the fake upstream and the gateway.
Linux schedules each session as one group (`kernel.sched_autogroup_enabled`), so a PostgreSQL backend busy
with a usage batch gets a whole group's share of a core against the bench's processes, whatever their nice
values. `services_yielding()` gives those groups the lowest weight (autogroup nice 19) for the duration, and
their own back afterwards: they then run on what the request's path leaves idle, the nearest this machine
comes to a database host of its own. Backends forked meanwhile join the postmaster's group."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

__all__ = ["autogroups_enabled", "service_pids", "services_yielding"]

_SERVICES = frozenset({"postgres", "redis-server"})
_LOWEST = 19


def service_pids() -> list[int]:
    """The pids of every PostgreSQL and Redis process on the machine (by command name)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in _SERVICES:
                    pids.append(int(entry.name))
    return sorted(pids)  # the oldest first: a group's postmaster or server outlives its backends


def autogroups_enabled() -> bool:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    return False


def _autogroup(pid: int) -> tuple[str, int]:
    """(group name, nice) from /proc/PID/autogroup, which reads "/autogroup-7 nice 0"."""
    name, _, nice = (Path(f"/proc/{pid}/autogroup").read_text().split() + ["", "", "0"])[:3]
    return name, int(nice)


@contextlib.contextmanager
def services_yielding() -> Iterator[int]:
    """Lower PostgreSQL's and Redis's scheduling groups to autogroup nice 19; yields how many groups were
    lowered (0 where autogroups are off or this user may not change them). Restores each group's nice."""
    saved: dict[str, tuple[int, int]] = {}  # group -> (a member pid, its nice before)
    try:
        if autogroups_enabled():
            for pid in service_pids():
                with contextlib.suppress(OSError):
                    group, nice = _autogroup(pid)
                    if group not in saved:
                        Path(f"/proc/{pid}/autogroup").write_text(str(_LOWEST))
                        saved[group] = (pid, nice)
        yield len(saved)
    finally:
        for group, (pid, nice) in saved.items():
            for member in [pid, *service_pids()]:
                with contextlib.suppress(OSError):
                    if _autogroup(member)[0] == group:
                        Path(f"/proc/{member}/autogroup").write_text(str(nice))
                        break
