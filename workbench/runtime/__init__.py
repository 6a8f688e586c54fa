"""Runtime Factory: agents, sessions, the MCP tool gateway, serving and monitoring.

Importing this package is light (pydantic only): the MCP toolbox server imports it at start-up,
so the agents, sessions, serving and monitoring names load on first access.
"""

from importlib import import_module
from typing import Any

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

_LAZY = {
    "agents": ["AgentInfo", "AgentSpec", "GenerationSettings", "ModelRef", "create_agent", "find_agent", "get_agent",
               "list_agents", "parse_agent_spec", "is_managed_engine"],
    "sessions": ["SessionInfo", "SessionHistory", "StepResult", "ToolCallView", "TurnView", "create_session",
                 "get_session", "list_sessions", "session_history", "step_session"],
    "serving": ["DeploymentInfo", "DeploymentRequest", "EngineHandle", "ResolvedModel", "deploy", "engine_for",
                "engine_for_agent", "ensure_base_model", "get_deployment", "list_deployments", "models_dir",
                "resolve_model"],
    "monitoring": ["AgentMetrics", "agent_metrics", "record_step"],
    "_rollouts": ["rollout_agent"],
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"workbench.runtime.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'workbench.runtime' has no attribute {name!r}")


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
    *_WHERE,
]
