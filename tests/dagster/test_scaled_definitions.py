"""The code location in the scaled environment: with s3:// lake and artifacts (a moto server) and
a Postgres control plane, ``assets.definitions`` loads in a fresh process (so the environment is
read at import, as a code server reads it) with the dagster-aws S3 resource, and its resources
initialize against those real services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.dagster

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import json

    import dagster as dg

    from assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    s3, workbench = defs.resources["s3"], defs.resources["workbench"]
    with dg.build_resources({"s3": s3, "workbench": workbench}) as built:
        services = built.workbench.services()
        services.artifacts.write_bytes("probe/hello.txt", b"hello")
        buckets = [b["Name"] for b in built.s3.list_buckets()["Buckets"]]  # the resource yields a boto3 client
        print(json.dumps({
            "resources": sorted(defs.resources),
            "s3_type": type(s3).__name__,
            "s3_fields_from_env": sorted(k for k, v in s3.__dict__.items() if isinstance(v, dg.EnvVar)),
            "workbench_s3_is_s3": workbench.s3 is s3,
            "database": services.control.engine.dialect.name,
            "lake_uri": services.lake.uri,
            "events": services.lake.events.count_rows(),
            "endpoint": services.settings.s3_endpoint_url,
            "buckets": buckets,
        }))
    """
)


def test_definitions_load_with_scaled_resources(tmp_path, postgres_server, s3_server):
    bucket = s3_server.new_bucket()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "DAGSTER_"))},
        **s3_server.env(),
        "WORKBENCH_HOME": str(tmp_path / "home"),
        "WORKBENCH_DATABASE_URL": postgres_server.url(postgres_server.new_database()),
        "WORKBENCH_LAKE_URI": f"s3://{bucket}/lake",
        "WORKBENCH_ARTIFACTS_URI": f"s3://{bucket}/artifacts",
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    (tmp_path / "dagster").mkdir()
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert {"s3", "workbench", "io_manager"} <= set(report["resources"])
    assert report["s3_type"] == "S3Resource" and report["workbench_s3_is_s3"]
    # Secrets stay EnvVars in the definitions: each run reads them, the UI shows only the names.
    assert report["s3_fields_from_env"] == ["aws_access_key_id", "aws_secret_access_key", "endpoint_url", "region_name"]
    assert report["database"] == "postgresql"
    assert report["lake_uri"] == f"s3://{bucket}/lake" and report["events"] == 0
    assert report["endpoint"] == s3_server.endpoint_url and bucket in report["buckets"]
    assert "artifacts/probe/hello.txt" in s3_server.keys(bucket, "artifacts/")


def test_embedded_environment_has_no_s3_resource(monkeypatch):
    from assets.resources import WorkbenchResource, workbench_resources

    for name in ("WORKBENCH_LAKE_URI", "WORKBENCH_ARTIFACTS_URI"):
        monkeypatch.delenv(name, raising=False)
    resources = workbench_resources()
    assert set(resources) == {"workbench"} and isinstance(resources["workbench"], WorkbenchResource)
    assert resources["workbench"].s3 is None

    monkeypatch.setenv("WORKBENCH_ARTIFACTS_URI", "s3://bucket/artifacts")
    monkeypatch.delenv("WORKBENCH_S3_ENDPOINT_URL", raising=False)
    scaled = workbench_resources()
    # No endpoint configured: the S3 resource leaves it to the AWS chain instead of failing on a missing EnvVar.
    assert set(scaled) == {"s3", "workbench", "io_manager"} and scaled["s3"].endpoint_url is None
    # asset outputs travel through the artifacts bucket, since each run is its own container
    assert (scaled["io_manager"].s3_bucket, scaled["io_manager"].s3_prefix) == ("bucket", "artifacts/dagster-io")
