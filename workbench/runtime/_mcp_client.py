"""MCP client plumbing of the plugin gateway: one event-loop thread, pooled sessions, discovery.

Every MCP client session of a gateway lives on one private asyncio loop running in a daemon
thread. The SDK's ``Client`` is an async context manager built on task groups, which must be
entered and exited by the same task, and its streams are bound to the loop that opened them; a
dedicated loop lets sync callers (the agent loop) and async callers (the REST API, on its own
loop) share the same long-lived sessions.

Each pooled connection is owned by one task that enters ``Client(...)``, parks until asked to
stop, and exits it again, so the SDK's shutdown (close stdin, SIGTERM, SIGKILL for stdio; DELETE
for HTTP) always runs where it should. Calls are made from other tasks on the same loop; MCP
multiplexes concurrent requests over one session, so one connection per plugin version suffices.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("workbench.runtime.plugins")

T = TypeVar("T")

# Extra time the gateway gives the SDK's own request timeout before abandoning the call itself.
_CALL_GRACE_S = 5.0
_STDERR_TAIL_CHARS = 600


class ConnectFailed(Exception):
    """The MCP server could not be started, reached or initialized; the message says why."""


class CallFailed(Exception):
    """A call failed below the tool level.

    ``kind``: ``timeout`` (no answer in time), ``unavailable`` (the connection broke; it should be
    discarded) or ``error`` (the server answered with a protocol error; the session is still good).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------- transports and errors


class _Stderr:
    """The file a stdio server's stderr goes to, and where this connection's output starts in it."""

    def __init__(self, stack: contextlib.ExitStack, log_path: Path | None) -> None:
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self.file = stack.enter_context(open(log_path, "a+", encoding="utf-8", errors="replace"))  # noqa: SIM115
        else:
            self.file = stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace"))
        self.start = self.file.seek(0, 2)

    def tail(self) -> str:
        """The last few hundred characters the server wrote since this connection started."""
        try:
            end = self.file.seek(0, 2)
            self.file.seek(max(self.start, end - 4 * _STDERR_TAIL_CHARS))
            text = self.file.read().strip()
        except (OSError, ValueError):
            return ""
        return text[-_STDERR_TAIL_CHARS:]


def _client_target(transport: Any, stack: contextlib.ExitStack, log_path: Path | None) -> tuple[Any, _Stderr | None]:
    """What ``mcp.Client`` connects to: a stdio transport (server stderr to a file) or a URL."""
    if transport.kind == "http":
        return transport.url, None
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=transport.command[0], args=list(transport.command[1:]),
        env=dict(transport.env) or None, cwd=transport.cwd,
    )
    # The server's stderr goes to a real file (the subprocess needs a file descriptor), so a
    # failed start can quote what the server said.
    stderr = _Stderr(stack, log_path)
    return stdio_client(params, errlog=stderr.file), stderr


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(_leaves(inner))
        return out
    return [exc]


def describe_connect_error(transport: Any, exc: BaseException, timeout_s: float, stderr: _Stderr | None = None) -> str:
    """A one-paragraph reason why connecting to ``transport`` failed, for people and logs."""
    from mcp import MCPError
    from mcp_types import CONNECTION_CLOSED

    leaves = [e for e in _leaves(exc) if not isinstance(e, asyncio.CancelledError)] or [exc]
    first = leaves[0]
    where = f"command {transport.command[0]!r}" if transport.kind == "stdio" else f"URL {transport.url}"
    if isinstance(first, TimeoutError):
        reason = f"{where} did not complete the MCP handshake within {timeout_s:g} s"
    elif isinstance(first, FileNotFoundError) and transport.kind == "stdio":
        reason = f"cannot start {transport.command[0]!r}: no such file or command"
    elif isinstance(first, PermissionError) and transport.kind == "stdio":
        reason = f"cannot start {transport.command[0]!r}: permission denied"
    elif isinstance(first, OSError) and transport.kind == "stdio":
        reason = f"cannot start {transport.command[0]!r}: {first.strerror or first}"
    elif isinstance(first, MCPError) and first.code == CONNECTION_CLOSED and transport.kind == "stdio":
        reason = f"{where} exited before completing the MCP handshake"
    elif isinstance(first, MCPError):
        reason = f"{where} answered with an MCP error: {first.message} (code {first.code})"
        if transport.kind == "http" and first.message.lower() == "not found":
            reason += "; is this the MCP endpoint (usually ending in /mcp)?"
    else:
        text = str(first) or type(first).__name__
        if transport.kind == "http":
            reason = f"cannot reach {transport.url}: {text}"
        else:
            reason = f"{where} failed: {text}"
    tail = stderr.tail() if stderr is not None else ""
    if tail:
        reason += f"; server stderr: {tail}"
    return reason


def content_text(result: Any) -> str:
    """The text of a ``CallToolResult``: text blocks joined by newlines, other blocks summarized."""
    parts: list[str] = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {block.mime_type}]")
        elif kind == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource: {resource.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource: {block.uri}]")
        else:
            parts.append(f"[{kind or 'content'}]")
    return "\n".join(parts)


def tool_record(tool: Any) -> dict[str, Any]:
    """The stored form of a discovered ``mcp.Tool``: name, description, parameters (+ optional extras)."""
    record: dict[str, Any] = {
        "name": tool.name,
        "description": tool.description or "",
        "parameters": tool.input_schema or {"type": "object", "properties": {}},
    }
    if getattr(tool, "title", None):
        record["title"] = tool.title
    if tool.output_schema:
        record["output_schema"] = tool.output_schema
    if tool.annotations is not None:
        record["annotations"] = tool.annotations.model_dump(mode="json", exclude_none=True)
    return record


# Page cap so a server whose cursor never ends cannot hang discovery.
_MAX_TOOL_PAGES = 100


async def _list_all_tools(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(_MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


async def discover_tools(transport: Any, timeout_s: float) -> list[dict[str, Any]]:
    """Connect once, list every tool, disconnect. Raises :class:`ConnectFailed` with a clear reason."""
    from mcp import Client

    with contextlib.ExitStack() as stack:
        target, stderr = _client_target(transport, stack, None)
        try:
            async with asyncio.timeout(timeout_s):
                async with Client(target, cache=None) as client:
                    tools = await _list_all_tools(client)
        except Exception as exc:
            raise ConnectFailed(describe_connect_error(transport, exc, timeout_s, stderr)) from None
    return [tool_record(t) for t in tools]


def run_coroutine_in_thread(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a fresh event loop in a helper thread (safe even inside a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wb-mcp-once") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


# ---------------------------------------------------------------- pooled connections


class McpConnection:
    """One live MCP client session, owned by a task on the gateway loop."""

    def __init__(
        self, key: tuple[str, ...], transport: Any, *, log_path: Path | None, connect_timeout_s: float
    ) -> None:
        self.key = key
        self.transport = transport
        self.log_path = log_path
        self.connect_timeout_s = connect_timeout_s
        self.client: Any = None
        self.inflight = 0
        self.retired = False
        self.last_used = time.monotonic()
        self._ready: asyncio.Future[None] | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stderr: _Stderr | None = None

    @property
    def alive(self) -> bool:
        """Whether the session is open (or opening) and not retired."""
        return not self.retired and self._task is not None and not self._task.done()

    async def open(self) -> None:
        """Start the owner task and wait for the handshake; raises :class:`ConnectFailed`."""
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        # Retrieve the outcome even when nobody waits for it, so asyncio does not log it as lost.
        self._ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._stop = asyncio.Event()
        self._task = loop.create_task(self._own(), name=f"wb-mcp-{'/'.join(self.key)}")
        await self.wait_ready()

    async def wait_ready(self) -> None:
        """Wait until the handshake is done (shared by concurrent first callers)."""
        assert self._ready is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self.connect_timeout_s)
        except TimeoutError as exc:
            reason = describe_connect_error(self.transport, exc, self.connect_timeout_s, self._stderr)
            await self.aclose()
            raise ConnectFailed(reason) from None

    async def _own(self) -> None:
        from mcp import Client

        assert self._ready is not None and self._stop is not None
        try:
            with contextlib.ExitStack() as stack:
                target, self._stderr = _client_target(self.transport, stack, self.log_path)
                try:
                    async with Client(target, cache=None) as client:
                        self.client = client
                        self._ready.set_result(None)
                        await self._stop.wait()
                except Exception as exc:
                    # Described here, while the stderr file is still open.
                    if not self._ready.done():
                        reason = describe_connect_error(self.transport, exc, self.connect_timeout_s, self._stderr)
                        self._ready.set_exception(ConnectFailed(reason))
                    else:
                        log.info("MCP connection %s ended: %s", "/".join(self.key), exc)
        except asyncio.CancelledError:
            # Fail (not cancel) the shared future: a concurrent waiter must see a connect error,
            # not a cancellation of its own task.
            if not self._ready.done():
                self._ready.set_exception(ConnectFailed("the connection attempt was abandoned"))
            raise
        finally:
            self.client = None

    async def call(self, name: str, arguments: dict[str, Any], timeout_s: float) -> Any:
        """``tools/call`` with the SDK's timeout plus a hard outer bound; raises :class:`CallFailed`."""
        from mcp import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        client = self.client
        if client is None:
            raise CallFailed("unavailable", "the MCP connection is closed")
        self.inflight += 1
        self.last_used = time.monotonic()
        try:
            return await asyncio.wait_for(
                client.call_tool(name, arguments, read_timeout_seconds=timeout_s), timeout_s + _CALL_GRACE_S
            )
        except TimeoutError:
            raise CallFailed("timeout", f"tool {name!r} did not answer within {timeout_s:g} s") from None
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise CallFailed("timeout", f"tool {name!r} did not answer within {timeout_s:g} s") from None
            if exc.code == CONNECTION_CLOSED:
                raise CallFailed("unavailable", "the MCP server closed the connection") from None
            # A protocol-level error answer: the session itself is fine.
            message = f"the MCP server answered with an error: {exc.message} (code {exc.code})"
            raise CallFailed("error", message) from None
        except Exception as exc:
            leaves = _leaves(exc)
            text = "; ".join(str(e) or type(e).__name__ for e in leaves)
            raise CallFailed("unavailable", f"the MCP connection failed: {text}") from None
        finally:
            self.inflight -= 1
            self.last_used = time.monotonic()

    async def aclose(self, timeout_s: float = 15.0) -> None:
        """Stop the owner task (which shuts the session and any subprocess down)."""
        self.retired = True
        task = self._task
        if task is None or task.done():
            return
        if self._ready is not None and self._ready.done() and self._stop is not None:
            self._stop.set()
        else:
            task.cancel()  # still connecting: abandon the handshake
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        except BaseException:  # noqa: BLE001 - the task's own failure was logged there
            pass


class ConnectionPool:
    """Connections by key (plugin record id), least recently used closed beyond ``max_connections``.

    Only touched from the gateway loop, so it needs no lock.
    """

    def __init__(self, max_connections: int, idle_timeout_s: float) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.opened = 0
        self._conns: OrderedDict[tuple[str, ...], McpConnection] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def keys(self) -> list[tuple[str, ...]]:
        """Keys of the open connections, least recently used first."""
        return [k for k, c in self._conns.items() if c.alive]

    async def acquire(self, key: tuple[str, ...], factory: Callable[[], McpConnection]) -> McpConnection:
        """The open connection for ``key``, opening one if needed (raises :class:`ConnectFailed`)."""
        self._sweep_idle()
        conn = self._conns.get(key)
        if conn is not None and conn.alive:
            self._conns.move_to_end(key)
            await conn.wait_ready()
            return conn
        conn = factory()
        self._conns[key] = conn
        self._conns.move_to_end(key)
        self.opened += 1
        while len(self._conns) > self.max_connections:
            _, oldest = self._conns.popitem(last=False)
            self.retire(oldest)
        try:
            await conn.open()
        except BaseException:
            if self._conns.get(key) is conn:
                del self._conns[key]
            raise
        return conn

    def discard(self, conn: McpConnection) -> None:
        """Drop a connection that failed or timed out, so the next call opens a fresh one."""
        if self._conns.get(conn.key) is conn:
            del self._conns[conn.key]
        self.retire(conn)

    def retire(self, conn: McpConnection) -> None:
        """Close ``conn`` in the background once its in-flight calls are done."""
        conn.retired = True

        async def close_when_idle() -> None:
            deadline = time.monotonic() + conn.connect_timeout_s + 60
            while conn.inflight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await conn.aclose()

        task = asyncio.get_running_loop().create_task(close_when_idle())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _sweep_idle(self) -> None:
        # Close sessions idle longer than the limit: HTTP servers expire idle sessions on their side,
        # and idle stdio servers hold a process each.
        now = time.monotonic()
        for key, conn in list(self._conns.items()):
            if not conn.alive or (conn.inflight == 0 and now - conn.last_used > self.idle_timeout_s):
                del self._conns[key]
                self.retire(conn)

    async def aclose(self) -> None:
        """Close every connection and wait for them (bounded)."""
        for conn in list(self._conns.values()):
            self.retire(conn)
        self._conns.clear()
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=30)


class LoopThread:
    """An asyncio loop running forever in a daemon thread; coroutines are submitted to it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the loop thread is started."""
        return self._thread is not None and self._thread.is_alive()

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on the loop thread itself (where blocking on it would deadlock)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop (starting the thread on first use)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]

    def stop(self, final: Callable[[], Coroutine[Any, Any, None]] | None = None, timeout_s: float = 45.0) -> None:
        """Run ``final()`` on the loop (bounded), then stop the loop and join the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if final is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(final(), loop).result(timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        if not thread.is_alive():
            loop.close()
