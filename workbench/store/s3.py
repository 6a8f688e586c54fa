"""S3 connection options shared by the lake (LanceDB) and the artifact store (pyarrow.fs).

The two stores speak to S3 through different clients (LanceDB's Rust object store, Arrow's AWS
SDK), which spell the same settings differently; this module translates one set of options for
both, so an S3-compatible endpoint (MinIO, moto) needs configuring once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pyarrow import fs as pafs

    from workbench.config import Settings

# S3-compatible servers ignore the region, but both clients need one to sign requests.
_ENDPOINT_DEFAULT_REGION = "us-east-1"


def is_s3_uri(uri: str) -> bool:
    """Whether a store URI lives in S3 (``s3://bucket/prefix``)."""
    return uri.startswith("s3://")


@dataclass(frozen=True)
class S3Options:
    """Endpoint, region and credentials for s3:// URIs; ``None`` fields fall back to the AWS chain."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Options:
        """The ``s3_*`` fields of the workbench settings."""
        secret = settings.s3_secret_access_key
        return cls(
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
        )

    @property
    def _region(self) -> str | None:
        return self.region or (_ENDPOINT_DEFAULT_REGION if self.endpoint_url else None)

    def lance_storage_options(self) -> dict[str, str]:
        """``storage_options`` for ``lancedb.connect`` (object_store keys)."""
        options: dict[str, str] = {}
        if self.endpoint_url:
            options["endpoint"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["allow_http"] = "true"
        if self._region:
            options["region"] = self._region
        if self.access_key_id:
            options["aws_access_key_id"] = self.access_key_id
        if self.secret_access_key:
            options["aws_secret_access_key"] = self.secret_access_key
        return options

    def filesystem(self) -> pafs.S3FileSystem:
        """A pyarrow S3 filesystem with these options (paths are ``bucket/key``)."""
        from pyarrow import fs as pafs

        kwargs: dict[str, object] = {"region": self._region}
        if self.endpoint_url:
            endpoint = urlsplit(self.endpoint_url)
            if not endpoint.scheme or not endpoint.netloc:
                raise ValueError(f"S3 endpoint {self.endpoint_url!r} must look like http(s)://host[:port]")
            # Arrow takes the scheme apart from the host; S3-compatible servers want path-style buckets.
            kwargs.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme, force_virtual_addressing=False)
        if self.access_key_id or self.secret_access_key:
            kwargs.update(access_key=self.access_key_id, secret_key=self.secret_access_key)
        return pafs.S3FileSystem(**kwargs)
