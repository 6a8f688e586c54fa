"""The Dagster resource that hands assets a ``workbench.services.Services``."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from workbench.config import Settings
from workbench.services import Services


class WorkbenchResource(dg.ConfigurableResource):
    """Opens the workbench home for a run; empty fields fall back to the WORKBENCH_* environment."""

    home: str | None = None
    database_url: str | None = None
    lake_uri: str | None = None
    artifacts_uri: str | None = None

    _services: Services | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        overrides = {k: v for k, v in self.model_dump().items() if v is not None}
        self._services = Services(Settings(**overrides))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._services is not None:
            self._services.close()

    def services(self) -> Services:
        """The run's Services (stores open lazily, so assets pay only for what they use)."""
        if self._services is None:
            raise RuntimeError("WorkbenchResource is used outside a Dagster run")
        return self._services
