"""The ingestor as a library: group commit, dedup, overload, version count, embedded/remote clients."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from workbench.client import EmbeddedClient, connect
from workbench.data.ingest import EventIngestor
from workbench.errors import OverloadedError
from workbench.store.lake import Lake

pytestmark = pytest.mark.integration


def test_concurrent_single_events_share_commits(services):
    ingestor = services.ingestor
    version_before = services.lake.events_version
    results = []

    def send(i: int) -> None:
        results.extend(ingestor.ingest("t1", [{"kind": "metadata", "run_id": f"r{i}", "payload": {"i": i}}]))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 64 and {r.status.value for r in results} == {"accepted"}
    assert services.lake.events.count_rows() == 64
    assert services.lake.events_version - version_before < 64  # grouped, not one version per event


def test_overload_is_an_error_to_retry(tmp_path, redactor):
    class SlowLake(Lake):
        def append_events(self, table):
            time.sleep(0.5)
            return super().append_events(table)

    ingestor = EventIngestor(SlowLake(str(tmp_path / "lake")), redactor, max_pending=10)
    ingestor.submit("t", [{"kind": "metadata", "payload": {"i": i}} for i in range(8)])
    with pytest.raises(OverloadedError) as err:
        ingestor.submit("t", [{"kind": "metadata", "payload": {"i": i}} for i in range(8)])
    assert err.value.retry_after >= 1
    ingestor.close()


def test_maintenance_compacts_and_indexes(services):
    client = EmbeddedClient(services, "maint")
    for i in range(5):
        client.events.log([{"kind": "metadata", "run_id": "m", "step": i, "payload": {"i": i}}])
    report = services.maintain()
    assert report["rows"] == 5 and report["fragments_after"] <= report["fragments_before"]
    assert "event_id" in report["indexes_created"]
    again = services.maintain()
    assert again["indexes_created"] == []
    duplicate = client.events.log([{"kind": "metadata", "payload": {}, "event_id": str(uuid.uuid4())}] * 2)
    assert [r.status.value for r in duplicate] == ["accepted", "duplicate"]


def test_remote_and_embedded_clients_share_a_face(live_server):
    tenant = live_server.tenant(f"client-{uuid.uuid4().hex[:6]}")
    remote = connect(live_server.url, api_key=tenant["api_key"])
    results = remote.events.log([
        {"kind": "environment_observation", "run_id": "c1", "step": 0, "payload": {"observation": "2+2?"}},
        {"kind": "agent_action", "run_id": "c1", "step": 1, "payload": {"answer": 4}},
    ])
    assert [r.status.value for r in results] == ["accepted", "accepted"]
    dataset = remote.datasets.create("remote-sft", "sft")
    frame = dataset.to_pandas()
    assert list(frame.iloc[0]["messages"][1].values())[1] == "4"
    assert remote.datasets.get(dataset.id).info.rows == 1
    remote.close()


def test_migrations_keep_data_across_reopen(settings, redactor):
    from workbench.services import Services

    first = Services(settings, redactor=redactor)
    tenant_id = EmbeddedClient(first, "keep").tenant_id
    first.close()
    second = Services(settings, redactor=redactor)  # upgrade() runs again: a no-op
    assert EmbeddedClient(second, "keep").tenant_id == tenant_id
    second.close()


def test_storage_failure_is_a_retryable_error_not_a_crash(tmp_path, redactor):
    class BrokenLake(Lake):
        def append_events(self, table):
            raise OSError("disk full")

    ingestor = EventIngestor(BrokenLake(str(tmp_path / "lake")), redactor)
    with pytest.raises(OverloadedError, match="retry"):
        ingestor.ingest("t", [{"kind": "metadata", "payload": {"x": 1}}])
    ingestor.close()
