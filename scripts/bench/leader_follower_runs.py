#!/usr/bin/env python3
"""Runs bench_leader_follower's variants and bench_raw_c's ping-pong in interleaved
rounds and prints, per variant and message size: the median round trip, its ratio to
C's median, the median of the per-round ratios, and (one run under `perf stat`, whose
counts do not depend on the machine's load) context switches, system calls, futex
calls and CPU time per round trip. The figures in docs/design.md ("Leader/follower over
libuv") come from it.

    leader_follower_runs.py --build BUILD [--rounds 7] [--count 5000] [--cpus 0]
                            [--variants 'direct, send_unlocked' ...]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

VARIANTS = [
    ("C (blocking)", None),
    ("handoff", ["handoff"]),
    ("handoff, gil", ["handoff", "gil"]),
    ("writer", ["writer"]),
    ("writer, gil", ["writer", "gil"]),
    ("direct", ["direct"]),
    ("handoff, send_unlocked", ["handoff", "send_unlocked"]),
    ("writer, send_unlocked", ["writer", "send_unlocked"]),
    ("writer, send_unlocked, gil", ["writer", "send_unlocked", "gil"]),
    ("direct, send_unlocked", ["direct", "send_unlocked"]),
    ("direct, send_unlocked, gil", ["direct", "send_unlocked", "gil"]),
]
SIZES = [64, 16384]
EVENTS = ["context-switches", "raw_syscalls:sys_enter", "syscalls:sys_enter_futex", "task-clock"]


def command(build, args, size, count, cpus):
    scripts = os.path.join(build, "scripts")
    if args is None:
        cmd = [os.path.join(scripts, "bench_raw_c"), "pingpong", str(size), str(count)]
    else:
        cmd = [os.path.join(scripts, "bench_leader_follower"), args[0], str(size), str(count)] + args[1:]
    return (["taskset", "-c", cpus] if cpus else []) + cmd


def run(cmd, size, count):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    figures = {}
    for line in out.stdout.splitlines():
        workload, metric, value = line.split()
        figures[metric] = float(value)
    if figures.get("bytes") != size * count:
        sys.exit(f"{' '.join(cmd)}: {figures.get('bytes')} bytes back, expected {size * count}")
    return figures, out.stderr


def counts(cmd, size, count):
    perf = ["perf", "stat", "-x,", "-e", ",".join(EVENTS), "--"]
    _, err = run(perf + cmd, size, count)
    per_rt = {}
    for line in err.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] in EVENTS and fields[0].replace(".", "").isdigit():
            per_rt[fields[2]] = float(fields[0]) / count
    per_rt["task-clock"] = per_rt.get("task-clock", 0) * 1000  # ms -> us per round trip
    return per_rt


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--cpus", default="", help="taskset CPU list, e.g. 0 (default: any)")
    ap.add_argument("--no-counts", action="store_true")
    ap.add_argument("--variants", nargs="+", help="names from the table (C always runs)")
    ap.add_argument("--out")
    a = ap.parse_args()
    global VARIANTS
    if a.variants:
        known = [name for name, _ in VARIANTS]
        for v in a.variants:
            if v not in known:
                sys.exit(f"--variants: unknown variant '{v}'; expected one of: {', '.join(known)}")
        VARIANTS = [VARIANTS[0]] + [(n, args) for n, args in VARIANTS[1:] if n in a.variants]
    loads = [loadavg()]
    rtt = {(name, size): [] for name, _ in VARIANTS for size in SIZES}
    for r in range(a.rounds):
        for size in SIZES:
            for name, args in VARIANTS:
                figures, _ = run(command(a.build, args, size, a.count, a.cpus), size, a.count)
                rtt[(name, size)].append(figures["rtt_us"])
        loads.append(loadavg())
        print(f"round {r + 1}/{a.rounds} done, load {loads[-1]:.2f}", file=sys.stderr)
    per_rt = {}
    if not a.no_counts and shutil.which("perf"):
        for size in SIZES:
            for name, args in VARIANTS:
                per_rt[(name, size)] = counts(command(a.build, args, size, 4 * a.count, a.cpus), size, 4 * a.count)
    loads.append(loadavg())

    print(f"cpus: {a.cpus or 'any'}; rounds {a.rounds} x {a.count} round trips; "
          f"load {min(loads):.2f}-{max(loads):.2f}")
    print("| size | variant | RTT median (us) | / C | per-round / C | cs/RT | syscalls/RT | futex/RT | CPU us/RT |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for size in SIZES:
        c = rtt[("C (blocking)", size)]
        for name, _ in VARIANTS:
            mine = rtt[(name, size)]
            med = statistics.median(mine)
            ratio = med / statistics.median(c)
            per_round = statistics.median(m / b for m, b in zip(mine, c))
            k = per_rt.get((name, size), {})
            rows.append({"size": size, "variant": name, "rtt_us": mine, "counts": k})
            print(f"| {size} | {name} | {med:.1f} | {ratio:.2f}x | {per_round:.2f}x | "
                  f"{k.get('context-switches', 0):.2f} | {k.get('raw_syscalls:sys_enter', 0):.2f} | "
                  f"{k.get('syscalls:sys_enter_futex', 0):.2f} | {k.get('task-clock', 0):.1f} |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"cpus": a.cpus, "rounds": a.rounds, "count": a.count, "loads": loads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
