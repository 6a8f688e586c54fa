"""Allocation requests: which pool and GPU type they resolve to, the fields they reject, held seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from workbench.compute.allocations import AllocationRequest, held_seconds


@pytest.mark.parametrize(
    ("body", "pool", "gpu_type"),
    [
        ({}, "cpu", None),
        ({"gpu_type": None}, "cpu", None),
        ({"gpu_type": "CPU"}, "cpu", None),
        ({"gpu_type": "A100"}, "gpu-a100", "a100"),
        ({"gpu_type": "h100", "pool": "train-h100"}, "train-h100", "h100"),
        ({"pool": "gpu-l4"}, "gpu-l4", "l4"),
        ({"pool": "batch"}, "batch", None),
    ],
)
def test_pool_and_gpu_type(body, pool, gpu_type):
    request = AllocationRequest.model_validate(body)
    assert (request.resolved_pool, request.resolved_gpu_type) == (pool, gpu_type)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"count": 0}, "count"),
        ({"duration": -1}, "duration"),
        ({"duration": 31 * 86400}, "duration"),
        ({"priority": 1001}, "priority"),
        ({"gpu_type": "a 100"}, "gpu_type"),
        ({"pool": "GPU"}, "pool"),
        ({"gpu_type": "a100", "pool": "cpu"}, "pool"),
        ({"size": 3}, "size"),
    ],
)
def test_bad_fields_are_named(body, field):
    with pytest.raises(ValidationError) as raised:
        AllocationRequest.model_validate(body)
    assert raised.value.errors()[0]["loc"] == (field,)


def test_held_seconds_count_from_the_start_and_stop_at_the_duration():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert held_seconds(None, None, 60) == 0
    assert held_seconds(start, start + timedelta(seconds=12.5), 60) == 12.5
    assert held_seconds(start, start + timedelta(hours=1), 60) == 60
    assert held_seconds(start.replace(tzinfo=None), start + timedelta(seconds=3), 60) == 3  # SQLite's naive UTC
