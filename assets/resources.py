"""The Dagster resources: ``workbench`` hands assets a ``workbench.services.Services``; when the lake
or the artifacts live in S3 (the scaled deployment), ``s3`` is a dagster-aws ``S3Resource`` that
carries the object store's endpoint and credentials, and ``workbench`` takes them from it."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3PickleIOManager, S3Resource
from pydantic import PrivateAttr

from workbench.config import Settings
from workbench.services import Services
from workbench.store.s3 import is_s3_uri

# S3Resource field → the WORKBENCH_* variable the workbench's own Settings read, so the API, the
# CLI and the run workers all take the object store from the same environment.
S3_ENV_VARS: dict[str, str] = {
    "endpoint_url": "WORKBENCH_S3_ENDPOINT_URL",
    "region_name": "WORKBENCH_S3_REGION",
    "aws_access_key_id": "WORKBENCH_S3_ACCESS_KEY_ID",
    "aws_secret_access_key": "WORKBENCH_S3_SECRET_ACCESS_KEY",
}
_S3_SETTINGS = {
    "endpoint_url": "s3_endpoint_url",
    "region_name": "s3_region",
    "aws_access_key_id": "s3_access_key_id",
    "aws_secret_access_key": "s3_secret_access_key",
}


class WorkbenchResource(dg.ConfigurableResource):
    """Opens the workbench home for a run; empty fields fall back to the WORKBENCH_* environment.

    With ``s3`` set, its endpoint, region and credentials configure the s3:// lake and artifacts.
    """

    home: str | None = None
    database_url: str | None = None
    lake_uri: str | None = None
    artifacts_uri: str | None = None
    s3: S3Resource | None = None

    _services: Services | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._services = Services(self.settings())

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._services is not None:
            self._services.close()

    def settings(self) -> Settings:
        """The workbench settings of a run: this resource's fields over the environment."""
        overrides = {k: v for k, v in self.model_dump(exclude={"s3"}).items() if v is not None}
        if self.s3 is not None:
            for field, setting in _S3_SETTINGS.items():
                value = getattr(self.s3, field)
                if value is not None:
                    overrides[setting] = value
        return Settings(**overrides)

    def services(self) -> Services:
        """The run's Services (stores open lazily, so assets pay only for what they use)."""
        if self._services is None:
            raise RuntimeError("WorkbenchResource is used outside a Dagster run")
        return self._services


def workbench_resources() -> dict[str, Any]:
    """The code location's resources for the deployment the environment describes.

    Embedded (local lake and artifacts): ``{"workbench": WorkbenchResource()}``. Scaled (the
    lake or the artifacts URI is s3://): also an ``io_manager`` in that bucket, and ``"s3"``, an ``S3Resource`` whose fields are
    ``EnvVar``s of the WORKBENCH_S3_* variables that are set (unset ones keep the AWS chain, e.g.
    an IAM role), so secrets are read by each run and never stored in the definitions.
    """
    uris = (os.environ.get("WORKBENCH_LAKE_URI", ""), os.environ.get("WORKBENCH_ARTIFACTS_URI", ""))
    if not any(is_s3_uri(uri) for uri in uris):
        return {"workbench": WorkbenchResource()}
    s3 = S3Resource(**{field: dg.EnvVar(var) for field, var in S3_ENV_VARS.items() if os.environ.get(var)})
    # Runs are separate containers or pods there, so asset outputs (ids and figures) travel through
    # the object store instead of the instance's local storage.
    bucket, _, prefix = next(uri for uri in (*uris[::-1],) if is_s3_uri(uri)).removeprefix("s3://").partition("/")
    io_manager = S3PickleIOManager(s3_resource=s3, s3_bucket=bucket, s3_prefix=f"{prefix.strip('/') or 'workbench'}/dagster-io")
    return {"s3": s3, "workbench": WorkbenchResource(s3=s3), "io_manager": io_manager}
