"""Toolbox: a small MCP server with a calculator, a persistent key-value store and a sleep tool.

Tools:

* ``calculator(expression)`` — arithmetic on numbers with ``+ - * / // % **``, parentheses,
  the constants ``pi``/``e`` and the functions ``abs round min max sqrt floor ceil log exp``.
  The expression is parsed, never evaluated as Python code.
* ``kv_get(key)``, ``kv_set(key, value)``, ``kv_list(prefix="")`` — string values kept in a JSON
  file, so they survive restarts of the server.
* ``sleep(seconds)`` — waits, then answers; exists to exercise client timeouts.

Run it over stdio (the way an MCP client starts it as a subprocess)::

    python -m workbench.runtime.mcp_servers.toolbox [--store PATH]

or as a streamable-HTTP server on 127.0.0.1 (endpoint ``http://127.0.0.1:PORT/mcp``)::

    python -m workbench.runtime.mcp_servers.toolbox --http --port 8765 [--store PATH]

The store file is ``--store``, else ``$WORKBENCH_TOOLBOX_STORE``, else
``<system temp dir>/workbench-toolbox/kv.json``.

Register it as a workbench plugin with, for example::

    {"name": "toolbox", "version": "1.0.0",
     "transport": {"command": ["/path/to/python", "-m", "workbench.runtime.mcp_servers.toolbox"]},
     "scopes": {"read": ["calculator", "kv_get", "kv_list"], "write": ["kv_set"]}}
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import operator
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

STORE_ENV = "WORKBENCH_TOOLBOX_STORE"
MAX_EXPRESSION_CHARS = 500
MAX_KEY_CHARS = 200
MAX_VALUE_CHARS = 10_000
MAX_KEYS = 1_000
MAX_SLEEP_S = 3_600.0

# Bounds that keep one expression from eating the CPU or memory (``9**9**9`` would).
_MAX_EXPONENT = 1_000
_MAX_MAGNITUDE = 1e300

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_FUNCTIONS = {
    "abs": abs, "round": round, "min": min, "max": max, "sqrt": math.sqrt, "floor": math.floor,
    "ceil": math.ceil, "log": math.log, "exp": math.exp,
}


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, or its value cannot be computed."""


def calculate(expression: str) -> int | float:
    """Evaluate an arithmetic expression by walking its syntax tree (no ``eval``)."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise CalculatorError(f"not an arithmetic expression: {expression!r}") from None
    try:
        value = _evaluate(tree.body)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, CalculatorError):
            raise
        raise CalculatorError(f"cannot compute: {exc}") from None
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        raise CalculatorError("the result is not a finite number")
    return value


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise CalculatorError(f"exponent {right} is larger than {_MAX_EXPONENT}")
        value = _BINARY[type(node.op)](left, right)
        if isinstance(value, complex):
            raise CalculatorError("the result is not a real number")
        if abs(value) > _MAX_MAGNITUDE:
            raise CalculatorError("the result is too large")
        return value
    if (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
        and not node.keywords and node.args
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(arg) for arg in node.args))
    what = node.id if isinstance(node, ast.Name) else type(node).__name__
    raise CalculatorError(f"unsupported element in expression: {what}")


def _format_number(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class KeyValueStore:
    """String values by key in one JSON file, rewritten atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Sync tools run on worker threads, so concurrent calls share this lock.
        self._lock = threading.Lock()

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> str | None:
        """The value of ``key``, or None."""
        with self._lock:
            return self._load().get(key)

    def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (bounded sizes; replaces an existing value)."""
        if not key or len(key) > MAX_KEY_CHARS:
            raise ValueError(f"a key must have 1 to {MAX_KEY_CHARS} characters")
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"a value must have at most {MAX_VALUE_CHARS} characters")
        with self._lock:
            data = self._load()
            if key not in data and len(data) >= MAX_KEYS:
                raise ValueError(f"the store is full ({MAX_KEYS} keys)")
            data[key] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Write-then-rename so a crash never leaves a half-written file behind.
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".kv-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False, sort_keys=True)
            os.replace(tmp, self.path)

    def keys(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with ``prefix``."""
        with self._lock:
            return sorted(k for k in self._load() if k.startswith(prefix))


def default_store_path() -> Path:
    """``$WORKBENCH_TOOLBOX_STORE`` or ``<tempdir>/workbench-toolbox/kv.json``."""
    configured = os.environ.get(STORE_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "workbench-toolbox" / "kv.json"


def build_server(store_path: Path | None = None, *, log_level: str = "WARNING") -> Any:
    """The toolbox as an ``MCPServer`` (not started) keeping its store at ``store_path``."""
    import anyio
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    store = KeyValueStore(store_path or default_store_path())
    server = MCPServer(
        "workbench-toolbox",
        version="1.0.0",
        instructions="Arithmetic and a small persistent key-value store.",
        log_level=log_level,
    )

    @server.tool(structured_output=False)
    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression such as "(2 + 3) * 4" or "sqrt(2) / 2" and return the number."""
        try:
            return _format_number(calculate(expression))
        except CalculatorError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(structured_output=False)
    def kv_get(key: str) -> str:
        """Return the value stored under a key."""
        value = store.get(key)
        if value is None:
            raise ToolError(f"no value is stored under {key!r}")
        return value

    @server.tool(structured_output=False)
    def kv_set(key: str, value: str) -> str:
        """Store a string value under a key, replacing any earlier value."""
        try:
            store.set(key, value)
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        return f"stored {key!r}"

    @server.tool(structured_output=False)
    def kv_list(prefix: str = "") -> str:
        """List the stored keys (optionally only those starting with a prefix) as a JSON array."""
        return json.dumps(store.keys(prefix))

    @server.tool(structured_output=False)
    async def sleep(seconds: float) -> str:
        """Wait for a number of seconds, then answer (for testing timeouts)."""
        await anyio.sleep(max(0.0, min(seconds, MAX_SLEEP_S)))
        return f"slept {seconds:g} s"

    return server


def main(argv: list[str] | None = None) -> None:
    """Command line: stdio by default, ``--http --port P`` for streamable HTTP on 127.0.0.1."""
    parser = argparse.ArgumentParser(
        prog="python -m workbench.runtime.mcp_servers.toolbox",
        description="MCP toolbox server: calculator, key-value store, sleep.",
    )
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port on 127.0.0.1 (with --http)")
    parser.add_argument(
        "--store", type=Path, default=None, help=f"key-value JSON file (default: ${STORE_ENV} or a temp dir)"
    )
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    server = build_server(args.store, log_level=args.log_level)
    if args.http:
        # Loopback only: the store has no authentication.
        server.run("streamable-http", host="127.0.0.1", port=args.port)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
