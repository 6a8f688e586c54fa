"""The MCP tool gateway: plugins registered per tenant, pinned by agents, called under permissions.

A *plugin* is an MCP server reached through the official ``mcp`` client, either a command started
as a subprocess speaking stdio or a streamable-HTTP URL. Registering one
(:func:`register_plugin`) connects to it, discovers its tools with ``list_tools`` and stores the
spec and the tool schemas as an immutable *version*; registering the same name and version again
is a conflict, a newer version is a new row.

Permissions, checked on every call:

* **tenants** — a plugin belongs to the tenant that registered it; no other tenant sees it.
* **agents** — ``allowed_agents`` lists the agent names that may use it (empty: every agent of
  the tenant).
* **scopes** — named per-tool allow lists (for example ``read`` and ``write``); an agent's
  :class:`PluginPin` grants it some scopes of one pinned version.

Versioning: an agent pins ``name`` + ``version``; registering a newer version changes nothing for
it until its pin is changed (upgrading is explicit).

Calls (:class:`PluginGateway`) go through pooled ``mcp`` client sessions with timeouts. A call
the agent may not make (plugin not allowed, scope not granted, unknown tool) is answered with a
tool error (``denied=True``) without reaching the server, and counted in
``workbench_tool_safety_violations_total{plugin,tool,reason}``; every call is counted in
``workbench_tool_calls_total{plugin,tool,outcome}``.

Example::

    spec = PluginSpec(
        name="toolbox", version="1.0.0",
        transport=StdioTransport(command=[sys.executable, "-m", "workbench.runtime.mcp_servers.toolbox"]),
        scopes={"read": ["calculator", "kv_get", "kv_list"], "write": ["kv_set"]},
    )
    register_plugin(services, tenant_id, spec)
    pins = [PluginPin(name="toolbox", version="1.0.0", scopes=["read"])]
    tools = resolve_tools(services, tenant_id, "helper", pins)      # what the model is shown
    with PluginGateway() as gateway:
        outcome = gateway.call_tool(services, tenant_id, "helper", pins, "calculator", {"expression": "2+2"})
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from workbench.errors import ConflictError, NotFoundError, ValidationFailed

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

log = logging.getLogger(__name__)

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_VERSION_RE = re.compile(
    r"^(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
    r"(?:-(?P<pre>[0-9A-Za-z.\-]+))?(?:\+(?P<build>[0-9A-Za-z.\-]+))?$"
)

DenyReason = Literal["agent_not_allowed", "scope_not_granted", "unknown_tool"]


def _version_key(version: str) -> tuple:
    """Sort key of a version: numeric parts, then a release after its pre-releases (semver order)."""
    m = _VERSION_RE.match(version)
    if m is None:  # stored versions were validated; keep sorting total anyway
        return ((-1, -1, -1), 0, ())
    numbers = tuple(int(m.group(g) or 0) for g in ("major", "minor", "patch"))
    pre = m.group("pre")
    if pre is None:
        return (numbers, 1, ())
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (numbers, 0, parts)


# ---------------------------------------------------------------- specs


class StdioTransport(BaseModel):
    """A plugin started as a subprocess speaking MCP over stdin/stdout.

    The subprocess gets only a minimal environment (PATH, HOME, ...) plus ``env``; give
    ``command[0]`` as an absolute path when the server's interpreter is not on that PATH.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["stdio"] = "stdio"
    command: list[str] = Field(min_length=1, description="argv: the executable and its arguments.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for the server.")
    cwd: str | None = Field(None, description="Working directory of the server process.")

    @field_validator("command")
    @classmethod
    def _executable_given(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("command[0] must name the executable")
        if any("\x00" in part for part in value):
            raise ValueError("command must not contain NUL characters")
        return value


class HttpTransport(BaseModel):
    """A plugin reached over MCP streamable HTTP at ``url`` (for example ``http://127.0.0.1:8765/mcp``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["http"] = "http"
    url: str = Field(max_length=2000, description="The MCP endpoint URL.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("url must be an http:// or https:// URL")
        return value


def _transport_kind(value: Any) -> str | None:
    if isinstance(value, Mapping):
        if value.get("kind"):
            return str(value["kind"])
        return "stdio" if "command" in value else "http" if "url" in value else None
    return getattr(value, "kind", None)


PluginTransport = Annotated[
    Union[Annotated[StdioTransport, Tag("stdio")], Annotated[HttpTransport, Tag("http")]],
    Discriminator(
        _transport_kind,
        custom_error_type="transport_kind",
        custom_error_message="a transport needs either 'command' (stdio) or 'url' (streamable HTTP)",
    ),
]


class PluginSpec(BaseModel):
    """What a plugin version is: how to reach the server, its scopes and who may use it.

    ``transport`` is written ``{"command": [...], "env": {...}, "cwd": ...}`` or ``{"url": ...}``
    (``{"stdio": {...}}`` / ``{"http": {...}}`` and an explicit ``kind`` are accepted too).
    Leaving ``scopes`` empty registers one scope, ``all``, holding every discovered tool.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=_NAME_PATTERN)
    version: str = Field(min_length=1, max_length=50, description="Semantic version, e.g. 1.2.0 or 2.0.0-rc.1.")
    transport: PluginTransport
    scopes: dict[str, list[str]] = Field(
        default_factory=dict, description="Scope name -> the tools it allows, e.g. {'read': ['kv_get']}."
    )
    allowed_agents: list[str] = Field(
        default_factory=list, description="Agent names that may use the plugin; empty means every agent."
    )
    call_timeout_s: float = Field(30.0, gt=0, le=3600, description="Default time limit of one tool call.")
    connect_timeout_s: float = Field(20.0, gt=0, le=300, description="Time limit to start/reach the server.")
    description: str = Field("", max_length=2000)

    @model_validator(mode="before")
    @classmethod
    def _nested_transport(cls, data: Any) -> Any:
        # Accept {"transport": {"stdio": {...}}} as well as the flat form.
        if isinstance(data, Mapping) and isinstance(data.get("transport"), Mapping):
            transport = data["transport"]
            if len(transport) == 1 and next(iter(transport)) in ("stdio", "http"):
                kind, body = next(iter(transport.items()))
                if isinstance(body, Mapping):
                    data = {**data, "transport": {"kind": kind, **body}}
        return data

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not _VERSION_RE.match(value):
            raise ValueError("version must look like 1.2.3 (optionally -pre and +build), e.g. 1.0.0")
        return value

    @field_validator("scopes")
    @classmethod
    def _scope_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for scope, tools in value.items():
            if not re.match(r"^[A-Za-z0-9_.:\-]{1,64}$", scope):
                raise ValueError(f"scope name {scope!r} must be 1-64 letters, digits or _ . : -")
            if len(set(tools)) != len(tools):
                raise ValueError(f"scope {scope!r} lists a tool twice")
        return value

    @field_validator("allowed_agents")
    @classmethod
    def _agent_names(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("agent names must not be empty")
        return list(dict.fromkeys(value))


class PluginPin(BaseModel):
    """An agent's use of one plugin: exactly this version, with these scopes granted."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=50)
    scopes: list[str] = Field(min_length=1, description="Scope names of that version granted to the agent.")


class PluginTool(BaseModel):
    """A tool of a plugin version, as discovered with ``list_tools``: what the model is shown."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(description="JSON schema of the arguments object (the MCP inputSchema).")
    title: str | None = None
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None
    plugin: str
    version: str
    scopes: list[str] = Field(default_factory=list, description="Scopes of this plugin version that include the tool.")

    def to_tool_spec(self) -> Any:
        """This tool as a :class:`workbench.agents.ToolSpec` for the tool-call protocol."""
        from workbench.agents import ToolSpec

        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry for this tool."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class PluginInfo(BaseModel):
    """A registered plugin version: its spec and the tools discovered when it was registered."""

    id: str
    tenant_id: str
    name: str
    version: str
    description: str
    spec: PluginSpec
    tools: list[PluginTool]
    created_at: datetime


class ToolCallOutcome(BaseModel):
    """How one gateway tool call ended.

    ``content`` is what goes back to the model: the tool's text, or the error message when the call
    failed or was refused. ``reason`` is None on success; ``agent_not_allowed``,
    ``scope_not_granted`` or ``unknown_tool`` when ``denied``; otherwise ``tool_error`` (the tool
    reported an error), ``timeout``, ``unavailable`` (the server could not be reached or the
    connection broke), ``protocol_error`` or ``bad_arguments``.
    """

    ok: bool
    content: str
    error: str | None = None
    denied: bool = False
    reason: str | None = None
    tool: str
    plugin: str | None = None
    version: str | None = None
    latency_ms: float
    structured: Any = Field(None, description="The tool's structured result, when it returned one.")

    def to_tool_result(self, call_id: str) -> Any:
        """This outcome as a :class:`workbench.agents.ToolResult` for the agent loop."""
        from workbench.agents import ToolResult

        return ToolResult(
            call_id=call_id, name=self.tool, content=self.content, is_error=not self.ok,
            latency_s=self.latency_ms / 1000,
        )


def _validation_failed(exc: ValidationError, prefix: str = "") -> ValidationFailed:
    err = exc.errors(include_url=False)[0]
    parts = [str(p) for p in err["loc"] if p not in ("stdio", "http")]
    field_name = ".".join(([prefix] if prefix else []) + parts) or prefix or "spec"
    reason = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        reason = "unknown field"
    return ValidationFailed(field_name, reason)


# ---------------------------------------------------------------- registry (control plane)


def _to_info(row: Any) -> PluginInfo:
    spec = PluginSpec.model_validate(row.spec)
    tools = [
        PluginTool(
            **tool, plugin=row.name, version=row.version,
            scopes=sorted(s for s, names in spec.scopes.items() if tool["name"] in names),
        )
        for tool in row.tools
    ]
    return PluginInfo(
        id=row.id, tenant_id=row.tenant_id, name=row.name, version=row.version,
        description=spec.description, spec=spec, tools=tools, created_at=row.created_at,
    )


def register_plugin(services: Any, tenant_id: str, spec: PluginSpec | Mapping[str, Any]) -> PluginInfo:
    """Connect to the plugin's MCP server, discover its tools and store a new plugin version.

    Raises ``ValidationFailed`` for a bad spec, for a scope naming a tool the server does not
    offer (field ``scopes.<scope>``) and for a server that cannot be started or reached (field
    ``transport``); ``ConflictError`` when this name and version exist already;
    ``NotFoundError`` for an unknown tenant. Nothing is stored unless everything succeeded.
    """
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from workbench.runtime._mcp_client import ConnectFailed, discover_tools, run_coroutine_in_thread
    from workbench.security.tenants import new_id
    from workbench.store.models import PluginRecord, Tenant

    if not isinstance(spec, PluginSpec):
        try:
            spec = PluginSpec.model_validate(spec)
        except ValidationError as exc:
            raise _validation_failed(exc) from None

    with services.control.session() as session:
        if session.get(Tenant, tenant_id) is None:
            raise NotFoundError("tenant", tenant_id)
        existing = session.scalar(
            select(PluginRecord.id).where(
                PluginRecord.tenant_id == tenant_id, PluginRecord.name == spec.name,
                PluginRecord.version == spec.version,
            )
        )
    if existing is not None:
        raise _conflict(spec)

    transport, timeout = spec.transport, spec.connect_timeout_s
    try:
        tools = run_coroutine_in_thread(lambda: discover_tools(transport, timeout))
    except ConnectFailed as exc:
        raise ValidationFailed("transport", str(exc)) from None

    offered = [t["name"] for t in tools]
    for scope, names in spec.scopes.items():
        missing = [n for n in names if n not in offered]
        if missing:
            raise ValidationFailed(
                f"scopes.{scope}",
                f"the server does not offer {', '.join(repr(n) for n in missing)} "
                f"(it offers: {', '.join(offered) or 'no tools'})",
            )
    if not spec.scopes:
        spec = spec.model_copy(update={"scopes": {"all": offered}})

    row = PluginRecord(
        id=new_id("plg"), tenant_id=tenant_id, name=spec.name, version=spec.version,
        spec=spec.model_dump(mode="json"), tools=tools, created_at=datetime.now(UTC),
    )
    try:
        with services.control.session() as session:
            session.add(row)
    except IntegrityError:
        raise _conflict(spec) from None
    log.info("plugin registered", extra={"tenant_id": tenant_id, "plugin": spec.name, "version": spec.version,
                                         "tools": offered})
    return _to_info(row)


def _conflict(spec: PluginSpec) -> ConflictError:
    return ConflictError(
        f"plugin {spec.name!r} version {spec.version} is registered already; versions are immutable, "
        "register a new version instead"
    )


def list_plugins(services: Any, tenant_id: str, name: str | None = None) -> list[PluginInfo]:
    """Every plugin version of the tenant (only ``name``'s when given), by name then version."""
    from sqlalchemy import select

    from workbench.store.models import PluginRecord

    query = select(PluginRecord).where(PluginRecord.tenant_id == tenant_id)
    if name is not None:
        query = query.where(PluginRecord.name == name)
    with services.control.session() as session:
        rows = list(session.scalars(query))
    rows.sort(key=lambda r: (r.name, _version_key(r.version), r.created_at))
    return [_to_info(r) for r in rows]


def get_plugin(services: Any, tenant_id: str, name: str, version: str | None = None) -> PluginInfo:
    """One plugin version; the highest version when ``version`` is None. ``NotFoundError`` if absent."""
    from sqlalchemy import select

    from workbench.store.models import PluginRecord

    query = select(PluginRecord).where(PluginRecord.tenant_id == tenant_id, PluginRecord.name == name)
    if version is not None:
        query = query.where(PluginRecord.version == version)
    with services.control.session() as session:
        rows = list(session.scalars(query))
    if not rows:
        raise NotFoundError("plugin", name if version is None else f"{name}@{version}")
    return _to_info(max(rows, key=lambda r: (_version_key(r.version), r.created_at)))


# ---------------------------------------------------------------- pins and permissions


@dataclass
class _Pinned:
    """One pin resolved against the registry."""

    index: int
    info: PluginInfo
    granted: list[str]
    allowed: bool
    granted_tools: set[str] = field(default_factory=set)


def _resolve_pins(
    services: Any, tenant_id: str, agent_name: str, pins: Sequence[PluginPin | Mapping[str, Any]]
) -> list[_Pinned]:
    """Pins checked against the registry; any pin that does not resolve raises ``ValidationFailed``."""
    from sqlalchemy import select

    from workbench.store.models import PluginRecord

    parsed: list[PluginPin] = []
    for i, pin in enumerate(pins):
        if isinstance(pin, PluginPin):
            parsed.append(pin)
            continue
        try:
            parsed.append(PluginPin.model_validate(pin))
        except ValidationError as exc:
            raise _validation_failed(exc, f"pins[{i}]") from None
    seen: dict[str, int] = {}
    for i, pin in enumerate(parsed):
        if pin.name in seen:
            raise ValidationFailed(
                f"pins[{i}].name", f"plugin {pin.name!r} is pinned twice (also pins[{seen[pin.name]}]); pin one version"
            )
        seen[pin.name] = i
    if not parsed:
        return []

    with services.control.session() as session:
        rows = list(session.scalars(
            select(PluginRecord).where(PluginRecord.tenant_id == tenant_id, PluginRecord.name.in_(list(seen)))
        ))
    by_key = {(r.name, r.version): r for r in rows}
    out: list[_Pinned] = []
    for i, pin in enumerate(parsed):
        row = by_key.get((pin.name, pin.version))
        if row is None:
            versions = sorted((r.version for r in rows if r.name == pin.name), key=_version_key)
            if not versions:
                raise ValidationFailed(f"pins[{i}].name", f"no plugin named {pin.name!r} is registered")
            raise ValidationFailed(
                f"pins[{i}].version",
                f"plugin {pin.name!r} has no version {pin.version!r} (registered: {', '.join(versions)})",
            )
        info = _to_info(row)
        unknown = [s for s in pin.scopes if s not in info.spec.scopes]
        if unknown:
            raise ValidationFailed(
                f"pins[{i}].scopes",
                f"plugin {pin.name!r} {pin.version} has no scope {', '.join(repr(s) for s in unknown)} "
                f"(scopes: {', '.join(sorted(info.spec.scopes)) or 'none'})",
            )
        allowed = not info.spec.allowed_agents or agent_name in info.spec.allowed_agents
        granted_tools = {t for s in pin.scopes for t in info.spec.scopes[s]}
        out.append(_Pinned(i, info, list(pin.scopes), allowed, granted_tools))
    return out


def _visible_tools(pinned: list[_Pinned]) -> dict[str, tuple[_Pinned, PluginTool]]:
    """Tools the agent may call, by name; two pinned plugins granting the same name is a config error."""
    visible: dict[str, tuple[_Pinned, PluginTool]] = {}
    for p in pinned:
        if not p.allowed:
            continue
        for tool in p.info.tools:
            if tool.name not in p.granted_tools:
                continue
            if tool.name in visible:
                other = visible[tool.name][0].info
                raise ValidationFailed(
                    "pins",
                    f"tool {tool.name!r} is granted by both plugin {other.name!r} {other.version} and "
                    f"{p.info.name!r} {p.info.version}; grant it through one of them",
                )
            visible[tool.name] = (p, tool)
    return visible


def resolve_tools(
    services: Any, tenant_id: str, agent_name: str, pins: Sequence[PluginPin | Mapping[str, Any]]
) -> list[PluginTool]:
    """The tools an agent may use through its pins: only the pinned versions' tools in granted scopes.

    Raises ``ValidationFailed`` (field ``pins[i]...``) for a pin to a plugin or version that is not
    registered, a scope the version does not have, a plugin the agent is not allowed to use, or
    two plugins granting the same tool name. Use it to validate an agent's pins when it is created.
    """
    pinned = _resolve_pins(services, tenant_id, agent_name, pins)
    for p in pinned:
        if not p.allowed:
            raise ValidationFailed(
                f"pins[{p.index}]",
                f"agent {agent_name!r} may not use plugin {p.info.name!r} {p.info.version} "
                f"(allowed agents: {', '.join(p.info.spec.allowed_agents)})",
            )
    return [tool for _, tool in _visible_tools(pinned).values()]


# ---------------------------------------------------------------- the gateway


@dataclass
class _CallPlan:
    """A permitted call, ready to run on the gateway loop."""

    key: tuple[str, ...]
    info: PluginInfo
    tool: str
    arguments: dict[str, Any]
    timeout_s: float
    log_path: Path | None
    started: float


class PluginGateway:
    """Calls plugin tools for agents, enforcing permissions, over pooled MCP client sessions.

    One session per plugin version is opened on first use and reused by later calls (a stdio
    server stays one process); sessions idle longer than ``idle_timeout_s`` and the least recently
    used beyond ``max_connections`` are closed. A timed-out or broken session is discarded and
    reopened on the next call. All sessions live on one private event loop thread, so both the
    sync :meth:`call_tool` and the async :meth:`acall_tool` can be used from anywhere.
    ``close()`` (or leaving a ``with`` block) shuts every session and subprocess down.

    Server stderr of stdio plugins goes to ``log_dir/<tenant>/<name>-<version>.log`` (default
    ``WORKBENCH_HOME/logs/plugins``).
    """

    def __init__(
        self, *, max_connections: int = 32, idle_timeout_s: float = 300.0, log_dir: Path | None = None
    ) -> None:
        from workbench.runtime._mcp_client import ConnectionPool, LoopThread

        self._log_dir = log_dir
        self._max_connections = max_connections
        self._idle_timeout_s = idle_timeout_s
        self._loop = LoopThread("wb-mcp-gateway")
        self._pool = ConnectionPool(max_connections, idle_timeout_s)

    def __enter__(self) -> PluginGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public calls

    def call_tool(
        self, services: Any, tenant_id: str, agent_name: str, pins: Sequence[PluginPin | Mapping[str, Any]],
        tool_name: str, arguments: Mapping[str, Any] | None = None, timeout_s: float | None = None,
    ) -> ToolCallOutcome:
        """Call ``tool_name`` for ``agent_name`` with its ``pins``; never raises for the call itself.

        A refused call returns ``denied=True``; a failed one ``ok=False`` with ``reason``. Pins that
        do not resolve raise ``ValidationFailed`` (they are configuration, checked at agent creation).
        """
        plan = self._plan(services, tenant_id, agent_name, pins, tool_name, arguments, timeout_s)
        if isinstance(plan, ToolCallOutcome):
            return plan
        if self._loop.in_loop_thread():
            raise RuntimeError("PluginGateway.call_tool blocks; use acall_tool on the gateway's own loop")
        future = self._loop.submit(self._execute(plan))
        try:
            outcome = future.result(timeout=self._deadline_s(plan))
        except concurrent.futures.TimeoutError:
            future.cancel()
            outcome = self._failed(plan, "timeout", f"tool {plan.tool!r} did not answer within {plan.timeout_s:g} s")
        except concurrent.futures.CancelledError:  # the gateway was closed under the call
            outcome = self._failed(plan, "unavailable", "the call was cancelled (gateway closed)")
        return self._record(plan, outcome)

    async def acall_tool(
        self, services: Any, tenant_id: str, agent_name: str, pins: Sequence[PluginPin | Mapping[str, Any]],
        tool_name: str, arguments: Mapping[str, Any] | None = None, timeout_s: float | None = None,
    ) -> ToolCallOutcome:
        """The async form of :meth:`call_tool` (database reads run in a worker thread)."""
        plan = await asyncio.to_thread(
            self._plan, services, tenant_id, agent_name, pins, tool_name, arguments, timeout_s
        )
        if isinstance(plan, ToolCallOutcome):
            return plan
        future = self._loop.submit(self._execute(plan))
        try:
            outcome = await asyncio.wait_for(asyncio.wrap_future(future), self._deadline_s(plan))
        except TimeoutError:
            outcome = self._failed(plan, "timeout", f"tool {plan.tool!r} did not answer within {plan.timeout_s:g} s")
        return self._record(plan, outcome)

    def tool_fn(self, services: Any, tenant_id: str, agent_name: str, pins: Sequence[PluginPin | Mapping[str, Any]]):
        """A ``workbench.agents.ToolFn`` for the agent loop that routes calls through this gateway."""

        def run(call: Any) -> Any:
            outcome = self.call_tool(services, tenant_id, agent_name, pins, call.name, call.arguments)
            return outcome.to_tool_result(call.id)

        return run

    def stats(self) -> dict[str, Any]:
        """Sessions opened so far and the ones open now (``name@version``), for monitoring and tests."""
        if not self._loop.running:
            return {"connections_opened": self._pool.opened, "open": []}

        async def snapshot() -> dict[str, Any]:
            return {"connections_opened": self._pool.opened, "open": [f"{k[1]}@{k[2]}" for k in self._pool.keys()]}

        return self._loop.submit(snapshot()).result(10)

    def close(self) -> None:
        """Close every session (stopping stdio subprocesses) and the loop thread; safe to call twice."""
        pool = self._pool
        self._loop.stop(final=pool.aclose)
        from workbench.runtime._mcp_client import ConnectionPool

        # A closed gateway can still be used: it starts afresh on the next call.
        self._pool = ConnectionPool(self._max_connections, self._idle_timeout_s)

    # -- internals

    def _plan(
        self, services: Any, tenant_id: str, agent_name: str, pins: Sequence[PluginPin | Mapping[str, Any]],
        tool_name: str, arguments: Mapping[str, Any] | None, timeout_s: float | None,
    ) -> _CallPlan | ToolCallOutcome:
        started = time.perf_counter()
        pinned = _resolve_pins(services, tenant_id, agent_name, pins)
        visible = _visible_tools(pinned)
        hit = visible.get(tool_name)
        if hit is None:
            return self._deny(tenant_id, agent_name, pinned, tool_name, started)
        p, _tool = hit
        problem = _arguments_problem(arguments)
        if problem is not None:
            outcome = ToolCallOutcome(
                ok=False, content=problem, error=problem, reason="bad_arguments", tool=tool_name,
                plugin=p.info.name, version=p.info.version, latency_ms=_ms(started),
            )
            _count(outcome)
            return outcome
        log_dir = self._log_dir or Path(services.settings.home) / "logs" / "plugins"
        return _CallPlan(
            key=(p.info.id, p.info.name, p.info.version), info=p.info, tool=tool_name,
            arguments=dict(arguments or {}),
            timeout_s=float(timeout_s if timeout_s is not None else p.info.spec.call_timeout_s),
            log_path=log_dir / tenant_id / f"{p.info.name}-{p.info.version}.log", started=started,
        )

    def _deny(
        self, tenant_id: str, agent_name: str, pinned: list[_Pinned], tool_name: str, started: float
    ) -> ToolCallOutcome:
        owner = next((p for p in pinned if any(t.name == tool_name for t in p.info.tools)), None)
        reason: DenyReason
        if owner is None:
            reason = "unknown_tool"
            pinned_names = ", ".join(f"{p.info.name} {p.info.version}" for p in pinned) or "none"
            message = (
                f"tool {tool_name!r} is not available to agent {agent_name!r}: no pinned plugin offers it "
                f"(pinned: {pinned_names})"
            )
        elif not owner.allowed:
            reason = "agent_not_allowed"
            message = (
                f"agent {agent_name!r} is not allowed to use plugin {owner.info.name!r} {owner.info.version} "
                f"(tool {tool_name!r} refused)"
            )
        else:
            reason = "scope_not_granted"
            needed = sorted(s for s, names in owner.info.spec.scopes.items() if tool_name in names)
            message = (
                f"tool {tool_name!r} of plugin {owner.info.name!r} {owner.info.version} needs scope "
                f"{' or '.join(repr(s) for s in needed) or '(none lists it)'}, which agent {agent_name!r} "
                f"was not granted (granted: {', '.join(owner.granted)})"
            )
        outcome = ToolCallOutcome(
            ok=False, content=message, error=message, denied=True, reason=reason, tool=tool_name,
            plugin=owner.info.name if owner else None, version=owner.info.version if owner else None,
            latency_ms=_ms(started),
        )
        from workbench.runtime._mcp_metrics import count_violation

        # An unknown name is model-made: count it under fixed labels to bound label cardinality.
        count_violation(outcome.plugin or "none", tool_name if owner else "unknown", reason)
        _count(outcome)
        log.warning(
            "tool call denied",
            extra={"tenant_id": tenant_id, "agent": agent_name, "plugin": outcome.plugin, "tool": tool_name,
                   "reason": reason},
        )
        return outcome

    def _deadline_s(self, plan: _CallPlan) -> float:
        # Opening a session plus the call plus slack for the SDK's own timeout handling.
        return plan.info.spec.connect_timeout_s + plan.timeout_s + 15.0

    async def _execute(self, plan: _CallPlan) -> ToolCallOutcome:
        try:
            return await self._execute_on_loop(plan)
        except Exception as exc:  # a bug here must still end as an outcome, not a hung caller
            log.exception("plugin call failed unexpectedly")
            return self._failed(plan, "unavailable", f"the gateway failed: {type(exc).__name__}: {exc}")

    async def _execute_on_loop(self, plan: _CallPlan) -> ToolCallOutcome:
        from workbench.runtime._mcp_client import CallFailed, ConnectFailed, McpConnection, content_text

        spec = plan.info.spec
        try:
            conn = await self._pool.acquire(
                plan.key,
                lambda: McpConnection(
                    plan.key, spec.transport, log_path=plan.log_path, connect_timeout_s=spec.connect_timeout_s
                ),
            )
        except ConnectFailed as exc:
            return self._failed(plan, "unavailable", f"plugin {plan.info.name!r} {plan.info.version}: {exc}")
        try:
            result = await conn.call(plan.tool, plan.arguments, plan.timeout_s)
        except CallFailed as exc:
            if exc.kind in ("timeout", "unavailable"):
                # A hung or broken session is not reused: the next call starts a fresh one.
                self._pool.discard(conn)
            return self._failed(plan, "protocol_error" if exc.kind == "error" else exc.kind, str(exc))
        text = content_text(result)
        if result.is_error:
            return ToolCallOutcome(
                ok=False, content=text, error=text or "the tool reported an error", reason="tool_error",
                tool=plan.tool, plugin=plan.info.name, version=plan.info.version, latency_ms=_ms(plan.started),
            )
        return ToolCallOutcome(
            ok=True, content=text, tool=plan.tool, plugin=plan.info.name, version=plan.info.version,
            latency_ms=_ms(plan.started), structured=result.structured_content,
        )

    def _failed(self, plan: _CallPlan, reason: str, message: str) -> ToolCallOutcome:
        return ToolCallOutcome(
            ok=False, content=message, error=message, reason=reason, tool=plan.tool, plugin=plan.info.name,
            version=plan.info.version, latency_ms=_ms(plan.started),
        )

    def _record(self, plan: _CallPlan, outcome: ToolCallOutcome) -> ToolCallOutcome:
        outcome.latency_ms = _ms(plan.started)
        _count(outcome)
        if not outcome.ok and outcome.reason in ("timeout", "unavailable", "protocol_error"):
            log.warning(
                "tool call failed",
                extra={"plugin": plan.info.name, "version": plan.info.version, "tool": plan.tool,
                       "reason": outcome.reason, "error": outcome.error},
            )
        return outcome


def _arguments_problem(arguments: Any) -> str | None:
    # Arguments come from the model: refuse what cannot travel as JSON before it reaches a session.
    if arguments is None:
        return None
    if not isinstance(arguments, Mapping):
        return "tool arguments must be a JSON object"
    try:
        json.dumps(arguments)
    except (TypeError, ValueError) as exc:
        return f"tool arguments must be plain JSON: {exc}"
    return None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _count(outcome: ToolCallOutcome) -> None:
    from workbench.runtime._mcp_metrics import count_call

    if outcome.denied:
        label = "denied"
    else:
        label = "ok" if outcome.ok else (outcome.reason or "error")
    tool = outcome.tool if outcome.plugin else "unknown"
    count_call(outcome.plugin or "none", tool, label)


# ---------------------------------------------------------------- process-wide default gateway

_default_gateway: PluginGateway | None = None
_default_lock = threading.Lock()


def default_gateway() -> PluginGateway:
    """The process-wide gateway used by :func:`call_tool` (created on first use, closed at exit)."""
    global _default_gateway
    with _default_lock:
        if _default_gateway is None:
            _default_gateway = PluginGateway()
            atexit.register(_default_gateway.close)
        return _default_gateway


def call_tool(
    services: Any, tenant_id: str, agent_name: str, pins: Sequence[PluginPin | Mapping[str, Any]],
    tool_name: str, arguments: Mapping[str, Any] | None = None, timeout_s: float | None = None,
) -> ToolCallOutcome:
    """:meth:`PluginGateway.call_tool` on the :func:`default_gateway`."""
    return default_gateway().call_tool(services, tenant_id, agent_name, pins, tool_name, arguments, timeout_s)


async def acall_tool(
    services: Any, tenant_id: str, agent_name: str, pins: Sequence[PluginPin | Mapping[str, Any]],
    tool_name: str, arguments: Mapping[str, Any] | None = None, timeout_s: float | None = None,
) -> ToolCallOutcome:
    """:meth:`PluginGateway.acall_tool` on the :func:`default_gateway`."""
    return await default_gateway().acall_tool(services, tenant_id, agent_name, pins, tool_name, arguments, timeout_s)
