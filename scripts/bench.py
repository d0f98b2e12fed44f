#!/usr/bin/env python3
"""Runs the benchmarks: each workload through the net plugin (loaded by the reference
host) and on raw blocking C sockets, in the same run, several times each. Prints the
median of each figure, its ratio to the C baseline, and writes the same as JSON.

    python3 scripts/bench.py [--build build] [--runs 5] [--quick] [--out bench-results.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

# (name, argv after the program, metric, "higher" or "lower" is better)
WORKLOADS = [
    ("pingpong_64", ["pingpong", "64", "{pp_count}"], "rtt_us", "lower"),
    ("pingpong_16384", ["pingpong", "16384", "{pp_count_large}"], "rtt_us", "lower"),
    ("bulk", ["bulk", "{bulk_total}", "65536"], "mib_per_s", "higher"),
]
FULL = {"pp_count": 20000, "pp_count_large": 5000, "bulk_total": 1 << 30}
QUICK = {"pp_count": 200, "pp_count_large": 50, "bulk_total": 1 << 22}


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout
    figures = {}
    for line in out.splitlines():
        workload, metric, value = line.split()
        figures[(workload, metric)] = float(value)
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="meson build directory")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the suite, not speed")
    ap.add_argument("--out", default="bench-results.json")
    args = ap.parse_args()

    sizes = QUICK if args.quick else FULL
    raw = os.path.join(args.build, "scripts", "bench_raw_c")
    plugin = os.path.join(args.build, "scripts", "bench_plugin")
    plugin_dir = os.path.join(args.build, "plugin")
    results = []
    print(f"{'workload':<16} {'metric':<10} {'C baseline':>12} {'net plugin':>12} {'ratio':>8}")
    for name, argv, metric, better in WORKLOADS:
        argv = [a.format(**sizes) for a in argv]
        samples = {"c": [], "plugin": []}
        for _ in range(args.runs):
            samples["c"].append(run([raw] + argv)[(name, metric)])
            got = run([plugin, plugin_dir] + argv)
            samples["plugin"].append(got[(name, metric)])
            if name == "bulk":
                moved = got[("bulk", "bytes")]
                if moved != float(argv[1]):
                    sys.exit(f"bulk through the plugin moved {moved} bytes, not {argv[1]}")
        c = statistics.median(samples["c"])
        p = statistics.median(samples["plugin"])
        ratio = p / c
        results.append({"workload": name, "metric": metric, "better": better, "c": c,
                        "plugin": p, "ratio_to_c": ratio, "runs": args.runs,
                        "samples": samples})
        print(f"{name:<16} {metric:<10} {c:>12.2f} {p:>12.2f} {ratio:>7.2f}x")
    with open(args.out, "w") as f:
        json.dump({"quick": args.quick, "results": results}, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
