"""Statistics for eval reports: Wilson intervals, unbiased pass@k, paired significance tests."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float = 0.95


def _z(confidence: float) -> float:
    # Inverse normal CDF via bisection on erf: precise enough and dependency-free.
    target = 0.5 + confidence / 2
    lo, hi = 0.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a success rate; well-behaved at 0 %, 100 % and small n."""
    if trials <= 0:
        raise ValueError("trials must be positive")
    if not 0 <= successes <= trials:
        raise ValueError("successes must be between 0 and trials")
    z = _z(confidence)
    p = successes / trials
    denom = 1 + z * z / trials
    center = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, center - half)  # exact at the edges, no float dust
    high = 1.0 if successes == trials else min(1.0, center + half)
    return Interval(p, low, high, confidence)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or k < 1:
        raise ValueError("need 0 <= c <= n and k >= 1")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} attempts per task, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass(frozen=True)
class PairedComparison:
    """Outcome of comparing two systems on the same tasks."""

    n: int
    a_only: int
    b_only: int
    difference: float
    p_value: float
    test: str


def mcnemar_exact(a: list[bool], b: list[bool]) -> PairedComparison:
    """Exact McNemar test for paired pass/fail outcomes (two-sided binomial on discordant pairs)."""
    if len(a) != len(b) or not a:
        raise ValueError("paired outcomes need the same, non-zero number of tasks")
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    b_only = sum(1 for x, y in zip(a, b) if y and not x)
    discordant = a_only + b_only
    if discordant == 0:
        p = 1.0
    else:
        tail = sum(math.comb(discordant, i) for i in range(0, min(a_only, b_only) + 1)) / 2**discordant
        p = min(1.0, 2 * tail)
    return PairedComparison(len(a), a_only, b_only, (sum(b) - sum(a)) / len(a), p, "mcnemar_exact")


def paired_permutation(a: list[float], b: list[float], *, rounds: int = 10_000, seed: int = 0) -> PairedComparison:
    """Two-sided paired sign-flip permutation test on score differences (exact when n ≤ 16)."""
    import itertools
    import random

    if len(a) != len(b) or not a:
        raise ValueError("paired scores need the same, non-zero number of tasks")
    diffs = [y - x for x, y in zip(a, b)]
    observed = abs(sum(diffs))
    n = len(diffs)
    if n <= 16:
        signs = itertools.product((1, -1), repeat=n)
        total = 2**n
        extreme = sum(1 for s in signs if abs(sum(d * e for d, e in zip(diffs, s))) >= observed - 1e-12)
    else:
        rng = random.Random(seed)
        total = rounds
        extreme = sum(
            1 for _ in range(rounds) if abs(sum(d if rng.random() < 0.5 else -d for d in diffs)) >= observed - 1e-12
        )
    return PairedComparison(
        n, sum(1 for d in diffs if d < 0), sum(1 for d in diffs if d > 0), sum(diffs) / n, extreme / total, "paired_permutation"
    )
