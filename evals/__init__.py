"""Evals: suites as data (suites/*.yaml), one metrics registry, cached predictions, paired comparisons,
a ship gate and a self-contained HTML report."""
