"""`python -m bench.profile MODE [--path chat|messages]`: one of the bench's gateways (bench/modes.py) under
`wrk -c64`, sampled by py-spy, and where its CPU goes per request: the usage-log writer, Redis's client, the
money path on the event loop, and the rest of the gateway.

py-spy is not a project dependency: install it outside the project (`pip install --target /tmp/pyspy py-spy`)
and pass `--py-spy /tmp/pyspy/bin/py-spy`, or have it on PATH. It samples with `--gil --nonblocking` (only the
thread holding the GIL, without pausing the process: the throughput stays what it is unprofiled); the raw
profile is kept for flame graphs (`--out`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from bench.load import run_wrk
from bench.modes import MODES, backends, prepare, serving
from bench.phases import Calls

__all__ = ["categorise", "main"]

# First match wins, so the writer thread is told apart before the money-path frames it also contains.
_CATEGORIES = (
    ("usage-log writer: building rows", r"_values \(clearmaas/billing/usage_log"),
    ("usage-log writer: the rest", r"write_batch"),
    ("worker threads: other (cache refreshes)", r"_WorkItem\.run"),
    ("Redis client (redis-py)", r"\(redis/"),
    ("money path on the event loop", r"clearmaas/(billing|limits)/|Gateway\.finish"),
    ("bench probe thread", r"_publish_forever"),
)


def categorise(raw: Path) -> tuple[int, Counter[str]]:
    """Samples per category in a py-spy raw (collapsed) profile."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        samples = int(n)
        total += samples
        name = next((name for name, pattern in _CATEGORIES if re.search(pattern, stack)), "the rest of the gateway")
        counts[name] += samples
    return total, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=[m.key for m in MODES])
    parser.add_argument("--path", choices=["chat", "messages"], default="chat")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy")
    parser.add_argument("--out", type=Path, default=None, help="keep the raw profile here")
    parser.add_argument("--all-threads", action="store_true",
                        help="sample every running thread, not only the one holding the GIL: shows the time spent "
                             "in C code that releases it (SQLite's, in the usage-log writer)")
    args = parser.parse_args(argv)
    from tests.e2e.harness import fake_upstream

    mode = next(m for m in MODES if m.key == args.mode)
    two_cores = (os.cpu_count() or 1) >= 2
    gateway_cpu, client_cpu = (0, 1) if two_cores else (None, None)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    with tempfile.TemporaryDirectory(prefix="clearmaas-profile-") as tmp, ExitStack() as stack:
        shared = stack.enter_context(backends()) if mode.shared else None
        fake = stack.enter_context(fake_upstream(fast=True, cpu=client_cpu))
        prepared = prepare(mode, Path(tmp) / mode.key, fake.url, shared)
        gw = stack.enter_context(serving(prepared, fake.url, cpu=gateway_cpu, tag="profile"))
        calls = Calls(fake.url, gw.url, gw.api_key)
        call = calls.chat() if args.path == "chat" else calls.messages()
        run_wrk(call, seconds=2, connections=64, cpu=client_cpu, watch={"gateway": gw.pid})
        raw = args.out or Path(tmp) / "profile.txt"
        # py-spy may live in a --target directory: its package must be importable by its launcher.
        env = {**os.environ, "PYTHONPATH": str(Path(args.py_spy).resolve().parent.parent)}
        scope = [] if args.all_threads else ["--gil"]
        spy = subprocess.Popen([args.py_spy, "record", *scope, "--nonblocking", "-r", "200", "-f", "raw",
                                "-o", str(raw), "-d", str(args.seconds), "-p", str(gw.pid)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        result = run_wrk(call, seconds=args.seconds + 1, connections=64, cpu=client_cpu, watch={"gateway": gw.pid})
        _, err = spy.communicate()
        if spy.returncode != 0:
            print(err.decode(errors="replace"), file=sys.stderr)
            return 1
        us_per_request = 1e6 * result.cpu["gateway"] / 100.0 / result.rps
        total, counts = categorise(raw)
        print(f"[{mode.key}] {call.name}: {result.rps:.0f} req/s, gateway CPU {result.cpu['gateway']:.0f}% "
              f"-> {us_per_request:.0f} us per request; {total} samples holding the GIL")
        for name, n in counts.most_common():
            print(f"  {100 * n / total:5.1f}%  {us_per_request * n / total:6.1f} us/request  {name}")
        print("  (time outside the GIL, e.g. system calls that release it, is not sampled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
