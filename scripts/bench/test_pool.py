"""Checks bench.py --pool: the samples of several runs are put together per workload and
implementation, rounds still pair within their own file, files that cannot be pooled
are refused by name. Run by `meson test --suite bench`."""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench  # noqa: E402

SIZES = {"bulk_total": 1 << 30}


def run_file(c, plugin, rounds=True, failures=(), sizes=SIZES, quick=False, workload="bulk",
             metric="mib_per_s"):
    """The JSON of one bench.py run of one workload, with these samples."""
    entry = {"workload": workload, "metric": metric, "samples": {"c": c, "plugin": plugin}}
    if rounds:
        entry["rounds"] = [{"c": cv, "plugin": pv} for cv, pv in zip(c, plugin)]
    return {"quick": quick, "sizes": sizes, "failures": list(failures), "results": [entry]}


class Pool(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, data):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            json.dump(data, f)
        return path

    def pooled_table(self, *paths):
        """Runs bench.py --pool; returns (what it printed, the JSON it wrote)."""
        out = os.path.join(self.dir.name, "pooled.json")
        argv = sys.argv
        sys.argv = ["bench.py", "--pool", *paths, "--out", out]
        try:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                bench.main()
        finally:
            sys.argv = argv
        with open(out) as f:
            return printed.getvalue(), json.load(f)

    def test_samples_of_all_files_give_one_median(self):
        # Each file alone: plugin 0.95x and 3x C. Together: medians 100 and 95.
        a = self.write("a.json", run_file([100, 100, 100], [95, 95, 95]))
        b = self.write("b.json", run_file([300, 300], [900, 900]))
        _, data = self.pooled_table(a, b)
        bulk = data["results"][0]
        self.assertEqual(bulk["figures"], {"c": 100.0, "plugin": 95.0})
        self.assertEqual(bulk["ratio_to_c"]["plugin"], 0.95)
        self.assertEqual(bulk["runs"], 5)
        self.assertTrue(bulk["target_met"])

    def test_rounds_pair_within_their_own_file(self):
        # Pairing across files would mix 100 with 600; within files the ratios are 0.5 and 2.
        a = self.write("a.json", run_file([100, 100, 100], [50, 50, 50]))
        b = self.write("b.json", run_file([300, 300, 300], [600, 600, 600]))
        printed, data = self.pooled_table(a, b)
        q1, median, q3 = data["results"][0]["round_ratio_quartiles"]["plugin"]
        self.assertEqual((q1, q3), (0.5, 2.0))
        self.assertIn("spread:", printed)

    def test_files_without_rounds_pair_by_position_unless_a_run_failed(self):
        clean = self.write("clean.json", run_file([100, 100, 100], [50, 50, 50], rounds=False))
        failed = self.write("failed.json", run_file([100, 100, 100], [900, 900, 900], rounds=False,
                                                    failures=["bulk on plugin: exit status 1"]))
        _, data = self.pooled_table(clean, failed)
        bulk = data["results"][0]
        self.assertEqual(bulk["round_ratio_quartiles"]["plugin"], [0.5, 0.5, 0.5])
        self.assertEqual(len(bulk["samples"]["plugin"]), 6)  # its samples still count

    def test_a_derived_row_is_derived_again_not_pooled_twice(self):
        def idle(c, plugin):
            data = run_file(c, plugin, workload="idle", metric="heap_bytes_per_conn")
            data["results"].append({"workload": "idle", "metric": "plugin_net_heap_bytes_per_conn",
                                    "samples": {"plugin": [99999.0]}})
            return data
        a = self.write("a.json", idle([1.0, 1.0, 1.0], [701.0, 701.0, 701.0]))
        b = self.write("b.json", idle([1.0, 1.0, 1.0], [801.0, 801.0, 801.0]))
        _, data = self.pooled_table(a, b)
        net = [r for r in data["results"] if r["metric"] == "plugin_net_heap_bytes_per_conn"][0]
        self.assertEqual(net["figures"], {"plugin": 750.0})
        self.assertTrue(net["target_met"])

    def test_files_that_cannot_be_pooled_are_refused_by_name(self):
        full = self.write("full.json", run_file([1], [1]))
        cases = {
            "quick.json": (run_file([1], [1], quick=True), "a --quick run"),
            "other.json": (run_file([1], [1], sizes={"bulk_total": 1}), "other sizes"),
            "broken.json": ("{not json", "cannot read it"),
            "other-tool.json": ({"figures": [1, 2]}, "not bench.py's JSON"),
        }
        for name, (data, why) in cases.items():
            path = os.path.join(self.dir.name, name)
            with open(path, "w") as f:
                f.write(data if isinstance(data, str) else json.dumps(data))
            with self.assertRaises(SystemExit) as caught, contextlib.redirect_stdout(io.StringIO()):
                self.pooled_table(full, path)
            self.assertIn(name, str(caught.exception))
            self.assertIn(why, str(caught.exception))


if __name__ == "__main__":
    unittest.main()
