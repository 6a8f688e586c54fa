"""Agent Factory Workbench: a research workbench that closes the loop for LLM agents.

``import workbench`` is light; heavy dependencies load when a feature is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.client import EmbeddedClient, RemoteClient

__version__ = "0.1.0"
__all__ = ["__version__", "connect"]


def connect(url: str | None = None, **kwargs: Any) -> EmbeddedClient | RemoteClient:
    """Open the workbench: embedded on WORKBENCH_HOME, or remote with ``connect(url, api_key=...)``."""
    from workbench.client import connect as _connect

    return _connect(url, **kwargs)
