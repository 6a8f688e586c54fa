"""The scaled stores against a real S3-compatible server (moto): the LanceDB lake and the artifact
store on s3:// URIs, from ingest through a dataset build and back, with nothing written locally."""

from __future__ import annotations

import json

import pytest
from pyarrow import fs as pafs

from workbench.client import EmbeddedClient
from workbench.config import Settings
from workbench.data.synthetic import synthetic_events
from workbench.services import Services
from workbench.store.artifacts import ArtifactStore
from workbench.store.s3 import S3Options

pytestmark = pytest.mark.integration


def _settings(tmp_path, s3_server, bucket: str) -> Settings:
    env = s3_server.env()
    return Settings(
        home=tmp_path / "home",
        lake_uri=f"s3://{bucket}/lake",
        artifacts_uri=f"s3://{bucket}/artifacts",
        s3_endpoint_url=env["WORKBENCH_S3_ENDPOINT_URL"],
        s3_region=env["WORKBENCH_S3_REGION"],
        s3_access_key_id=env["WORKBENCH_S3_ACCESS_KEY_ID"],
        s3_secret_access_key=env["WORKBENCH_S3_SECRET_ACCESS_KEY"],
    )


def test_ingest_dataset_and_maintenance_on_s3(tmp_path, s3_server, redactor):
    bucket = s3_server.new_bucket()
    settings = _settings(tmp_path, s3_server, bucket)
    events = synthetic_events(6, seed=11, tasks=3)
    events.append({"kind": "message", "run_id": "pii-s3", "step": 0,
                   "payload": {"role": "user", "content": "write to dana.fox@example.com"}})

    services = Services(settings, redactor=redactor)
    try:
        client = EmbeddedClient(services, "scaled")
        results = client.events.log(events)
        assert {r.status.value for r in results} == {"accepted"}
        dataset = client.datasets.create("sft-on-s3", "sft", {"success": True})
        frame = dataset.to_pandas()
        assert len(frame) == dataset.info.rows > 0
        report = services.maintain()
        assert report["rows"] == len(events) and "event_id" in report["indexes_created"]
    finally:
        services.close()

    keys = s3_server.keys(bucket)
    assert any(k.startswith("lake/events.lance/") for k in keys)
    assert any(k.startswith("artifacts/") and k.endswith("/data.parquet") for k in keys)
    home = settings.home
    assert not (home / "lake").exists() and not (home / "artifacts").exists()

    # A fresh process's view: everything acknowledged is in the bucket, redacted.
    reopened = Services(settings, redactor=redactor)
    try:
        client = EmbeddedClient(reopened, "scaled")
        assert reopened.lake.events.count_rows() == len(events)
        stored = reopened.lake.query_events("run_id = 'pii-s3'", ["payload"]).column("payload").to_pylist()
        assert "dana.fox@example.com" not in stored[0] and json.loads(stored[0])["content"]
        again = client.datasets.get(dataset.id).to_pandas()
        assert again.equals(frame)
    finally:
        reopened.close()


def test_artifact_store_round_trip_on_s3(s3_server):
    bucket = s3_server.new_bucket()
    env = s3_server.env()
    options = S3Options(endpoint_url=env["WORKBENCH_S3_ENDPOINT_URL"], access_key_id=env["WORKBENCH_S3_ACCESS_KEY_ID"],
                        secret_access_key=env["WORKBENCH_S3_SECRET_ACCESS_KEY"])
    store = ArtifactStore(f"s3://{bucket}/root/", options)
    payload = bytes(range(256)) * 5000  # 1.28 MB: several read chunks
    uri = store.write_bytes("exports/t1/data.bin", payload)
    assert uri == f"s3://{bucket}/root/exports/t1/data.bin"
    assert store.exists("exports/t1/data.bin") and not store.exists("exports/t1/other.bin")
    assert store.read_bytes("exports/t1/data.bin") == payload
    assert b"".join(store.iter_chunks("exports/t1/data.bin", chunk_size=1 << 18)) == payload
    store.write_bytes("exports/t2/keep.txt", b"kept")
    store.delete_prefix("exports/t1")
    files = [key for key in s3_server.keys(bucket) if not key.endswith("/")]  # pyarrow leaves directory markers
    assert files == ["root/exports/t2/keep.txt"]


def test_s3_options_translate_for_both_clients():
    minio = S3Options(endpoint_url="http://minio:9000", access_key_id="k", secret_access_key="s")
    assert minio.lance_storage_options() == {
        "endpoint": "http://minio:9000", "allow_http": "true", "region": "us-east-1",
        "aws_access_key_id": "k", "aws_secret_access_key": "s",
    }
    expected = pafs.S3FileSystem(access_key="k", secret_key="s", region="us-east-1", scheme="http",
                                 endpoint_override="minio:9000")
    assert minio.filesystem().equals(expected)
    # Plain AWS: nothing set, so both clients use the AWS chain (env, config files, IAM role).
    assert S3Options().lance_storage_options() == {}
    assert S3Options(region="eu-west-1").lance_storage_options() == {"region": "eu-west-1"}
    with pytest.raises(ValueError, match="http"):
        S3Options(endpoint_url="minio:9000").filesystem()
