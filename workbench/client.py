"""The Python API for notebooks and scripts: ``wb = workbench.connect()``.

Embedded (no URL) calls the same library functions the REST routers call, on the same
WORKBENCH_HOME; remote (a URL and an API key) calls the REST API. Both expose the same
``wb.events`` and ``wb.datasets`` faces.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from workbench.errors import NotFoundError, ValidationFailed, WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.config import Settings
    from workbench.data.datasets import DatasetInfo
    from workbench.data.schema import ItemResult
    from workbench.services import Services

DEFAULT_TENANT = "default"


class Dataset:
    """A dataset version: its metadata and a way to load its rows."""

    def __init__(self, info: DatasetInfo, loader) -> None:
        self.info = info
        self._loader = loader

    @property
    def id(self) -> str:
        """The dataset version id."""
        return self.info.id

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a DataFrame."""
        return self._loader()

    def __repr__(self) -> str:
        i = self.info
        return f"Dataset(id={i.id!r}, name={i.name!r}, version={i.version}, kind={i.kind!r}, rows={i.rows})"


class _EmbeddedEvents:
    def __init__(self, client: EmbeddedClient) -> None:
        self._c = client

    def log(self, events: dict[str, Any] | list[dict[str, Any]]) -> list[ItemResult]:
        """Ingest one event or a list; per-item results once the accepted ones are durable."""
        items = [events] if isinstance(events, dict) else list(events)
        return self._c.services.ingestor.ingest(self._c.tenant_id, items)


class _EmbeddedDatasets:
    def __init__(self, client: EmbeddedClient) -> None:
        self._c = client

    def create(self, name: str, kind: str, filters: dict[str, Any] | None = None, output_format: str = "parquet") -> Dataset:
        """Build a dataset version from events (see DatasetSpec)."""
        from workbench.data.datasets import create_dataset

        info = create_dataset(
            self._c.services, self._c.tenant_id,
            {"name": name, "kind": kind, "filters": filters or {}, "output_format": output_format}, self._c.actor,
        )
        return self.get(info.id)

    def get(self, dataset_id: str) -> Dataset:
        """A dataset version by id."""
        from workbench.data.datasets import get_dataset, load_dataset_frame

        services, tenant = self._c.services, self._c.tenant_id
        return Dataset(get_dataset(services, tenant, dataset_id), lambda: load_dataset_frame(services, tenant, dataset_id))

    def list(self, name: str | None = None) -> list[DatasetInfo]:
        """Dataset versions, newest first."""
        from workbench.data.datasets import list_datasets

        return list_datasets(self._c.services, self._c.tenant_id, name)

    def lineage(self, dataset_id: str) -> dict[str, Any]:
        """Upstream and downstream of a dataset version."""
        from workbench.data.datasets import dataset_lineage

        return dataset_lineage(self._c.services, self._c.tenant_id, dataset_id)


class EmbeddedClient:
    """In-process access to a workbench home as one tenant (created on first use)."""

    def __init__(self, services: Services, tenant: str = DEFAULT_TENANT) -> None:
        from workbench.security.tenants import create_tenant, find_tenant

        self.services = services
        found = find_tenant(services.control, tenant)
        self.tenant_id = found.id if found else create_tenant(services.control, tenant)[0].id
        self.actor = "embedded"
        self.events = _EmbeddedEvents(self)
        self.datasets = _EmbeddedDatasets(self)

    def close(self) -> None:
        """Flush pending events and release the stores."""
        self.services.close()


class _RemoteEvents:
    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def log(self, events: dict[str, Any] | list[dict[str, Any]]) -> list[ItemResult]:
        """POST /events; per-item results."""
        from workbench.data.schema import ItemResult

        body = {"events": [events] if isinstance(events, dict) else list(events)}
        data = self._c.request("POST", "/events", json=body, ok=(200, 422))
        return [ItemResult.model_validate(r) for r in data["results"]]


class _RemoteDatasets:
    def __init__(self, client: RemoteClient) -> None:
        self._c = client

    def create(self, name: str, kind: str, filters: dict[str, Any] | None = None, output_format: str = "parquet") -> Dataset:
        """POST /datasets/create."""
        from workbench.data.datasets import DatasetInfo

        data = self._c.request(
            "POST", "/datasets/create",
            json={"name": name, "kind": kind, "filters": filters or {}, "output_format": output_format},
        )
        return self._dataset(DatasetInfo.model_validate(data))

    def get(self, dataset_id: str) -> Dataset:
        """GET /datasets/{id}."""
        from workbench.data.datasets import DatasetInfo

        return self._dataset(DatasetInfo.model_validate(self._c.request("GET", f"/datasets/{dataset_id}")))

    def list(self, name: str | None = None) -> list[DatasetInfo]:
        """GET /datasets."""
        from workbench.data.datasets import DatasetInfo

        params = {"name": name} if name else None
        return [DatasetInfo.model_validate(d) for d in self._c.request("GET", "/datasets", params=params)]

    def lineage(self, dataset_id: str) -> dict[str, Any]:
        """GET /lineage/dataset/{id}."""
        return self._c.request("GET", f"/lineage/dataset/{dataset_id}")

    def _dataset(self, info: DatasetInfo) -> Dataset:
        def load() -> pd.DataFrame:
            import pandas as pd

            response = self._c.http.get(f"/datasets/{info.id}/download")
            response.raise_for_status()
            if info.output_format == "parquet":
                return pd.read_parquet(io.BytesIO(response.content))
            return pd.read_json(io.BytesIO(response.content), lines=True)

        return Dataset(info, load)


class RemoteClient:
    """Access to a running workbench server with an API key."""

    def __init__(self, url: str, api_key: str, timeout: float = 120.0) -> None:
        import httpx

        self.http = httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)
        self.events = _RemoteEvents(self)
        self.datasets = _RemoteDatasets(self)

    def request(self, method: str, path: str, ok: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        """Call the API; raise the matching workbench error on failure."""
        response = self.http.request(method, path, **kwargs)
        if response.status_code in ok:
            return response.json() if response.content else None
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text}
        if response.status_code == 404:
            raise NotFoundError(path, str(body.get("detail")))
        if response.status_code == 422:
            raise ValidationFailed(body.get("field", "(body)"), str(body.get("detail")))
        error = WorkbenchError(f"{method} {path} → {response.status_code}: {body.get('detail')}")
        error.status_code = response.status_code
        raise error

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.http.close()


def connect(
    url: str | None = None, *, api_key: str | None = None, tenant: str = DEFAULT_TENANT, settings: Settings | None = None
) -> EmbeddedClient | RemoteClient:
    """``connect()`` opens WORKBENCH_HOME in-process; ``connect(url, api_key=...)`` talks to a server."""
    if url is not None:
        if not api_key:
            raise ValidationFailed("api_key", "a remote connection needs an API key (workbench keys create ...)")
        return RemoteClient(url, api_key)
    from workbench.services import Services

    return EmbeddedClient(Services(settings), tenant)
