"""No acknowledged event is lost when the server is killed with SIGKILL mid-load."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.integration


def test_acknowledged_events_survive_kill_9(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    server = LiveServer(home).start()
    tenant = server.tenant("durable")
    acknowledged: list[str] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tenant['api_key']}"}, timeout=30) as c:
            while not stop.is_set():
                batch = [{"event_id": str(uuid.uuid4()), "kind": "metadata", "run_id": f"w{worker}",
                          "payload": {"worker": worker, "text": f"Jane Roe {i}"}} for i in range(20)]
                try:
                    response = c.post("/events", json={"events": batch})
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    acknowledged.extend(r["event_id"] for r in response.json()["results"] if r["status"] == "accepted")

    workers = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    waited = threading.Event()
    for _ in range(1200):  # at most a minute
        if len(acknowledged) >= 400:
            break
        waited.wait(0.05)
    server.kill()
    stop.set()
    for w in workers:
        w.join()
    assert len(acknowledged) >= 400

    server = LiveServer(home).start()
    try:
        with server.client(tenant["api_key"]) as client:
            response = client.post("/events", json={"events": [{"event_id": eid, "kind": "metadata", "payload": {"x": 1}}
                                                              for eid in acknowledged[:5000]]})
            statuses = {r["status"] for r in response.json()["results"]}
        assert statuses == {"duplicate"}, "an acknowledged event was lost"
    finally:
        server.stop()
