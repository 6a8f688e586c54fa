"""The scaled deployment on a real PostgreSQL: the control-plane migrations, the API over a socket
with its control plane in Postgres and its lake and artifacts in S3 (moto), and the Dagster
instance of infra/dagster/dagster.yaml on dagster-postgres, whose pools hold across runs."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import LiveServer
from workbench.data.synthetic import synthetic_events
from workbench.store.control import ControlPlane

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_control_plane_migrates_on_postgres(postgres_server):
    url = postgres_server.url(postgres_server.new_database())
    control = ControlPlane(url)
    try:
        assert control.engine.dialect.name == "postgresql"
        control.upgrade()
        control.upgrade()  # idempotent, as on every open
        tables = set(sa.inspect(control.engine).get_table_names())
        assert {"tenants", "api_keys", "audit_log", "datasets", "alembic_version"} <= tables
        with control.engine.connect() as conn:
            assert len(conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()) == 1
    finally:
        control.dispose()


def test_api_on_postgres_and_s3(tmp_path, postgres_server, s3_server):
    database = postgres_server.new_database()
    bucket = s3_server.new_bucket()
    home = tmp_path / "home"
    home.mkdir()
    server = LiveServer(home, extra_env={
        "WORKBENCH_DATABASE_URL": postgres_server.url(database),
        "WORKBENCH_LAKE_URI": f"s3://{bucket}/lake",
        "WORKBENCH_ARTIFACTS_URI": f"s3://{bucket}/artifacts",
        **s3_server.env(),
    }).start()
    try:
        tenant = server.tenant(f"pg-{uuid.uuid4().hex[:6]}")
        viewer_key = server.key(tenant["tenant_id"], "viewer")
        with server.client(tenant["api_key"]) as admin, server.client(viewer_key) as viewer:
            events = synthetic_events(4, seed=5, tasks=2)
            assert admin.post("/events", json={"events": events}).json()["accepted"] == len(events)
            created = admin.post("/datasets/create", json={"name": "pg-sft", "kind": "sft", "filters": {"success": True}})
            assert created.status_code == 201, created.text
            dataset = admin.get(f"/datasets/{created.json()['id']}").json()
            assert dataset["rows"] == created.json()["rows"] > 0
            assert viewer.post("/events", json={"events": events[:1]}).status_code == 403
    finally:
        server.stop()

    engine = sa.create_engine(postgres_server.url(database))
    try:
        with engine.connect() as conn:
            datasets = conn.execute(sa.text("SELECT uri FROM datasets")).scalars().all()
            audit = conn.execute(sa.text("SELECT action, outcome FROM audit_log")).all()
    finally:
        engine.dispose()
    assert len(datasets) == 1 and datasets[0].startswith(f"s3://{bucket}/artifacts/")
    audit = set(audit)
    assert {("POST /events", "ok"), ("POST /datasets/create", "ok"), ("POST /events", "forbidden")} <= audit, audit
    assert any(key.startswith("lake/events.lance/") for key in s3_server.keys(bucket))


@pytest.fixture
def scaled_dagster_home(tmp_path, monkeypatch, postgres_server, s3_server):
    """A workbench home whose Dagster instance is infra/dagster/dagster.yaml, on Postgres and S3."""
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "infra" / "dagster" / "dagster.yaml", home / "dagster" / "dagster.yaml")
    s3 = s3_server.env()
    for name, value in {
        "DAGSTER_POSTGRES_HOST": "127.0.0.1", "DAGSTER_POSTGRES_PORT": str(postgres_server.port),
        "DAGSTER_POSTGRES_USER": postgres_server.user, "DAGSTER_POSTGRES_PASSWORD": "",
        "DAGSTER_POSTGRES_DB": postgres_server.new_database(),
        "WORKBENCH_S3_BUCKET": s3_server.new_bucket(),
        "AWS_ACCESS_KEY_ID": s3["WORKBENCH_S3_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": s3["WORKBENCH_S3_SECRET_ACCESS_KEY"],
        **s3,
    }.items():
        monkeypatch.setenv(name, value)
    return home


def test_dagster_instance_config_on_postgres(scaled_dagster_home):
    from dagster import DagsterInstance
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_docker import DockerRunLauncher
    from dagster_postgres import PostgresEventLogStorage

    instance = DagsterInstance.from_config(str(scaled_dagster_home / "dagster"))
    try:
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.run_launcher, DockerRunLauncher)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert isinstance(instance.compute_log_manager, S3ComputeLogManager)
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert not instance.telemetry_enabled
    finally:
        instance.dispose()


def test_pools_hold_across_runs_on_postgres(scaled_dagster_home):
    import dagster as dg

    from workbench.compute import open_instance, pool_limits, set_pool_limit
    from workbench.config import Settings

    settings = Settings(home=scaled_dagster_home)
    set_pool_limit(settings, "cpu", 1)
    set_pool_limit(settings, "gpu-a100", 2)
    limits = pool_limits(settings)
    assert limits["cpu"]["limit"] == 1 and limits["gpu-a100"]["limit"] == 2

    spans: list[tuple[float, float]] = []

    @dg.asset(pool="cpu")
    def cpu_step() -> None:
        start = time.monotonic()
        time.sleep(0.8)
        spans.append((start, time.monotonic()))

    def run() -> None:
        with open_instance(settings) as instance:
            assert dg.materialize([cpu_step], instance=instance).success

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(spans) == 2
    (first_start, first_end), (second_start, _) = sorted(spans)
    assert second_start >= first_end  # one slot: the second run's step waited for the first
    assert pool_limits(settings)["cpu"]["running"] == 0
