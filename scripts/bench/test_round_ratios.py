"""Checks bench.py's within-round ratios: each value is divided by the C value of its own
round, rounds where either side failed are left out, and fewer than three pairs give
no quartiles. Run by `meson test --suite bench`."""
import os
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from bench import round_ratio_quartiles  # noqa: E402


def rounds_of(c, plugin, metric="m"):
    """One round per pair; None means that program failed in that round."""
    out = []
    for cv, pv in zip(c, plugin):
        r = {}
        if cv is not None:
            r["c"] = {metric: cv}
        if pv is not None:
            r["plugin"] = {metric: pv}
        out.append(r)
    return out


class RoundRatios(unittest.TestCase):
    def test_ratios_pair_values_of_the_same_round(self):
        # The columns' medians (100 and 500) would say 5x; within rounds it is 0.5, 0.5, 5.
        rounds = rounds_of([1000, 100, 100], [500, 50, 500])
        q1, median, q3 = round_ratio_quartiles(rounds, "m")["plugin"]
        self.assertEqual((q1, median, q3), (0.5, 0.5, 5.0))

    def test_quartiles_are_ordered_and_bracket_the_median(self):
        rounds = rounds_of([100] * 5, [80, 90, 100, 110, 120])
        q1, median, q3 = round_ratio_quartiles(rounds, "m")["plugin"]
        self.assertAlmostEqual(median, 1.0)
        self.assertLess(q1, median)
        self.assertGreater(q3, median)

    def test_rounds_where_either_side_failed_are_left_out(self):
        rounds = rounds_of([100, None, 100, 100, 100], [50, 999, None, 50, 50])
        self.assertEqual(round_ratio_quartiles(rounds, "m")["plugin"], [0.5, 0.5, 0.5])

    def test_fewer_than_three_pairs_give_nothing(self):
        rounds = rounds_of([100, 100, None], [50, 50, 50])
        self.assertEqual(round_ratio_quartiles(rounds, "m"), {})

    def test_c_is_not_compared_with_itself(self):
        rounds = rounds_of([1, 2, 3], [1, 2, 3])
        self.assertEqual(set(round_ratio_quartiles(rounds, "m")), {"plugin"})


if __name__ == "__main__":
    unittest.main()
