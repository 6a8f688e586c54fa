"""MCP tool gateway against real MCP servers: the shipped toolbox over stdio and streamable HTTP.

Register / list / resolve / call / deny, version pinning, timeouts and registration errors. The
servers are real subprocesses spoken to through the ``mcp`` client; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.conftest import free_port
from workbench.config import Settings
from workbench.errors import ConflictError, NotFoundError, ValidationFailed
from workbench.runtime.plugins import (
    PluginGateway,
    PluginPin,
    PluginSpec,
    StdioTransport,
    get_plugin,
    list_plugins,
    register_plugin,
    resolve_tools,
)
from workbench.security.tenants import create_tenant

pytestmark = pytest.mark.integration

TOOLBOX = [sys.executable, "-m", "workbench.runtime.mcp_servers.toolbox"]
READ_WRITE = {"read": ["calculator", "kv_get", "kv_list"], "write": ["kv_set"], "slow": ["sleep"]}


def _violations(plugin: str, tool: str, reason: str) -> float:
    labels = {"plugin": plugin, "tool": tool, "reason": reason}
    return REGISTRY.get_sample_value("workbench_tool_safety_violations_total", labels) or 0.0


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("plugins")


@pytest.fixture(scope="module")
def services(home):
    """Real control plane in a temp home (no redactor needed here)."""
    from workbench.services import Services

    svc = Services(Settings(home=home / "home"))
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def tenant(services) -> str:
    return create_tenant(services.control, "plugins-tenant")[0].id


@pytest.fixture(scope="module")
def toolbox_http(home):
    """The toolbox as a streamable-HTTP server on a free loopback port; yields its MCP URL."""
    port = free_port()
    log = open(home / "toolbox-http.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*TOOLBOX, "--http", "--port", str(port), "--store", str(home / "kv-http.json")],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"toolbox --http exited with {proc.returncode}; see {log.name}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("toolbox --http did not listen in time") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def toolbox(services, tenant, home):
    """Two stdio versions of the toolbox: 1.0.0 exposes only the calculator, 1.1.0 adds the kv tools."""
    v1 = register_plugin(services, tenant, PluginSpec(
        name="toolbox", version="1.0.0",
        transport=StdioTransport(command=[*TOOLBOX, "--store", str(home / "kv-stdio.json")]),
        scopes={"read": ["calculator"], "slow": ["sleep"]}, description="calculator only",
    ))
    v2 = register_plugin(services, tenant, {
        "name": "toolbox", "version": "1.1.0",
        "transport": {"stdio": {"command": TOOLBOX, "env": {"WORKBENCH_TOOLBOX_STORE": str(home / "kv-stdio.json")}}},
        "scopes": READ_WRITE,
    })
    return v1, v2


@pytest.fixture(scope="module")
def gateway():
    with PluginGateway() as gw:
        yield gw


def test_registration_discovers_and_stores_tools(services, tenant, toolbox):
    v1, v2 = toolbox
    assert {t.name for t in v1.tools} == {"calculator", "kv_get", "kv_set", "kv_list", "sleep"}
    calc = next(t for t in v2.tools if t.name == "calculator")
    assert calc.parameters["properties"]["expression"]["type"] == "string"
    assert calc.parameters["required"] == ["expression"]
    assert "arithmetic" in calc.description and calc.scopes == ["read"]

    # Stored, not just returned: read back through the registry.
    assert get_plugin(services, tenant, "toolbox").version == "1.1.0"  # latest
    stored = get_plugin(services, tenant, "toolbox", "1.0.0")
    assert stored.id == v1.id and stored.spec.scopes == {"read": ["calculator"], "slow": ["sleep"]}
    assert [t.name for t in stored.tools] == [t.name for t in v1.tools]
    assert [(p.name, p.version) for p in list_plugins(services, tenant, "toolbox")] == [
        ("toolbox", "1.0.0"), ("toolbox", "1.1.0"),
    ]
    assert stored.tools[0].to_tool_spec().name == stored.tools[0].name
    with pytest.raises(NotFoundError):
        get_plugin(services, tenant, "toolbox", "9.9.9")


def test_stdio_calls_reuse_one_session(services, tenant, toolbox, gateway):
    pins = [PluginPin(name="toolbox", version="1.1.0", scopes=["read", "write"])]
    call = lambda tool, args: gateway.call_tool(services, tenant, "helper", pins, tool, args)  # noqa: E731

    out = call("calculator", {"expression": "(2 + 3) * 4"})
    assert (out.ok, out.content, out.denied, out.plugin, out.version) == (True, "20", False, "toolbox", "1.1.0")
    assert out.latency_ms > 0
    assert call("kv_set", {"key": "greeting", "value": "hello"}).ok
    assert call("kv_get", {"key": "greeting"}).content == "hello"
    assert json.loads(call("kv_list", {}).content) == ["greeting"]

    # Tool-level errors come back as results, not exceptions, and are not violations.
    bad = call("calculator", {"expression": "__import__('os').system('true')"})
    assert not bad.ok and not bad.denied and bad.reason == "tool_error" and "unsupported" in bad.error
    assert call("calculator", {"expression": "1/0"}).reason == "tool_error"
    assert call("calculator", {}).reason == "tool_error"  # schema violation, reported by the server

    stats = gateway.stats()
    assert "toolbox@1.1.0" in stats["open"]
    opened = stats["connections_opened"]
    for _ in range(3):
        assert call("calculator", {"expression": "1+1"}).content == "2"
    assert gateway.stats()["connections_opened"] == opened  # no new process per call


def test_http_plugin_register_and_call(services, tenant, toolbox_http, gateway):
    info = register_plugin(services, tenant, {
        "name": "toolbox-http", "version": "0.1.0", "transport": {"url": toolbox_http},
        "scopes": {"read": ["calculator", "kv_get", "kv_list"], "write": ["kv_set"]},
    })
    assert info.spec.transport.kind == "http" and len(info.tools) == 5
    pins = [{"name": "toolbox-http", "version": "0.1.0", "scopes": ["read", "write"]}]
    assert {t.name for t in resolve_tools(services, tenant, "helper", pins)} == {
        "calculator", "kv_get", "kv_set", "kv_list",
    }
    assert gateway.call_tool(services, tenant, "helper", pins, "kv_set", {"key": "k", "value": "v"}).ok
    out = gateway.call_tool(services, tenant, "helper", pins, "kv_get", {"key": "k"})
    assert out.ok and out.content == "v"

    async def async_path():
        return await gateway.acall_tool(services, tenant, "helper", pins, "calculator", {"expression": "2**10"})

    assert asyncio.run(async_path()).content == "1024"


def test_denied_calls_are_errors_and_violations(services, tenant, toolbox, toolbox_http, gateway):
    register_plugin(services, tenant, {
        "name": "private-box", "version": "1.0.0", "transport": {"url": toolbox_http},
        "scopes": {"read": ["calculator"]}, "allowed_agents": ["alice"],
    })
    private = [{"name": "private-box", "version": "1.0.0", "scopes": ["read"]}]
    assert [t.name for t in resolve_tools(services, tenant, "alice", private)] == ["calculator"]
    with pytest.raises(ValidationFailed) as exc:
        resolve_tools(services, tenant, "mallory", private)
    assert exc.value.field == "pins[0]" and "may not use" in exc.value.reason

    before = _violations("private-box", "calculator", "agent_not_allowed")
    out = gateway.call_tool(services, tenant, "mallory", private, "calculator", {"expression": "1+1"})
    assert out.denied and not out.ok and out.reason == "agent_not_allowed"
    assert "mallory" in out.error and "private-box" in out.error and out.content == out.error
    assert _violations("private-box", "calculator", "agent_not_allowed") == before + 1
    assert gateway.call_tool(services, tenant, "alice", private, "calculator", {"expression": "1+1"}).content == "2"

    read_only = [{"name": "toolbox", "version": "1.1.0", "scopes": ["read"]}]
    before = _violations("toolbox", "kv_set", "scope_not_granted")
    out = gateway.call_tool(services, tenant, "helper", read_only, "kv_set", {"key": "x", "value": "y"})
    assert out.denied and out.reason == "scope_not_granted" and "'write'" in out.error
    assert _violations("toolbox", "kv_set", "scope_not_granted") == before + 1

    before = _violations("none", "unknown", "unknown_tool")
    out = gateway.call_tool(services, tenant, "helper", read_only, "delete_everything", {})
    assert out.denied and out.reason == "unknown_tool" and "delete_everything" in out.error
    assert _violations("none", "unknown", "unknown_tool") == before + 1

    # Another tenant sees none of these plugins.
    other = create_tenant(services.control, "other-tenant")[0].id
    assert list_plugins(services, other) == []
    with pytest.raises(ValidationFailed):
        gateway.call_tool(services, other, "helper", read_only, "calculator", {"expression": "1"})


def test_version_pinning_is_explicit(services, tenant, toolbox, gateway):
    old = [PluginPin(name="toolbox", version="1.0.0", scopes=["read"])]
    new = [PluginPin(name="toolbox", version="1.1.0", scopes=["read", "write"])]
    assert [t.name for t in resolve_tools(services, tenant, "helper", old)] == ["calculator"]
    assert {t.name for t in resolve_tools(services, tenant, "helper", new)} == {
        "calculator", "kv_get", "kv_list", "kv_set",
    }
    assert {t.version for t in resolve_tools(services, tenant, "helper", new)} == {"1.1.0"}

    out = gateway.call_tool(services, tenant, "helper", old, "kv_get", {"key": "greeting"})
    assert out.denied and out.reason == "scope_not_granted" and out.version == "1.0.0"
    out = gateway.call_tool(services, tenant, "helper", old, "calculator", {"expression": "6*7"})
    assert out.ok and out.content == "42" and out.version == "1.0.0"

    with pytest.raises(ValidationFailed) as exc:
        resolve_tools(services, tenant, "helper", [{"name": "toolbox", "version": "2.0.0", "scopes": ["read"]}])
    assert exc.value.field == "pins[0].version" and "1.0.0, 1.1.0" in exc.value.reason
    with pytest.raises(ValidationFailed) as exc:
        resolve_tools(services, tenant, "helper", [{"name": "toolbox", "version": "1.0.0", "scopes": ["write"]}])
    assert exc.value.field == "pins[0].scopes"
    with pytest.raises(ValidationFailed) as exc:
        resolve_tools(services, tenant, "helper", [{"name": "nope", "version": "1.0.0", "scopes": ["read"]}])
    assert exc.value.field == "pins[0].name"


def test_hung_call_times_out_cleanly(services, tenant, toolbox, gateway):
    pins = [PluginPin(name="toolbox", version="1.0.0", scopes=["read", "slow"])]
    started = time.monotonic()
    out = gateway.call_tool(services, tenant, "helper", pins, "sleep", {"seconds": 60}, timeout_s=0.5)
    assert time.monotonic() - started < 10
    assert not out.ok and not out.denied and out.reason == "timeout" and "0.5 s" in out.error
    # The hung session was dropped; the next call gets a fresh one and works.
    out = gateway.call_tool(services, tenant, "helper", pins, "calculator", {"expression": "2+2"})
    assert out.ok and out.content == "4"


def test_registration_errors_store_nothing(services, tenant, toolbox, toolbox_http, tmp_path):
    count = len(list_plugins(services, tenant))
    with pytest.raises(ConflictError):
        register_plugin(services, tenant, {"name": "toolbox", "version": "1.0.0", "transport": {"command": TOOLBOX}})

    with pytest.raises(ValidationFailed) as exc:
        register_plugin(services, tenant, {
            "name": "bad-scope", "version": "1.0.0", "transport": {"url": toolbox_http},
            "scopes": {"read": ["calculator"], "write": ["kv_set", "rm_rf"]},
        })
    assert exc.value.field == "scopes.write" and "rm_rf" in exc.value.reason and "kv_set" in exc.value.reason

    with pytest.raises(ValidationFailed) as exc:
        register_plugin(services, tenant, {"name": "ghost", "version": "1.0.0",
                                           "transport": {"command": [str(tmp_path / "no-such-server")]}})
    assert exc.value.field == "transport" and "cannot start" in exc.value.reason

    crash = [sys.executable, "-c", "import sys; sys.stderr.write('config missing\\n'); sys.exit(3)"]
    with pytest.raises(ValidationFailed) as exc:
        register_plugin(services, tenant, {"name": "crash", "version": "1.0.0", "transport": {"command": crash}})
    assert exc.value.field == "transport" and "exited" in exc.value.reason and "config missing" in exc.value.reason

    silent = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(ValidationFailed) as exc:
        register_plugin(services, tenant, {"name": "silent", "version": "1.0.0", "transport": {"command": silent},
                                           "connect_timeout_s": 1})
    assert exc.value.field == "transport" and "handshake" in exc.value.reason

    with pytest.raises(ValidationFailed) as exc:
        register_plugin(services, tenant, {"name": "down", "version": "1.0.0",
                                           "transport": {"url": f"http://127.0.0.1:{free_port()}/mcp"}})
    assert exc.value.field == "transport" and "cannot reach" in exc.value.reason

    with pytest.raises(ValidationFailed) as exc:
        register_plugin(services, tenant, {"name": "x", "version": "latest", "transport": {"command": TOOLBOX}})
    assert exc.value.field == "version"
    with pytest.raises(ValidationFailed) as exc:
        register_plugin(services, tenant, {"name": "x", "version": "1.0.0", "transport": {}})
    assert exc.value.field == "transport"
    with pytest.raises(NotFoundError):
        register_plugin(services, "ten_missing", {"name": "x", "version": "1.0.0", "transport": {"command": TOOLBOX}})

    assert len(list_plugins(services, tenant)) == count


def test_default_scope_and_agent_tool_fn(services, tenant, toolbox_http, gateway):
    from workbench.agents import ToolCall

    info = register_plugin(
        services, tenant, {"name": "open-box", "version": "1.0.0", "transport": {"url": toolbox_http}}
    )
    assert set(info.spec.scopes) == {"all"} and len(info.spec.scopes["all"]) == 5
    run = gateway.tool_fn(services, tenant, "helper", [{"name": "open-box", "version": "1.0.0", "scopes": ["all"]}])
    result = run(ToolCall(id="c1", name="calculator", arguments={"expression": "3*3"}))
    assert (result.call_id, result.content, result.is_error) == ("c1", "9", False)


def test_an_environment_served_over_mcp(services, tenant):
    """A scenario's tools reach agents through the gateway; the answer is judged by the checker."""
    tenant_id = tenant
    command = [sys.executable, "-m", "workbench.runtime.mcp_servers.scenario_env", "--scenario", "hello",
               "--library", str(Path(__file__).resolve().parents[2] / "scenarios")]
    info = register_plugin(services, tenant_id, {"name": "hello-env", "version": "1.0.0", "transport": {"command": command}})
    assert {t.name for t in info.tools} == {"echo", "answer"}
    pins = [{"name": "hello-env", "version": "1.0.0", "scopes": ["all"]}]
    with PluginGateway() as gateway:
        echoed = gateway.call_tool(services, tenant_id, "any-agent", pins, "echo", {"text": "hello"})
        assert echoed.ok and "hello" in echoed.content
        judged = gateway.call_tool(services, tenant_id, "any-agent", pins, "answer", {"answer": "hello"})
        assert judged.ok and "status: success" in judged.content
        after = gateway.call_tool(services, tenant_id, "any-agent", pins, "echo", {"text": "again"})
        assert not after.ok and "the run has ended" in after.content
