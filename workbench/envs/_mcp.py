"""Tools from MCP servers: a small stdio JSON-RPC client (initialize, tools/list, tools/call).

A server named in a scenario's ``tools`` (``{mcp: {name, command}}``) is started per run in the
run's directory, in its own process group (killed with the run) and with a CPU limit. It is
scenario infrastructure, not agent-supplied code, so it is not audit-hooked like the sandbox.
Calls and their results are recorded in the trace so a replay answers from the recording.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from concurrent.futures import Future
from typing import Any

from workbench.envs._spec import McpServer, ToolSpec

PROTOCOL_VERSION = "2025-06-18"


class McpError(Exception):
    """The server answered with an error, or could not be reached."""


class _StdioServer:
    """One MCP server process spoken to over newline-delimited JSON-RPC on stdin/stdout."""

    def __init__(self, server: McpServer, *, workdir: str, cpu_s: float, timeout: float) -> None:
        assert server.command is not None
        self.name = server.name
        self.timeout = timeout
        self._next_id = 0
        self._pending: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        log = open(os.path.join(workdir, f"mcp-{server.name}.log"), "ab")  # noqa: SIM115 - owned by the process
        try:
            self.process = subprocess.Popen(
                server.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=workdir,
                process_group=0,
            )
        except OSError as exc:
            raise McpError(f"cannot start {server.command[0]!r}: {exc.strerror}") from None
        finally:
            log.close()
        try:
            import resource

            cpu = int(cpu_s) + 30  # interpreter start-up is not the run's fault
            resource.prlimit(self.process.pid, resource.RLIMIT_CPU, (cpu, cpu + 1))
        except (OSError, AttributeError):
            pass
        self._reader = threading.Thread(target=self._read, name=f"wb-mcp-{server.name}", daemon=True)
        self._reader.start()
        self.request(
            "initialize",
            {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "workbench", "version": "0.1"}},
        )
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise McpError(f"MCP server {self.name} is not running (exit code {self.process.poll()})") from None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # servers may print noise; only JSON-RPC lines count
            if not isinstance(message, dict):
                continue
            if "method" in message and "id" in message:
                # a request from the server (roots, sampling...): not offered by this client
                self._send_quiet({"jsonrpc": "2.0", "id": message["id"],
                                  "error": {"code": -32601, "message": "not supported by this client"}})
                continue
            future = self._pending.pop(message.get("id"), None) if "id" in message else None
            if future is not None and not future.done():
                future.set_result(message)
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(McpError(f"MCP server {self.name} exited (code {self.process.poll()})"))

    def _send_quiet(self, message: dict[str, Any]) -> None:
        try:
            self._send(message)
        except McpError:
            pass

    def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send a request and wait for its result; raises McpError or TimeoutError."""
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            future: Future[Any] = Future()
            self._pending[request_id] = future
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)
        try:
            reply = future.result(timeout=self.timeout)
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise
        if "error" in reply:
            error = reply["error"] or {}
            raise McpError(str(error.get("message", error)))
        return reply.get("result")

    def close(self) -> None:
        """Kill the server and everything it started."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def _content_text(result: dict[str, Any]) -> Any:
    parts = result.get("content") or []
    texts = [p.get("text", "") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    if texts and len(texts) == len(parts):
        return "\n".join(texts)
    if result.get("structuredContent") is not None:
        return result["structuredContent"]
    return parts


class McpTools:
    """The tools of one run's MCP servers, by name.

    ``recorded`` (from a trace) replays listed tools and call results instead of starting the
    servers; ``recording`` receives what a live run saw.
    """

    def __init__(
        self,
        servers: list[McpServer],
        *,
        workdir: str,
        cpu_s: float,
        timeout: float,
        recorded: dict[str, Any] | None = None,
    ) -> None:
        self._servers: dict[str, _StdioServer] = {}
        self._owner: dict[str, str] = {}
        self._specs: list[ToolSpec] = []
        self._replay = recorded
        self._replay_calls = list((recorded or {}).get("calls", []))
        self.recording: dict[str, Any] = {"tools": [], "calls": []}
        if recorded is not None:
            listed = recorded.get("tools", [])
        else:
            listed = []
            try:
                for server in servers:
                    if server.command is None:
                        raise McpError(f"MCP server {server.name}: only stdio servers (command) are supported")
                    live = _StdioServer(server, workdir=workdir, cpu_s=cpu_s, timeout=timeout)
                    self._servers[server.name] = live
                    tools = self._list(live)
                    wanted = set(server.tools) if server.tools is not None else None
                    listed.extend({**t, "server": server.name} for t in tools if wanted is None or t["name"] in wanted)
            except BaseException:
                self.close()
                raise
        for tool in listed:
            self._owner[tool["name"]] = tool["server"]
            # taken as the server describes it: its schema is not ours to reject
            self._specs.append(
                ToolSpec.model_construct(
                    name=tool["name"],
                    description=tool.get("description") or "",
                    parameters=tool.get("inputSchema") or {"type": "object", "properties": {}},
                    handler=None,
                )
            )
        self.recording["tools"] = listed

    @staticmethod
    def _list(server: _StdioServer) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor = None
        while True:
            result = server.request("tools/list", {"cursor": cursor} if cursor else None) or {}
            for tool in result.get("tools", []):
                tools.append({"name": tool["name"], "description": tool.get("description"),
                              "inputSchema": tool.get("inputSchema")})
            cursor = result.get("nextCursor")
            if not cursor:
                return tools

    def tool_specs(self) -> list[ToolSpec]:
        """The servers' tools as :class:`ToolSpec` (no handler: they run on the server)."""
        return list(self._specs)

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call a tool; returns its text (or structured) content; raises McpError on a tool error."""
        if self._replay is not None:
            if not self._replay_calls:
                raise McpError("replay: no recorded MCP call left")
            item = self._replay_calls.pop(0)
            if item.get("error"):
                raise McpError(item["error"])
            return item["content"]
        server = self._servers[self._owner[name]]
        try:
            result = server.request("tools/call", {"name": name, "arguments": arguments}) or {}
        except McpError as exc:
            self.recording["calls"].append({"name": name, "error": str(exc)})
            raise
        content = _content_text(result)
        if result.get("isError"):
            self.recording["calls"].append({"name": name, "error": str(content)})
            raise McpError(str(content))
        self.recording["calls"].append({"name": name, "content": content})
        return content

    def close(self) -> None:
        """Stop every server."""
        for server in self._servers.values():
            server.close()
        self._servers.clear()
