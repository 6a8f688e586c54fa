"""Usage and cost per tenant and pool from allocation and training-job rows, priced per resource type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workbench.compute.launcher import process_owner
from workbench.compute.usage import gpu_price, price_list, usage_report
from workbench.config import Settings
from workbench.security.tenants import create_tenant
from workbench.services import Services
from workbench.store.models import AllocationRecord, TrainJobRecord, TrainMetricRecord


@pytest.fixture
def services(tmp_path):
    svc = Services(Settings(home=tmp_path / "home", cpu_price_per_second=0.01, gpu_price_per_second=1.0,
                            gpu_prices={"H100": 3.0}))  # fmt: skip
    yield svc
    svc.close()


def _allocation(tenant_id, pool, status, *, gpu_type=None, count=1, held=None, duration=100.0):
    now = datetime.now(UTC)
    started = now - timedelta(seconds=held) if held is not None else None
    return AllocationRecord(
        id=f"alloc_{pool}_{status}_{count}", tenant_id=tenant_id, pool=pool, gpu_type=gpu_type, count=count,
        duration_s=duration, priority=0, status=status, dagster_run_id=None, owner=process_owner(), detail={},
        created_at=now, started_at=started, ended_at=now if status in ("released", "expired", "failed") else None,
    )  # fmt: skip


def _job(tenant_id, job_id, status, result, pool="cpu", gpu_type=None):
    return TrainJobRecord(
        id=job_id, tenant_id=tenant_id, algorithm="sft", status=status, result=result, dagster_run_id=None,
        request={"compute_requirements": {"gpu_type": gpu_type}, "resolved": {"pool": pool}},
        progress={"owner": process_owner()}, created_at=datetime.now(UTC), finished_at=None,
    )  # fmt: skip


def test_prices_per_gpu_type_fall_back_to_the_default(services):
    assert gpu_price(services.settings, "h100") == 3.0 and gpu_price(services.settings, "H100") == 3.0
    assert gpu_price(services.settings, "a100") == 1.0 and gpu_price(services.settings, None) == 1.0
    assert price_list(services.settings) == {"cpu_per_second": 0.01, "gpu_per_second": 1.0,
                                             "gpu_per_second_by_type": {"h100": 3.0}}  # fmt: skip


def test_usage_sums_allocations_and_training_jobs_per_tenant_and_pool(services):
    a, _ = create_tenant(services.control, "a")
    b, _ = create_tenant(services.control, "b")
    with services.control.session() as session:
        session.add_all([
            _allocation(a.id, "gpu-h100", "expired", gpu_type="h100", count=2, held=10),   # 20 GPU-s x 3.0
            _allocation(a.id, "gpu-h100", "queued", gpu_type="h100"),
            _allocation(a.id, "cpu", "released", count=4, held=5),                         # 20 CPU-s x 0.01
            _allocation(a.id, "cpu", "running", count=1, held=1000, duration=30),          # capped: 30 CPU-s
            _allocation(b.id, "cpu", "expired", count=1, held=7),
            _job(a.id, "job_done", "succeeded", {"cpu_seconds": 100.0, "gpu_seconds": 0.0, "cost": 99.0}),
            _job(a.id, "job_live", "running", {}, pool="gpu-a100", gpu_type="a100"),
            _job(a.id, "job_waiting", "queued", {}),
        ])  # fmt: skip
        session.flush()
        session.add_all([TrainMetricRecord(job_id="job_live", step=s, ts=datetime.now(UTC),
                                           metrics={"cpu_seconds": 2.0 * s, "gpu_seconds": 4.0 * s})
                         for s in (1, 2)])  # fmt: skip

    report = usage_report(services, a.id)
    rows = {r.pool: r for r in report.rows}
    assert set(rows) == {"cpu", "gpu-h100", "gpu-a100"} and {r.tenant_id for r in report.rows} == {a.id}
    h100, cpu, a100 = rows["gpu-h100"], rows["cpu"], rows["gpu-a100"]
    assert (h100.gpu_seconds, h100.cpu_seconds, h100.cost) == pytest.approx((20.0, 0.0, 60.0), rel=1e-3)
    assert (h100.queued, h100.running, h100.allocations) == (1, 0, 2)
    # 20 + 30 allocation CPU-seconds and the finished job's 100, priced now (not the job's own cost).
    assert cpu.cpu_seconds == pytest.approx(150.0, rel=1e-3) and cpu.cost == pytest.approx(1.5, rel=1e-3)
    assert (cpu.queued, cpu.running, cpu.allocations, cpu.train_jobs) == (1, 1, 2, 2)
    # The running job's last logged metrics: 4 CPU-s and 8 GPU-s of an a100 at the default GPU price.
    assert (a100.cpu_seconds, a100.gpu_seconds, a100.cost) == pytest.approx((4.0, 8.0, 8.04))
    assert a100.running == 1
    assert report.totals.cost == pytest.approx(h100.cost + cpu.cost + a100.cost)

    everyone = usage_report(services, None)
    assert {(r.tenant_id, r.pool) for r in everyone.rows} == {(a.id, "cpu"), (a.id, "gpu-h100"), (a.id, "gpu-a100"),
                                                              (b.id, "cpu")}  # fmt: skip
