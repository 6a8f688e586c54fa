"""The Compute Factory over real HTTP: allocations queued by Dagster pools (the pool limit holds under
concurrent submissions, release hands the slot on, priority picks who is next), usage and cost,
scaling, node samples and preemption notices, validation, roles and tenant isolation."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import LiveServer
from workbench.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.dagster]


@pytest.fixture(scope="module")
def tenant(live_server):
    return live_server.tenant(f"compute-{uuid.uuid4().hex[:6]}")


def _wait(client, allocation_ids: list[str], done, timeout: float = 90.0) -> dict[str, dict]:
    """Poll the allocations until ``done(by_id)``; returns them by id."""
    deadline = time.monotonic() + timeout
    while True:
        by_id = {i: client.get(f"/compute/allocations/{i}").json() for i in allocation_ids}
        if done(by_id) or time.monotonic() > deadline:
            return by_id
        time.sleep(0.3)


def _statuses(by_id: dict[str, dict]) -> list[str]:
    return sorted(a["status"] for a in by_id.values())


def _wait_pool(client, pool: str, running: int, waiting: int, timeout: float = 60.0) -> dict:
    """Poll ``GET /compute/pools`` until ``pool`` has that many steps running and waiting; returns its entry."""
    deadline = time.monotonic() + timeout
    while True:
        info = client.get("/compute/pools").json().get(pool, {})
        if (info.get("running"), info.get("waiting")) == (running, waiting) or time.monotonic() > deadline:
            return info
        time.sleep(0.3)


def test_pool_limit_holds_under_concurrent_allocations_and_release_starts_the_next(live_server, tenant):
    pool = f"gpu-t{uuid.uuid4().hex[:6]}"
    with live_server.client(tenant["api_key"]) as client:
        scaled = client.post("/compute/scale", json={"pool": pool, "size": 1})
        assert scaled.status_code == 200, scaled.text
        assert scaled.json()["pools"][pool]["limit"] == 1 and scaled.json()["scaler"] == "dagster"
        body = {"gpu_type": pool.removeprefix("gpu-"), "count": 2, "duration": 300, "priority": 0}
        with ThreadPoolExecutor(3) as executor:
            responses = list(executor.map(lambda _: client.post("/compute/allocate", json=body), range(3)))
        assert [r.status_code for r in responses] == [201] * 3, [r.text for r in responses]
        first = [r.json() for r in responses]
        assert {a["pool"] for a in first} == {pool} and all(a["dagster_run_id"] for a in first)
        ids = [a["id"] for a in first]

        by_id = _wait(client, ids, lambda b: "running" in _statuses(b))
        assert _statuses(by_id) == ["queued", "queued", "running"]
        # Dagster holds the other two back: one step runs, two wait for the pool's single slot.
        assert _wait_pool(client, pool, running=1, waiting=2) == {"limit": 1, "running": 1, "waiting": 2}
        time.sleep(2)
        by_id = _wait(client, ids, lambda b: True)
        assert _statuses(by_id) == ["queued", "queued", "running"]
        listed = client.get("/compute/allocations", params={"pool": pool}).json()
        assert sorted(a["id"] for a in listed) == sorted(ids)

        [holder] = [i for i, a in by_id.items() if a["status"] == "running"]
        released = client.post(f"/compute/allocations/{holder}/release")
        assert released.status_code == 200 and released.json()["status"] == "released"
        assert released.json()["ended_at"] and released.json()["held_seconds"] > 0
        by_id = _wait(client, ids, lambda b: "running" in _statuses(b))
        assert _statuses(by_id) == ["queued", "released", "running"]

        for allocation_id, allocation in by_id.items():
            if allocation["status"] != "released":
                assert client.post(f"/compute/allocations/{allocation_id}/release").status_code == 200
        assert client.post(f"/compute/allocations/{holder}/release").status_code == 409
        by_id = _wait(client, ids, lambda b: True)
        assert _statuses(by_id) == ["released"] * 3
        assert _wait_pool(client, pool, running=0, waiting=0)["running"] == 0

    # The Dagster runs carry the pool's priority and, once granted, the max-runtime tag.
    from workbench.compute import open_instance

    with open_instance(Settings(home=live_server.home)) as instance:
        run = instance.get_run_by_id(by_id[holder]["dagster_run_id"])
        assert run.tags["dagster/priority"] == "0" and run.tags["workbench/pool"] == pool
        assert int(run.tags["dagster/max_runtime"]) >= 300
        assert run.job_name == "compute_allocation" and run.is_success


def test_higher_priority_gets_the_freed_slot_first(live_server, tenant):
    pool = f"prio-{uuid.uuid4().hex[:6]}"
    with live_server.client(tenant["api_key"]) as client:
        assert client.post("/compute/scale", json={"pool": pool, "size": 1}).status_code == 200
        holder = client.post("/compute/allocate", json={"pool": pool, "duration": 300}).json()["id"]
        assert _wait(client, [holder], lambda b: b[holder]["status"] == "running")[holder]["status"] == "running"
        low = client.post("/compute/allocate", json={"pool": pool, "duration": 300, "priority": -5}).json()["id"]
        high = client.post("/compute/allocate", json={"pool": pool, "duration": 300, "priority": 50}).json()["id"]
        assert _wait_pool(client, pool, running=1, waiting=2)["waiting"] == 2  # both wait for the slot
        client.post(f"/compute/allocations/{holder}/release")
        by_id = _wait(client, [low, high], lambda b: "running" in _statuses(b))
        assert by_id[high]["status"] == "running" and by_id[low]["status"] == "queued"
        for allocation_id in (low, high):
            client.post(f"/compute/allocations/{allocation_id}/release")


def test_allocations_expire_after_their_duration_and_usage_bills_them(live_server):
    tenant = live_server.tenant(f"usage-{uuid.uuid4().hex[:6]}")
    pool = f"exp-{uuid.uuid4().hex[:6]}"
    with live_server.client(tenant["api_key"]) as client:
        gpu = client.post("/compute/allocate", json={"pool": f"gpu-{pool}", "count": 2, "duration": 1}).json()
        cpu = client.post("/compute/allocate", json={"pool": pool, "count": 4, "duration": 1, "priority": 3}).json()
        assert gpu["gpu_type"] == pool and gpu["resource"] == "gpu" and cpu["resource"] == "cpu"
        ids = [gpu["id"], cpu["id"]]
        by_id = _wait(client, ids, lambda b: _statuses(b) == ["expired", "expired"])
        assert _statuses(by_id) == ["expired", "expired"]
        assert all(a["started_at"] and a["ended_at"] and 0 < a["held_seconds"] <= 1 for a in by_id.values())

        report = client.get("/compute/usage").json()
        prices = client.get("/compute/prices").json()
        rows = {r["pool"]: r for r in report["rows"]}
        assert {r["tenant_id"] for r in report["rows"]} == {tenant["tenant_id"]}
        assert set(rows) == {pool, f"gpu-{pool}"}
        g, c = rows[f"gpu-{pool}"], rows[pool]
        assert g["gpu_seconds"] == pytest.approx(2 * by_id[gpu["id"]]["held_seconds"]) and g["cpu_seconds"] == 0
        assert c["cpu_seconds"] == pytest.approx(4 * by_id[cpu["id"]]["held_seconds"]) and c["gpu_seconds"] == 0
        assert g["cost"] == pytest.approx(g["gpu_seconds"] * prices["gpu_per_second"])
        assert c["cost"] == pytest.approx(c["cpu_seconds"] * prices["cpu_per_second"])
        assert (c["queued"], c["running"], c["allocations"]) == (0, 0, 1)
        assert report["totals"]["cost"] == pytest.approx(g["cost"] + c["cost"])
        assert report["prices"] == prices


def test_allocate_picks_the_pool_and_names_bad_fields(live_server, tenant):
    with live_server.client(tenant["api_key"]) as client:
        made = []
        for body, pool in (({"gpu_type": None, "duration": 60}, "cpu"), ({"gpu_type": "cpu", "duration": 60}, "cpu"),
                           ({"gpu_type": "A100", "count": 8, "duration": 60}, "gpu-a100"),
                           ({"gpu_type": "h100", "pool": "batch-h100", "duration": 60}, "batch-h100")):
            response = client.post("/compute/allocate", json=body)
            assert response.status_code == 201, response.text
            assert response.json()["pool"] == pool and response.json()["status"] in ("queued", "running")
            made.append(response.json())
        assert made[2]["gpu_type"] == "a100" and made[2]["count"] == 8 and made[3]["gpu_type"] == "h100"
        for allocation in made:  # give the slots back at once (the cpu pool is shared with training jobs)
            assert client.post(f"/compute/allocations/{allocation['id']}/release").json()["status"] == "released"

        for body, field in (({"count": 0}, "count"), ({"duration": 0}, "duration"), ({"duration": "soon"}, "duration"),
                            ({"priority": 5000}, "priority"), ({"gpu_type": "a 100"}, "gpu_type"),
                            ({"pool": "Not A Pool"}, "pool"), ({"gpu_type": "a100", "pool": "cpu"}, "pool"),
                            ({"gpus": 2}, "gpus")):
            response = client.post("/compute/allocate", json=body)
            assert response.status_code == 422 and response.json()["field"] == field, (body, response.text)
        assert client.get("/compute/allocations", params={"status": "sleeping"}).json()["field"] == "status"
        for body, field in (({"pool": "cpu", "size": -1}, "size"), ({"pool": "A B", "size": 1}, "pool"),
                            ({"size": 1}, "pool")):
            response = client.post("/compute/scale", json=body)
            assert response.status_code == 422 and response.json()["field"] == field, (body, response.text)


def test_roles_tenants_and_audit(live_server, tenant):
    other = live_server.tenant(f"compute-other-{uuid.uuid4().hex[:6]}")
    viewer_key = live_server.key(tenant["tenant_id"], "viewer")
    researcher_key = live_server.key(tenant["tenant_id"], "researcher")
    pool = f"iso-{uuid.uuid4().hex[:6]}"
    with live_server.client(tenant["api_key"]) as admin:
        allocation = admin.post("/compute/allocate", json={"pool": pool, "duration": 120}).json()
    with live_server.client(viewer_key) as viewer:
        assert viewer.post("/compute/scale", json={"pool": pool, "size": 2}).status_code == 403
        assert viewer.post("/compute/allocate", json={"pool": pool}).status_code == 403
        assert viewer.post(f"/compute/allocations/{allocation['id']}/release").status_code == 403
        assert viewer.post("/compute/nodes/sample").status_code == 403
        assert viewer.get(f"/compute/allocations/{allocation['id']}").status_code == 200
        assert viewer.get("/compute/usage").status_code == 200 and viewer.get("/compute/nodes").status_code == 200
    with live_server.client(researcher_key) as researcher:
        assert researcher.post("/compute/scale", json={"pool": pool, "size": 2}).status_code == 403
        assert researcher.get("/compute/usage", params={"tenant": "all"}).status_code == 403
        assert researcher.get("/compute/usage", params={"tenant": other["tenant_id"]}).status_code == 403
        assert researcher.get("/compute/usage", params={"tenant": tenant["tenant_id"]}).status_code == 200
    with live_server.client(other["api_key"]) as stranger:
        assert stranger.get(f"/compute/allocations/{allocation['id']}").status_code == 404
        assert stranger.post(f"/compute/allocations/{allocation['id']}/release").status_code == 404
        assert allocation["id"] not in {a["id"] for a in stranger.get("/compute/allocations").json()}
        assert {r["tenant_id"] for r in stranger.get("/compute/usage").json()["rows"]} <= {other["tenant_id"]}
        everyone = stranger.get("/compute/usage", params={"tenant": "all"}).json()  # an admin sees every tenant
        assert tenant["tenant_id"] in {r["tenant_id"] for r in everyone["rows"]}
        assert stranger.get("/compute/usage", params={"tenant": "ten_nobody"}).status_code == 404
    with live_server.client(tenant["api_key"]) as admin:
        assert admin.post(f"/compute/allocations/{allocation['id']}/release").status_code == 200
        records = admin.get("/audit").json()
    actions = {(r["action"], r["target"]) for r in records}
    assert ("POST /compute/allocate", f"allocation:{allocation['id']}") in actions
    assert ("POST /compute/allocations/{allocation_id}/release", f"allocation:{allocation['id']}") in actions
    assert any(r["action"] == "POST /compute/scale" and r["outcome"] == "forbidden" for r in records)


def test_node_samples_and_preemption_notice_file(live_server, tenant):
    notice = live_server.home / "preemption-notice"
    with live_server.client(tenant["api_key"]) as admin:
        sample = admin.post("/compute/nodes/sample")
        assert sample.status_code == 201, sample.text
        taken = sample.json()
        assert 0 <= taken["cpu_percent"] <= 100 and taken["memory_total_mb"] > 0 and taken["cpu_count"] >= 1
        assert taken["preempted"] is False
        try:
            import pynvml  # noqa: F401
        except ImportError:
            assert taken["gpu_utilization"] is None and taken["gpus"] is None
        notice.write_text("spot instance-action: terminate in 120 s")
        try:
            noticed = admin.post("/compute/nodes/sample").json()
            latest = {n["node"]: n for n in admin.get("/compute/nodes").json()}
        finally:
            notice.unlink()
        assert noticed["preempted"] is True and noticed["preemption"]["source"] == "notice_file"
        assert "terminate" in noticed["preemption"]["detail"]
        assert latest[taken["node"]]["preempted"] is True
        assert admin.get("/audit").json()[0]["action"] == "POST /compute/nodes/sample"


def test_scale_with_the_k8s_scaler_is_a_clear_501(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    server = LiveServer(home, {"WORKBENCH_COMPUTE_SCALER": "k8s", "WORKBENCH_NODE_SAMPLE_INTERVAL_S": "0.5"}).start()
    try:
        tenant = server.tenant("k8s")
        with server.client(tenant["api_key"]) as admin:
            response = admin.post("/compute/scale", json={"pool": "cpu", "size": 2})
            assert response.status_code == 501 and "dagster-k8s" in response.json()["detail"]
            assert response.json()["field"] == "compute_scaler"
            assert admin.get("/compute/pools").json()["cpu"]["limit"] == 1  # nothing changed
            deadline = time.monotonic() + 30
            while not admin.get("/compute/nodes").json() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert admin.get("/compute/nodes").json(), "the sampler records samples on its own"
    finally:
        server.stop()  # SIGTERM: the sampler records it as a preemption notice before the server ends
    from workbench.compute import latest_samples
    from workbench.services import Services

    services = Services(Settings(home=home))
    try:
        [last] = latest_samples(services)
    finally:
        services.close()
    assert last.preempted and last.preemption["source"] == "signal" and last.preemption["detail"] == "SIGTERM"


def test_allocations_of_a_killed_server_fail_and_free_their_slots(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"WORKBENCH_NODE_SAMPLE_INTERVAL_S": "0"}
    server = LiveServer(home, env).start()
    try:
        tenant = server.tenant("killed")
        with server.client(tenant["api_key"]) as client:
            ids = [client.post("/compute/allocate", json={"pool": "held", "duration": 600}).json()["id"] for _ in range(2)]
            by_id = _wait(client, ids, lambda b: _statuses(b) == ["queued", "running"])
            assert _statuses(by_id) == ["queued", "running"]
            assert client.get("/compute/nodes").json() == []  # the sampler is off
        server.kill()
    finally:
        server.stop()
    server = LiveServer(home, env).start()
    try:
        with server.client(tenant["api_key"]) as client:
            after = {a["id"]: a for a in client.get("/compute/allocations").json()}
            assert {a["status"] for a in after.values()} == {"failed"}
            assert all(a["detail"]["interrupted"] and "interrupted" in a["detail"]["error"] for a in after.values())
            assert client.get("/compute/pools").json()["held"] == {"limit": 1, "running": 0, "waiting": 0}
            again = client.post("/compute/allocate", json={"pool": "held", "duration": 600}).json()["id"]
            assert _wait(client, [again], lambda b: b[again]["status"] == "running")[again]["status"] == "running"
            client.post(f"/compute/allocations/{again}/release")
    finally:
        server.stop()
