"""Metric names: TRL's log entries plus the canonical names dashboards read.

Each report keeps TRL's own entries (``rewards/<fn>/mean``, ``objective/entropy``, ...) and adds,
where the algorithm has them: ``loss`` (PPO: the policy loss), ``kl`` (GRPO with ``beta > 0``,
PPO), ``reward_mean`` / ``reward_std`` (GRPO, RFT; PPO's mean score; the RM's mean predicted
reward), ``learning_rate`` and ``eval/<name>`` for every ``eval_<name>``. The tracker adds
``tokens_per_s``, ``cpu_seconds``, ``gpu_seconds`` and ``cost``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["CANONICAL_METRICS", "canonical_metrics", "is_number"]

# canonical name ← the first of these TRL keys present in a log
CANONICAL_METRICS: dict[str, tuple[str, ...]] = {
    "loss": ("loss", "loss/policy_avg"),
    "kl": ("kl", "objective/kl"),
    "reward_mean": ("reward", "objective/scores", "mean_reward"),
    "reward_std": ("reward_std",),
    "learning_rate": ("learning_rate", "lr"),
}


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def canonical_metrics(logs: Mapping[str, Any]) -> dict[str, Any]:
    """TRL's log entries plus the canonical names (see the module docstring)."""
    out: dict[str, Any] = {}
    for key, value in logs.items():
        if key.startswith("eval_"):
            out[f"eval/{key[5:]}"] = value
        else:
            out[key] = value
    for name, sources in CANONICAL_METRICS.items():
        if name in out:
            continue
        for source in sources:
            if source in logs:
                out[name] = logs[source]
                break
    return out
