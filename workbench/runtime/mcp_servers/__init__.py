"""MCP servers shipped with the workbench, each runnable with ``python -m``.

* :mod:`workbench.runtime.mcp_servers.toolbox` — a calculator, a small persistent key-value store
  and a ``sleep`` tool (for timeout tests); stdio by default, streamable HTTP with ``--http``.

They are ordinary MCP servers: register them as plugins like any third-party server.
"""
