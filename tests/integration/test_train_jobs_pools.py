"""The Dagster side of training jobs without a model: the Dagster home (dagster.yaml, default
pools, limits kept across restarts), pools enforced by the in-process executor (two concurrent
runs in one process, a pool of one slot: they never overlap, and a second pool runs beside them),
and the code location loading ``train_job``."""

from __future__ import annotations

import threading
import time

import dagster as dg
import pytest

from workbench.compute import ensure_dagster_home, open_instance, pool_limits, set_pool_limit
from workbench.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.dagster]


def test_dagster_home_has_sqlite_storage_telemetry_off_and_default_pools(tmp_path):
    settings = Settings(home=tmp_path / "home")
    home = ensure_dagster_home(settings)
    text = (home / "dagster.yaml").read_text()
    assert "telemetry:\n  enabled: false" in text and "sqlite" in text and "granularity: op" in text
    assert pool_limits(settings)["cpu"]["limit"] == 1
    set_pool_limit(settings, "cpu", 3)
    set_pool_limit(settings, "gpu-a100", 2)
    ensure_dagster_home(settings, {"cpu": 1})  # a restart does not reset limits someone changed
    assert {k: v["limit"] for k, v in pool_limits(settings).items()} == {"cpu": 3, "gpu-a100": 2}
    with open_instance(settings) as instance:
        assert instance.event_log_storage.supports_global_concurrency_limits


def _job(name: str, pool: str, spans: list, lock: threading.Lock) -> dg.JobDefinition:
    @dg.op(name=f"{name}_op", pool=pool)
    def work() -> None:
        start = time.monotonic()
        time.sleep(1.0)
        with lock:
            spans.append((name, start, time.monotonic()))

    @dg.job(name=name, executor_def=dg.in_process_executor)
    def job() -> None:
        work()

    return job


def test_in_process_runs_wait_for_their_pool(tmp_path):
    settings = Settings(home=tmp_path / "home")
    ensure_dagster_home(settings, {"cpu": 1, "other": 1})
    spans: list = []
    lock = threading.Lock()
    jobs = [_job("a", "cpu", spans, lock), _job("b", "cpu", spans, lock), _job("c", "other", spans, lock)]
    results = {}

    def run(job: dg.JobDefinition) -> None:
        with open_instance(settings) as instance:
            results[job.name] = job.execute_in_process(instance=instance, raise_on_error=False).success

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == {"a": True, "b": True, "c": True}
    by_name = {name: (start, end) for name, start, end in spans}
    (a0, a1), (b0, b1), (c0, c1) = by_name["a"], by_name["b"], by_name["c"]
    assert a1 <= b0 or b1 <= a0, "two steps of a one-slot pool ran at the same time"
    assert c0 < max(a1, b1) and min(a0, b0) < c1, "a step of another pool waited for the cpu pool"
    assert pool_limits(settings)["cpu"]["running"] == 0


def test_code_location_has_the_train_job():
    from assets.definitions import defs

    job = defs.get_job_def("train_job")
    [node] = job.nodes
    assert node.name == "train" and node.definition.pool == "cpu"
