"""Runtime Factory: agents, sessions, the MCP tool gateway, serving and monitoring.

Importing this package is light (pydantic only): the MCP toolbox server imports it at start-up.
"""

from workbench.runtime.plugins import (
    HttpTransport,
    PluginGateway,
    PluginInfo,
    PluginPin,
    PluginSpec,
    PluginTool,
    StdioTransport,
    ToolCallOutcome,
    acall_tool,
    call_tool,
    default_gateway,
    get_plugin,
    list_plugins,
    register_plugin,
    resolve_tools,
)

__all__ = [
    "HttpTransport",
    "PluginGateway",
    "PluginInfo",
    "PluginPin",
    "PluginSpec",
    "PluginTool",
    "StdioTransport",
    "ToolCallOutcome",
    "acall_tool",
    "call_tool",
    "default_gateway",
    "get_plugin",
    "list_plugins",
    "register_plugin",
    "resolve_tools",
]
