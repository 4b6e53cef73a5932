"""The compact human-readable tables `python -m bench` prints at the end."""

from __future__ import annotations

from typing import Any

from bench.report import ratio_rows

__all__ = ["render"]


def render(results: dict[str, Any]) -> str:
    meta = results["machine"]
    lines = [f"ClearMaas bench  {meta['date']}  {meta['cpu']}  {meta['cores']} cores  python {meta['python']}  "
             f"commit {meta['commit']}  load avg at start {meta['loadavg_at_start']}"]
    quiet = meta.get("quiet_wait")
    if quiet:
        lines.append(f"waited {quiet['seconds']} s for a quiet machine; other processes then used "
                     f"{quiet['other_cpu_pct']}% of a core")
    lines.append("gateways: " + "; ".join(f"[{key}] {mode['label']}" for key, mode in results["modes"].items()))
    if "latency" in results:
        lines += _latency(results["latency"])
    if "throughput" in results:
        lines += _throughput(results["throughput"])
    if "streams" in results:
        lines += _streams(results["streams"])
    ratios = ratio_rows(results)
    if ratios:
        lines += ["", "Billing on / billing off (measured; noise removed = median of per-round ratios of net or",
                  "capacity figures). Latency: added latency, <= 1.15 is within 15 %; req/s: >= 0.85"]
        lines += [f"  {name:<64}{row['measured']:>8.3f}{row['clean']:>8.3f}" for name, row in ratios.items()]
    if "accounting" in results:
        lines += _accounting(results["accounting"])
    if "slowed" in results:
        lines += _slowed(results["slowed"])
    memory = results.get("memory")
    if memory:
        lines += ["", "Gateway RSS, MiB (idle / after load / peak): " + "; ".join(
            f"[{key}] {m['idle_kb'] / 1024:.0f} / {m['after_load_kb'] / 1024:.0f} / {m['peak_kb'] / 1024:.0f}"
            for key, m in memory.items())]
    targets = results.get("targets")
    if targets:
        lines += ["", f"{'Targets':<72}{'as measured':>16}{'noise removed':>17}"]
        for name, row in targets.items():
            sign = ">=" if row.get("at_least") else "<="
            lines.append(f"  {name:<70}{_verdict(row['met']):>6}{row['measured']:>10}{_verdict(row['clean_met']):>7}"
                         f"{row['clean']:>10}   {sign} {row['target']} {row['unit']}")
    if results.get("notes"):
        lines += ["", *(f"note: {note}" for note in results["notes"])]
    return "\n".join(lines)


def _verdict(met: bool) -> str:
    return "ok  " if met else "MISS"


def _latency(latency: dict[str, Any]) -> list[str]:
    lines = ["", f"Latency at concurrency 1, ms ({latency['rounds']} interleaved rounds x {latency['per_round']} "
             "requests; net = minus the time other processes kept gateway, fake or client off a CPU)",
             f"  other processes used {latency.get('other_cpu_pct', '?')}% of a core meanwhile",
             f"  {'path':<30}{'p50':>7}{'p90':>7}{'p99':>7}{'net p50':>9}{'net p99':>9}{'cpu/req':>9}"]
    for name, row in latency["paths"].items():
        lines.append(f"  {name:<30}{row['p50']:>7.3f}{row['p90']:>7.3f}{row['p99']:>7.3f}{row['net']['p50']:>9.3f}"
                     f"{row['net']['p99']:>9.3f}{row['server_cpu_ms']:>9.3f}")
    lines.append(f"  {'added by the gateway':<30}{'p50':>7}{'p99':>7}{'net p50':>9}{'net p99':>9}"
                 f"{'per-round p50':>17}{'per-round p99':>16}{'median round net p50/p99':>26}")
    for name, row in latency["added"].items():
        p50s, p99s = row["round_p50"], row["round_p99"]
        lines.append(f"  {name:<30}{row['p50']:>7.3f}{row['p99']:>7.3f}{row['net_p50']:>9.3f}{row['net_p99']:>9.3f}"
                     f"{f'{min(p50s):.3f}..{max(p50s):.3f}':>17}{f'{min(p99s):.2f}..{max(p99s):.2f}':>16}"
                     f"{row['median_round_net_p50']:>17.3f}{row['median_round_net_p99']:>9.3f}")
    lines.append("  cpu/req: CPU ms per request of the process serving the path (the fake on direct paths)")
    return lines


def _throughput(throughput: dict[str, Any]) -> list[str]:
    lines = ["", f"Throughput: wrk -t1 -c{throughput['connections']}, {throughput['rounds']} interleaved rounds x "
             f"{throughput['seconds']} s (median), gateways on core {throughput['gateway_cpu']}, wrk + fake on core "
             f"{throughput['client_cpu']}; other processes used {throughput.get('other_cpu_pct', '?')}% of a core",
             f"  {'path':<30}{'req/s':>7}{'vs fake':>8}{'p50 ms':>7}{'p99 ms':>7}{'srv%':>5}{'wait%':>6}"
             f"{'fake%':>6}{'wrk%':>5}{'redis%':>7}{'pg%':>5}{'core0%':>7}{'core1%':>7}{'us/req':>7}{'capacity':>9}"]
    fake = next(name for name, who in throughput["server"].items() if who == "fake")
    for name, run in throughput["median_runs"].items():
        cpu = run["cpu"]
        who = throughput["server"][name]
        ratio = throughput["median_rps"][name] / throughput["median_rps"][fake]
        lines.append(f"  {name:<30}{throughput['median_rps'][name]:>7.0f}{ratio:>8.2f}{run['p50_ms']:>7.2f}"
                     f"{run['p99_ms']:>7.2f}{cpu.get(who, 0):>5.0f}{cpu.get(f'{who}_wait', 0):>6.0f}"
                     f"{cpu.get('fake', 0):>6.0f}{cpu.get('wrk', 0):>5.0f}{cpu.get('redis', 0):>7.0f}"
                     f"{cpu.get('postgres', 0):>5.0f}{cpu.get('core0', 0):>7.0f}{cpu.get('core1', 0):>7.0f}"
                     f"{throughput['cpu_us_per_request'][name]:>7.0f}{throughput['capacity_rps'][name]:>9.0f}")
    lines += ["  srv%/fake%/wrk%/redis%/pg%: CPU as % of one core (srv: the process serving the path; pg: the",
              "  scratch database's server processes); wait%: the server's threads runnable but waiting for a",
              "  core (for other processes, or for each other: the usage-log writer yields to the event loop);",
              "  us/req: CPU per request of the serving process, all its threads;",
              "  capacity = 1e6 / us/req: the req/s of one process with a core to itself"]
    side = throughput["load_side"]
    lines.append(f"  load side: the fake alone served {side['fake_direct_rps']:.0f} req/s, {side['headroom']:.1f}x the "
                 f"fastest gateway path; fake + wrk used at most {side['max_fake_plus_wrk_pct']:.0f}% of core "
                 f"{throughput['client_cpu']} during gateway runs -> {side['verdict']}")
    return lines


def _streams(streams: dict[str, Any]) -> list[str]:
    lines = ["", f"Streams, ms: the fake's frames back-to-back, or paced {streams['pace_ms']} ms apart; interleaved; "
             f"first event = first body byte; other processes used {streams.get('other_cpu_pct', '?')}% of a core",
             f"  {'variant / path':<48}{'head p50':>9}{'1st event p50':>14}{'p99':>7}{'net p50':>9}{'net p99':>9}"
             f"{'gap p50':>9}{'gap p99':>9}{'total p50':>10}"]
    for variant, block in streams["variants"].items():
        for name, row in block["paths"].items():
            lines.append(f"  {f'{variant} / {name}':<48}{row['first_byte']['p50']:>9.3f}"
                         f"{row['first_event']['p50']:>14.3f}{row['first_event']['p99']:>7.3f}"
                         f"{row['first_event_net']['p50']:>9.3f}{row['first_event_net']['p99']:>9.3f}"
                         f"{row['gap']['p50']:>9.3f}{row['gap']['p99']:>9.3f}{row['total']['p50']:>10.3f}")
        for name, row in block["added"].items():
            lines.append(f"  {f'  added, {name}':<57}{row['first_event_p50']:>+14.3f}{row['first_event_p99']:>+7.3f}"
                         f"{row['first_event_net_p50']:>+9.3f}{row['first_event_net_p99']:>+9.3f}"
                         f"{row['gap_p50']:>+9.3f}{row['gap_p99']:>+9.3f}{row['total_p50']:>+10.3f}")
    return lines


def _accounting(accounting: dict[str, Any]) -> list[str]:
    lines = ["", f"Database and Redis, counted inside each gateway over {' + '.join(accounting['load_phases'])} "
             "(SQL executions: an executemany is one; background = the idle rate,",
             f"measured over {accounting['idle_seconds']} s with every gateway idle)",
             f"  {'gateway':<9}{'requests':>9}{'SQL':>7}{'/req':>8}{'txns':>6}{'/req':>8}{'load/req':>9}"
             f"{'batches':>8}{'rec/batch':>10}{'SQL/batch':>10}{'bg SQL/s':>9}{'on loop':>8}{'redis':>8}{'/req':>6}"
             f"{'load/req':>9}"]
    for mode, row in accounting["modes"].items():
        per_batch = row["sql_per_batch_beyond_background"]
        lines.append(f"  {mode:<9}{row['requests']:>9}{row['sql_executions']:>7}{row['sql_per_request']:>8.4f}"
                     f"{row['transactions']:>6}{row['transactions_per_request']:>8.4f}"
                     f"{row['load_transactions_per_request']:>9.4f}{row['usage_batches']:>8}"
                     f"{row['records_per_batch']:>10}{'-' if per_batch is None else per_batch:>10}"
                     f"{row['background_per_second']:>9}{row['loop_thread_executions']:>8}"
                     f"{row['redis_round_trips']:>8}{row['redis_per_request']:>6}{row['load_redis_per_request']:>9}")
    lines += ["  txns: transactions begun; load/req: per request beyond the idle rate; SQL/batch: executions per",
              "  usage-log batch beyond the idle rate; on loop: executions on the event loop's thread"]
    for mode, row in accounting["modes"].items():
        kinds = ", ".join(f"{n} x {kind[:48]}" for kind, n in list(row["sql_kinds"].items())[:6])
        lines.append(f"  [{mode}] SQL: {kinds}")
        if row["redis_scripts_per_request"]:
            lines.append(f"  [{mode}] Redis scripts per request: " + ", ".join(
                f"{name} {n}" for name, n in row["redis_scripts_per_request"].items()) +
                "; background: " + ", ".join(f"{n} x {c}" for c, n in row["idle_redis_commands"].items()) +
                " while idle")
    pg = accounting.get("pg_server")
    if pg:
        lines.append(f"  PostgreSQL's own count for the scratch database: {pg['xact_commit']} commits + "
                     f"{pg['xact_rollback']} rollbacks = {pg['transactions_per_request']} per request, "
                     f"{pg['load_transactions_per_request']} beyond its idle rate of "
                     f"{pg['idle_transactions_per_second']}/s (inserted {pg['tup_inserted']} rows, "
                     f"updated {pg['tup_updated']})")
    redis = accounting.get("redis_server")
    if redis:
        lines.append(f"  Redis's own count (the whole server, other clients included): {redis['evalsha_calls']} EVALSHA "
                     f"(this gateway sent {redis['our_evalsha_calls']}), {redis['evalsha_usec_per_call']} us of "
                     "Redis CPU each")
    return lines


def _slowed(slowed: dict[str, Any]) -> list[str]:
    lines = ["", "Database slowed: every SQL execution sleeps first, in the thread that runs it; c=1 chat passthrough",
             "rounds alternated with the database as is, then two wrk -c64 runs each (mean)",
             f"  {'gateway / variant':<22}{'p50':>7}{'p90':>7}{'p99':>7}{'net p50':>9}{'req/s':>8}{'capacity':>9}"
             f"{'SQL':>6}{'batches':>8}{'records':>8}"]
    for mode, block in slowed.items():
        for variant, row in block["variants"].items():
            wrk = row["wrk"]
            label = f"[{mode}] {variant}" + (f" +{block['delay_ms']:g} ms" if variant == "slowed" else "")
            lines.append(f"  {label:<22}{row['latency']['p50']:>7.3f}{row['latency']['p90']:>7.3f}"
                         f"{row['latency']['p99']:>7.3f}{row['net']['p50']:>9.3f}{wrk['rps']:>8.0f}{wrk['capacity']:>9}"
                         f"{wrk['sql_executions']:>6}{wrk['usage_batches']:>8}{wrk['usage_records']:>8}")
        change = block["change"]
        lines.append(f"  [{mode}] {block['slowed_sql_executions']} SQL executions ran slowed "
                     f"({block['slowed_sql_executions'] * block['delay_ms'] / 1000:.1f} s of injected database time); "
                     f"median per-round p50 change {change['median_round_p50']:+.3f} ms "
                     f"(net {change['median_round_net_p50']:+.3f})")
    return lines
