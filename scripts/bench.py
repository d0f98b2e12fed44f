#!/usr/bin/env python3
"""Runs the network benchmarks on loopback: each workload through the net plugin (loaded
by the reference host, driven as an interpreter would), raw blocking C sockets (the
baseline), the same workloads in C as one thread running one epoll loop (the kernel's
floor: no thread ever waits for another), CPython's `socket` module and Node's `net`
module. A full run takes a few minutes; --quick checks every workload in seconds.

Builds nothing: build first, then run

    meson compile -C build && python3 scripts/bench.py

Each figure is the median of --runs runs; the table shows it with its ratio to the C
baseline, and the same goes to a JSON file. The figures are only as steady as the machine:
run it on an idle one. After the table, a full run also prints each column's spread: the
quartiles of its ratio to the C run of the same round, which a noisy moment that slows
the whole round leaves alone.

Workloads (the same parameters for every implementation):
  pingpong_64, pingpong_16384  one connection, a message echoed back and forth: round trip (us)
  udp_pingpong_64  one 64-byte datagram each way per round trip: round trip (us)
  bulk      1 GiB through one connection in 64 KiB writes: MiB/s
  lines     2,000,000 lines "line 0000000\\n" read by line iteration: lines/s
  accept    connect, accept and close 20,000 connections, one after another: connections/s
  fanin     1,000 connections open at once, 100 round trips of 64 B each: round trips/s
  idle      user-space memory per open idle accepted connection, bytes (C and plugin; the
            plugin's figure net of C's is the one with a target)
  load      `import net` (load + init), unload and reload through the host: ms (plugin);
            `import socket` in a fresh interpreter (CPython, for reference)
Each program reports what its receiving side counted (bytes, lines, connections, echoes);
a run whose counts differ from what was sent fails the whole command (exit status 1).

Flags:
  --build DIR        meson build directory holding scripts/bench_raw_c, scripts/bench_plugin
                     and plugin/ksp_net.so (default: build)
  --runs N           runs per workload and implementation; figures are medians (default 5)
  --quick            tiny sizes: checks that every workload works and counts right, in
                     seconds; its figures mean nothing
  --out FILE         where to write the JSON results (default: BUILD/bench-results.json)
  --impls LIST       comma-separated subset of c,c_loop,plugin,python,node,ks_builtin,ks_plugin
                     (default: all)
  --workloads LIST   comma-separated subset of the workloads above (default: all)
  --python EXE       the CPython to run scripts/bench/python_bench.py with (default: this
                     interpreter if it is CPython, else python3 on PATH); if none is found
                     the CPython column is skipped with a note
  --node EXE         node executable (default: node on PATH); skipped with a note if missing
  --ks EXE           kscript's ks (default: the build's kscript_prefix, else ks on PATH): the
                     columns "kscript builtin net" and "kscript + plugin" run bench/ks_bench.ks
                     on the same ks, on its builtin net and with the plugin's preload library,
                     for pingpong, bulk, lines and accept; skipped with a note if missing
  --cpus LIST        run every program under `taskset -c LIST` (e.g. 0: everything on one
                     CPU, which takes cross-CPU wake-ups out of the round-trip figures)
  --check-the-checks instead of measuring, runs every workload once with one unit less than
                     the expected count sent (a message, a chunk, a line, a connection...) and
                     succeeds only if the count check caught every one of them
  --pool JSON...     instead of measuring, prints the table of earlier runs (their JSON files)
                     as if they were one run: medians of all their runs together; the spread
                     still pairs each run with the C run of its own round (--out default:
                     BUILD/bench-pooled.json, or ./ without a build). On a noisy machine one run's medians wander;
                     pooling every run made is the steadier figure.
"""
import argparse
import atexit
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
IMPLS = [("c", "C baseline"), ("c_loop", "C event loop"), ("plugin", "net plugin"), ("python", "CPython"), ("node", "Node"),
         ("ks_builtin", "kscript builtin net"), ("ks_plugin", "kscript + plugin")]
# The workloads bench/ks_bench.ks has (kscript has no selector for fanin's one-thread
# server; idle and load measure the plugin through the reference host).
KS_WORKLOADS = {"pingpong_64", "pingpong_16384", "bulk", "lines", "accept"}
WIDTH = 20  # of each implementation's column in the table

FULL = {"pp_count": 20000, "pp_count_large": 5000, "bulk_total": 1 << 30, "bulk_chunk": 65536,
        "lines": 2_000_000, "accepts": 20000, "fanin_conns": 1000, "fanin_rounds": 100,
        "fanin_size": 64, "fanin_threads": 4, "idle_conns": 1000, "load_count": 20, "swap_count": 50}
QUICK = {"pp_count": 200, "pp_count_large": 50, "bulk_total": 1 << 22, "bulk_chunk": 65536,
         "lines": 20000, "accepts": 200, "fanin_conns": 50, "fanin_rounds": 10,
         "fanin_size": 64, "fanin_threads": 2, "idle_conns": 50, "load_count": 3, "swap_count": 3}


def most_sockets_for_a_swap(wanted=10000):
    """A swap holds each socket's descriptor twice (old and new version) until it commits:
    as many sockets as the hard descriptor limit allows, up to `wanted`."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return wanted
    return max(100, min(wanted, (hard - 1024) // 2 // 1000 * 1000))


SWAP_MANY = most_sockets_for_a_swap()


class Workload:
    def __init__(self, name, argv, metrics, checks, sabotage, impls=None, ratio=True):
        self.name = name
        self.argv = argv          # after the program; "{key}" is taken from the sizes
        self.metrics = metrics    # [(metric, "lower"|"higher")]
        self.checks = checks      # {count metric: sizes -> the count the receiver must report}
        self.sabotage = sabotage  # sizes -> sizes that send one unit less
        self.impls = impls or [k for k, _ in IMPLS if not k.startswith("ks_") or name in KS_WORKLOADS]
        self.ratio = ratio        # whether a ratio to C means anything


def less(key, by=1):
    return lambda s: {**s, key: s[key] - (s[by] if isinstance(by, str) else by)}


WORKLOADS = [
    Workload("pingpong_64", ["pingpong", "64", "{pp_count}"], [("rtt_us", "lower")],
             {"bytes": lambda s: 64 * s["pp_count"]}, less("pp_count")),
    Workload("pingpong_16384", ["pingpong", "16384", "{pp_count_large}"], [("rtt_us", "lower")],
             {"bytes": lambda s: 16384 * s["pp_count_large"]}, less("pp_count_large")),
    Workload("udp_pingpong_64", ["udp_pingpong", "64", "{pp_count}"], [("rtt_us", "lower")],
             {"bytes": lambda s: 64 * s["pp_count"]}, less("pp_count"), impls=["c", "plugin", "python"]),
    Workload("bulk", ["bulk", "{bulk_total}", "{bulk_chunk}"], [("mib_per_s", "higher")],
             {"bytes": lambda s: s["bulk_total"]}, less("bulk_total", "bulk_chunk")),
    Workload("lines", ["lines", "{lines}"], [("lines_per_s", "higher")],
             {"lines": lambda s: s["lines"], "bytes": lambda s: 12 * s["lines"]}, less("lines")),
    Workload("accept", ["accept", "{accepts}"], [("conns_per_s", "higher")],
             {"conns": lambda s: s["accepts"]}, less("accepts")),
    Workload("fanin", ["fanin", "{fanin_conns}", "{fanin_rounds}", "{fanin_size}", "{fanin_threads}"],
             [("msgs_per_s", "higher")],
             {"msgs": lambda s: s["fanin_conns"] * s["fanin_rounds"], "conns": lambda s: s["fanin_conns"]},
             less("fanin_rounds")),
    Workload("idle", ["idle", "{idle_conns}"], [("heap_bytes_per_conn", "lower"), ("rss_bytes_per_conn", "lower")],
             {"conns": lambda s: s["idle_conns"]}, less("idle_conns"), impls=["c", "plugin"], ratio=False),
    Workload("load", ["load", "{load_count}"],
             [("import_ms", "lower"), ("import_first_ms", "lower"), ("unload_ms", "lower"), ("reload_ms", "lower")],
             {"cycles": lambda s: s["load_count"]}, less("load_count"), impls=["plugin", "python"], ratio=False),
] + [
    # Live reload (ksp_handover): the median time of one reload with that many sockets open.
    Workload(f"swap_{n}", ["swap", str(n), "{swap_count}"], [("swap_ms", "lower")],
             {"sockets": lambda s, n=n: n, "swaps": lambda s: s["swap_count"]}, less("swap_count"),
             impls=["plugin"], ratio=False)
    for n in (0, 100, SWAP_MANY)
]

# The plugin's targets (issue #12; #4's were looser): (workload, metric) -> (description,
# test on the figures).
TARGETS = {
    ("pingpong_64", "rtt_us"): ("<= 1.05x C", lambda f: f["plugin"] <= 1.05 * f["c"]),
    ("pingpong_16384", "rtt_us"): ("<= 1.05x C", lambda f: f["plugin"] <= 1.05 * f["c"]),
    ("bulk", "mib_per_s"): (">= 0.95x C", lambda f: f["plugin"] >= 0.95 * f["c"]),
    ("lines", "lines_per_s"): (">= 1.5x CPython", lambda f: f["plugin"] >= 1.5 * f["python"]),
    ("accept", "conns_per_s"): (">= 0.9x C", lambda f: f["plugin"] >= 0.9 * f["c"]),
    ("fanin", "msgs_per_s"): (">= 1.0x C", lambda f: f["plugin"] >= f["c"]),
    ("idle", "plugin_net_heap_bytes_per_conn"): ("<= 1024 B", lambda f: f["plugin"] <= 1024),
    ("load", "import_ms"): ("<= 1 ms", lambda f: f["plugin"] <= 1.0),
    ("swap_100", "swap_ms"): ("<= 5 ms", lambda f: f["plugin"] <= 5.0),  # issue #13
}


class CheckFailed(Exception):
    pass


def find_python(wanted):
    if wanted:
        return shutil.which(wanted) or (wanted if os.access(wanted, os.X_OK) else None)
    if platform.python_implementation() == "CPython" and sys.executable:
        return sys.executable
    exe = shutil.which("python3")
    if exe:
        probe = subprocess.run([exe, "-c", "import platform; print(platform.python_implementation())"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "CPython":
            return exe
    return None


def commands(args):
    """impl -> argv prefix, and notes for the implementations left out."""
    raw = os.path.join(args.build, "scripts", "bench_raw_c")
    plugin = os.path.join(args.build, "scripts", "bench_plugin")
    plugin_dir = os.path.join(args.build, "plugin")
    notes = []
    for exe in (raw, plugin):
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench.py: {exe} not found: build first (meson compile -C {args.build})")
    loop = os.path.join(args.build, "scripts", "bench_loop_c")
    cmds = {"c": [raw], "plugin": [plugin, plugin_dir]}
    if os.access(loop, os.X_OK):
        cmds["c_loop"] = [loop]
    else:
        notes.append(f"{loop} not found: the C event-loop column is skipped")
    python = find_python(args.python)
    if python:
        cmds["python"] = [python, os.path.join(HERE, "bench", "python_bench.py")]
    else:
        notes.append("CPython not found: the CPython column is skipped")
    node = shutil.which(args.node) if args.node else shutil.which("node")
    if node and subprocess.run([node, "--version"], capture_output=True).returncode == 0:
        cmds["node"] = [node, os.path.join(HERE, "bench", "node_bench.js")]
    else:
        notes.append("node not found: the Node column is skipped")
    cmds.update(kscript_commands(args, notes))
    wanted = args.impls.split(",") if args.impls else [k for k, _ in IMPLS]
    for w in wanted:
        if w not in dict(IMPLS):
            sys.exit(f"bench.py: unknown implementation {w!r} (expected some of " + ",".join(k for k, _ in IMPLS) + ")")
    return {k: v for k, v in cmds.items() if k in wanted}, notes


def build_option(build, name):
    """The value of a meson option of the build, or None."""
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            options = {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError, KeyError):
        return None
    return options.get(name)


def kscript_of_build(build):
    """The ks of the kscript the build was configured with (option kscript_prefix), if any."""
    prefix = build_option(build, "kscript_prefix")
    return os.path.join(prefix, "bin", "ks") if prefix else None


def asan_preload(build):
    """For an ASan build: what ks (not instrumented) needs in front of the preload library,
    as tests/kscript/run_script.sh does: the ASan runtime first, and no leak report at
    exit (those would be kscript's own, docs/kscript.md)."""
    if "address" not in str(build_option(build, "b_sanitize") or ""):
        return [], []
    cc = os.environ.get("CC", "cc")
    libasan = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    options = os.environ.get("ASAN_OPTIONS", "abort_on_error=1")
    return [libasan], ["ASAN_OPTIONS=" + options + ":detect_leaks=0"]


def kscript_commands(args, notes):
    """The two kscript columns, the same script (bench/ks_bench.ks) on the same ks: on
    kscript's builtin net, and on the plugin (ks started with the preload library, from a
    scratch copy of the install folder made of this build's files)."""
    ks = args.ks or kscript_of_build(args.build) or shutil.which("ks")
    if not ks or not os.access(ks, os.X_OK):
        notes.append("kscript not found (--ks, the build's kscript_prefix, or ks on PATH): "
                     "the kscript columns are skipped")
        return {}
    script = os.path.join(HERE, "bench", "ks_bench.ks")
    files = [os.path.join(args.build, "plugin", "ksp_net.so"),
             os.path.join(args.build, "hosts", "kscript", "ksm_net.so"),
             os.path.join(args.build, "hosts", "kscript", "ksp_net_preload.so")]
    cmds = {"ks_builtin": [ks, script]}
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        notes.append(f"{missing[0]} not found (a build configured without kscript?): "
                     "the kscript + plugin column is skipped")
        return cmds
    folder = os.path.join(tempfile.mkdtemp(prefix="ksbench-"), "net")
    atexit.register(shutil.rmtree, os.path.dirname(folder), True)
    os.mkdir(folder)
    for f in files:
        shutil.copy(f, folder)
    first, env = asan_preload(args.build)
    preloads = " ".join(first + [os.path.join(folder, "ksp_net_preload.so")])
    cmds["ks_plugin"] = ["env", "LD_PRELOAD=" + preloads] + env + [ks, script]
    return cmds


def run_program(cmd, timeout):
    """Runs one benchmark program; returns {(workload, metric): value}."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{' '.join(cmd)}: no result within {timeout} s")
    if proc.returncode != 0:
        raise CheckFailed(f"{' '.join(cmd)}: exit status {proc.returncode}\n{proc.stderr.strip()}")
    figures = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) != 3:
            raise CheckFailed(f"{' '.join(cmd)}: unexpected output line {line!r}")
        figures[(parts[0], parts[1])] = float(parts[2])
    return figures


def run_once(w, impl, prefix, sizes, expect_sizes, timeout):
    """One run of workload w on impl, checked against expect_sizes' counts."""
    argv = [a.format(**sizes) for a in w.argv]
    got = run_program(prefix + argv, timeout)
    for count, expected in w.checks.items():
        want = expected(expect_sizes)
        have = got.get((w.name, count))
        if have is None or have != want:
            raise CheckFailed(f"{w.name} on {impl}: the receiver counted {count} = {have}, "
                              f"expected {want}")
    out = {}
    for metric, _ in w.metrics:
        if (w.name, metric) in got:
            out[metric] = got[(w.name, metric)]
        elif not (w.name == "load" and impl != "plugin"):  # CPython reports import_ms only
            raise CheckFailed(f"{w.name} on {impl}: no {metric} reported")
    return out


def round_ratio_quartiles(rounds, metric):
    """{impl: [q1, median, q3]} of value / C's value within the same run, for runs where
    both counted: machine noise that hits a whole run cancels out of these."""
    out = {}
    impls = {i for r in rounds for i in r if i != "c"}
    for impl in sorted(impls):
        ratios = [r[impl][metric] / r["c"][metric] for r in rounds
                  if impl in r and "c" in r and metric in r[impl] and r["c"].get(metric)]
        if len(ratios) >= 3:
            q = statistics.quantiles(ratios, n=4)
            out[impl] = [q[0], statistics.median(ratios), q[2]]
    return out


def tabulate(w, samples, rounds, impls, quick, runs, results, spreads):
    """Prints workload w's rows of the table from its samples ({impl: {metric: [values]}})
    and rounds ([{impl: {metric: value}}], one per round); appends its JSON entries to
    results and its within-round spreads to spreads."""
    here = [i for i in impls if i in samples]
    rows = [(m, better, {i: statistics.median(samples[i][m]) for i in here if samples[i].get(m)})
            for m, better in w.metrics]
    if w.name == "idle":
        heap = rows[0][2]
        if "c" in heap and "plugin" in heap:
            rows.append(("plugin_net_heap_bytes_per_conn", "lower", {"plugin": heap["plugin"] - heap["c"]}))
            pairs = zip(samples["plugin"]["heap_bytes_per_conn"], samples["c"]["heap_bytes_per_conn"])
            samples["plugin"]["plugin_net_heap_bytes_per_conn"] = [p - c for p, c in pairs]
    for metric, better, med in rows:
        if not med:
            continue
        c = med.get("c")
        ratios = {i: v / c for i, v in med.items() if w.ratio and c}
        target = TARGETS.get((w.name, metric))
        met = None
        if target and not quick:  # quick figures mean nothing
            try:
                met = bool(target[1](med))
            except KeyError:  # a column it needs was skipped or failed
                met = None
        line = f"{w.name:<15} {metric:<31}"
        for i in impls:
            cell = fmt(med.get(i))
            if i in ratios and i != "c":
                cell += f" ({ratios[i]:.2f}x)"
            line += f"{cell:>{WIDTH}}"
        if target:
            line += f"  {target[0]}: " + ("-" if met is None else "met" if met else "MISSED")
        print(line)
        sys.stdout.flush()
        within = round_ratio_quartiles(rounds, metric) if w.ratio else {}
        if within:
            spreads.append((w.name, metric, within))
        results.append({"workload": w.name, "metric": metric, "better": better,
                        "figures": med, "ratio_to_c": ratios, "round_ratio_quartiles": within,
                        "target": target[0] if target else None, "target_met": met,
                        "samples": {i: samples[i].get(metric, []) for i in here},
                        "rounds": [x for x in ({i: v[metric] for i, v in r.items() if metric in v}
                                               for r in rounds) if x],
                        "runs": runs})


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def check_the_checks(args, cmds, workloads):
    """Sends one unit less than each check expects; every check must catch it."""
    caught, missed, broken = 0, [], []
    for w in workloads:
        for impl in [i for i in w.impls if i in cmds]:
            try:
                run_once(w, impl, cmds[impl], w.sabotage(QUICK), QUICK, 120)
                missed.append(f"{w.name} on {impl}")
            except CheckFailed as e:
                if "the receiver counted" in str(e):
                    caught += 1
                else:
                    broken.append(str(e))
    print(f"count checks that caught a short run: {caught}")
    for m in missed:
        print(f"NOT CAUGHT: {m}")
    for b in broken:
        print(f"FAILED otherwise: {b}")
    return 0 if caught and not missed and not broken else 1


def print_header(title, impls):
    label = dict(IMPLS)
    head = f"{'workload':<15} {'metric':<31}" + "".join(f"{label[i]:>{WIDTH}}" for i in impls)
    head += "  plugin target"
    print(title)
    print(head)
    print("-" * len(head))
    sys.stdout.flush()


def print_spreads(spreads):
    label = dict(IMPLS)
    print("\nspread: each run's ratio to the C run just before it "
          "(lower quartile / median / upper quartile)")
    for name, metric, within in spreads:
        print(f"{name:<15} {metric:<31}" + "".join(
            f"{label[i]}: {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f}   " for i, q in within.items()))


def rounds_of_entry(entry, failures):
    """One result entry's rounds as [{impl: value}]. Files written before rounds were
    stored have only the samples: those pair by position, which holds only when no run of
    that file failed (a failed run is missing from its column)."""
    if "rounds" in entry:
        return entry["rounds"]
    columns = list(entry["samples"].values())
    if failures or len({len(c) for c in columns}) != 1:
        return []
    return [dict(zip(entry["samples"], values)) for values in zip(*columns)]


def pool(paths, workloads):
    """Reads the JSON of earlier runs and puts each workload's samples and rounds together,
    as if they came from one run. Returns (sizes, {workload name: (samples, rounds)})."""
    wanted = {w.name: w for w in workloads}
    sizes, pooled = None, {}
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            sys.exit(f"bench.py: --pool {path}: cannot read it as bench.py's JSON ({e})")
        if not isinstance(data, dict) or not {"sizes", "results"} <= data.keys():
            sys.exit(f"bench.py: --pool {path}: not bench.py's JSON (no sizes or results)")
        if data.get("quick"):
            sys.exit(f"bench.py: --pool {path}: a --quick run, whose figures mean nothing")
        if sizes is not None and data["sizes"] != sizes:
            sys.exit(f"bench.py: --pool {path}: measured with other sizes than {paths[0]}")
        sizes = data["sizes"]
        by_workload = {}  # this file's rounds, {impl: {metric: value}} each
        for entry in data["results"]:
            w = wanted.get(entry["workload"])
            if w is None or entry["metric"] not in dict(w.metrics):
                continue  # a workload left out, or a row that tabulate() derives again
            samples, _ = pooled.setdefault(w.name, ({}, []))
            for impl, values in entry["samples"].items():
                samples.setdefault(impl, {}).setdefault(entry["metric"], []).extend(values)
            rounds = by_workload.setdefault(w.name, [])
            for k, r in enumerate(rounds_of_entry(entry, data.get("failures"))):
                if k == len(rounds):
                    rounds.append({})
                for impl, v in r.items():
                    rounds[k].setdefault(impl, {})[entry["metric"]] = v
        for name, rounds in by_workload.items():
            pooled[name][1].extend(rounds)
    return sizes, pooled


def report_pool(args, workloads):
    sizes, pooled = pool(args.pool, workloads)
    wanted = args.impls.split(",") if args.impls else [k for k, _ in IMPLS]
    impls = [k for k, _ in IMPLS if k in wanted and any(k in pooled[n][0] for n in pooled)]
    print_header(f"pooled from {len(args.pool)} file(s): medians of every run in them together; "
                 "(x) = ratio to the C baseline", impls)
    results, spreads = [], []
    for w in workloads:
        if w.name in pooled:
            samples, rounds = pooled[w.name]
            samples = {i: v for i, v in samples.items() if i in impls}
            rounds = [{i: v for i, v in r.items() if i in impls} for r in rounds]
            runs = max((len(v) for by_metric in samples.values() for v in by_metric.values()), default=0)
            tabulate(w, samples, rounds, impls, False, runs, results, spreads)
    if spreads:
        print_spreads(spreads)
    with open(args.out, "w") as f:
        json.dump({"pooled_from": args.pool, "sizes": sizes, "results": results}, f, indent=2)
    print(f"wrote {args.out}")


def main():
    ap = argparse.ArgumentParser(description=textwrap.fill(" ".join(__doc__.split("\n\n")[0].split()), 88),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="meson build directory (default: build)")
    ap.add_argument("--runs", type=int, default=5, help="runs per figure; medians are reported (default 5)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the suite, not speed")
    ap.add_argument("--out", help="JSON results (default: BUILD/bench-results.json)")
    ap.add_argument("--impls", help="comma-separated subset of " + ",".join(k for k, _ in IMPLS))
    ap.add_argument("--workloads", help="comma-separated subset of " + ",".join(w.name for w in WORKLOADS))
    ap.add_argument("--python", help="CPython executable for python_bench.py")
    ap.add_argument("--node", help="node executable for node_bench.js")
    ap.add_argument("--ks", help="kscript's ks for bench/ks_bench.ks (default: the build's kscript_prefix, else ks on PATH)")
    ap.add_argument("--cpus", help="run every program under taskset -c CPUS")
    ap.add_argument("--check-the-checks", action="store_true",
                    help="run each workload one unit short and require the count checks to catch it")
    ap.add_argument("--pool", nargs="+", metavar="JSON",
                    help="measure nothing: print the table of these earlier runs' figures together")
    args = ap.parse_args()
    workloads = WORKLOADS
    if args.workloads:
        names = args.workloads.split(",")
        unknown = [n for n in names if n not in {w.name for w in WORKLOADS}]
        if unknown:
            sys.exit(f"bench.py: unknown workload(s) {', '.join(unknown)}")
        workloads = [w for w in WORKLOADS if w.name in names]
    if args.pool:
        if not args.out:  # pooling needs no build; without one, the JSON goes here
            args.out = os.path.join(args.build if os.path.isdir(args.build) else ".", "bench-pooled.json")
        return report_pool(args, workloads)

    cmds, notes = commands(args)
    if args.cpus:
        taskset = shutil.which("taskset")
        if not taskset:
            sys.exit("bench.py: --cpus needs taskset (util-linux)")
        cmds = {k: [taskset, "-c", args.cpus] + v for k, v in cmds.items()}
    if not args.out:
        args.out = os.path.join(args.build, "bench-results.json")
    for n in notes:
        print(f"note: {n}")
    if args.check_the_checks:
        sys.exit(check_the_checks(args, cmds, workloads))

    sizes = QUICK if args.quick else FULL
    timeout = 120 if args.quick else 900
    impls = [k for k, _ in IMPLS if k in cmds]
    label = dict(IMPLS)
    load_before = os.getloadavg()
    started = time.time()

    print_header(f"{'quick run: ' if args.quick else ''}medians of {args.runs} run(s)"
                 f"{'; every program on CPUs ' + args.cpus if args.cpus else ''}; (x) = ratio to the C baseline",
                 impls)

    results, failures, spreads = [], [], []
    for w in workloads:
        here = [i for i in impls if i in w.impls]
        samples = {i: {m: [] for m, _ in w.metrics} for i in here}
        rounds = []  # per run, {impl: {metric: value}}: for the within-round ratios
        for _ in range(args.runs):
            rounds.append({})
            for impl in here:  # interleaved, so that a noisy moment hits every column
                try:
                    got = run_once(w, impl, cmds[impl], sizes, sizes, timeout)
                except CheckFailed as e:
                    failures.append(str(e))
                    print(f"FAILED: {e}", file=sys.stderr)
                    continue
                rounds[-1][impl] = got
                for m, v in got.items():
                    samples[impl][m].append(v)
        tabulate(w, samples, rounds, impls, args.quick, args.runs, results, spreads)

    if spreads and not args.quick:
        print_spreads(spreads)

    load_after = os.getloadavg()
    summary = {
        "quick": args.quick, "runs": args.runs, "sizes": sizes, "build": args.build, "cpus": args.cpus,
        "implementations": {i: {"name": label[i], "command": cmds[i]} for i in impls},
        "notes": notes, "failures": failures,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after,
                    "seconds": round(time.time() - started, 1)},
        "results": results,
    }
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, on {os.cpu_count()} CPUs; "
          f"{summary['machine']['seconds']} s; wrote {args.out}")
    if failures:
        print(f"{len(failures)} run(s) FAILED:")
        for f_ in failures:
            print(f"  {f_}")
        sys.exit(1)


if __name__ == "__main__":
    main()
