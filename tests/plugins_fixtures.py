"""Plugin specs shared by the API tests."""

from __future__ import annotations

import sys


def toolbox_spec(name: str, version: str = "1.0.0", tmp_dir: str = "/tmp") -> dict:
    """A stdio registration of the shipped toolbox MCP server."""
    return {
        "name": name,
        "version": version,
        "transport": {"command": [sys.executable, "-m", "workbench.runtime.mcp_servers.toolbox", "--store", f"{tmp_dir}/kv.json"]},
        "scopes": {"read": ["calculator", "kv_get", "kv_list"], "write": ["kv_set"]},
    }
