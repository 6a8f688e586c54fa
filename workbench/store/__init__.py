"""Stores: the control plane (SQL), the event lake (LanceDB) and artifacts (local or S3)."""

from workbench.store.artifacts import ArtifactStore
from workbench.store.control import ControlPlane
from workbench.store.group_commit import GroupCommitter
from workbench.store.lake import EVENT_SCHEMA, Lake

__all__ = ["EVENT_SCHEMA", "ArtifactStore", "ControlPlane", "GroupCommitter", "Lake"]
