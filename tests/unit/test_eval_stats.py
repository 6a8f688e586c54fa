import math

import pytest

from workbench.evals.stats import mcnemar_exact, paired_permutation, pass_at_k, wilson_interval


def test_wilson_known_values():
    # 8 of 10 at 95 %: textbook interval 0.4902 .. 0.9433
    ci = wilson_interval(8, 10)
    assert ci.estimate == 0.8
    assert math.isclose(ci.low, 0.4902, abs_tol=1e-3) and math.isclose(ci.high, 0.9433, abs_tol=1e-3)


def test_wilson_edges_stay_in_unit_interval():
    zero, full = wilson_interval(0, 20), wilson_interval(20, 20)
    assert zero.low == 0.0 and 0 < zero.high < 0.2
    assert full.high == 1.0 and 0.8 < full.low < 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_pass_at_k_unbiased_estimator():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 1, 5) == 1.0
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    with pytest.raises(ValueError, match="at least 3 attempts"):
        pass_at_k(2, 1, 3)


def test_mcnemar_exact():
    same = mcnemar_exact([True, False] * 5, [True, False] * 5)
    assert same.p_value == 1.0 and same.difference == 0
    better = mcnemar_exact([False] * 12, [True] * 10 + [False] * 2)
    assert better.b_only == 10 and better.a_only == 0
    assert better.p_value == pytest.approx(2 / 2**10)


def test_paired_permutation_detects_a_consistent_shift():
    a = [0.1 * i for i in range(12)]
    shifted = paired_permutation(a, [x + 0.5 for x in a])
    assert shifted.p_value == pytest.approx(2 / 2**12)
    noise = paired_permutation(a, [x + (0.01 if i % 2 else -0.01) for i, x in enumerate(a)])
    assert noise.p_value > 0.5
