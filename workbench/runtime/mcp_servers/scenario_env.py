"""One scenario's environment as an MCP server: its tools, plus ``answer``, which ends the run.

What it is for: any MCP client (an agent session through the plugin gateway, another agent
framework, an IDE) can act in a workbench environment. Each server process runs one episode of one
scenario — tool calls become environment steps, the final ``answer`` is judged by the scenario's
checker — and the events go where the environment sends them (nowhere, when run standalone).

    python -m workbench.runtime.mcp_servers.scenario_env --scenario calculator-test-0003 [--seed 0]

Register it as a plugin like any stdio server (absolute interpreter path, as MCP clients start
servers with a minimal environment)::

    {"name": "calc-task", "version": "1.0.0",
     "transport": {"command": ["/path/to/python", "-m", "workbench.runtime.mcp_servers.scenario_env",
                               "--scenario", "calculator-test-0003"]}}
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

ANSWER_TOOL = "answer"


def build_server(scenario: str, *, seed: int = 0, library: Path | None = None) -> Any:
    """An MCP server (not started) wrapping a fresh run of ``scenario``."""
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server

    import workbench.envs as envs

    env = envs.make(envs.find_scenario(scenario, library), seed=seed)
    observation, _ = env.reset()
    tools = [
        types.Tool(name=s["function"]["name"], description=s["function"].get("description") or "",
                   input_schema=s["function"].get("parameters") or {"type": "object", "properties": {}})
        for s in env.tool_schemas()
    ]
    tools.append(types.Tool(
        name=ANSWER_TOOL, description="Give the final answer; the scenario's checker judges it and the run ends.",
        input_schema={"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
    ))

    async def list_tools(_ctx, _params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(_ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = params.arguments or {}
        if env.done:
            text, failed = f"the run has ended ({env.status}: {env.result.reason})", True
        else:
            action = ({"answer": arguments.get("answer")} if params.name == ANSWER_TOOL
                      else {"tool": params.name, "arguments": arguments})
            # Environment steps block (sandboxed tools, browsers): keep the event loop free.
            text, *_ = await anyio.to_thread.run_sync(env.step, action)
            failed = text.startswith("error:")
            if env.done:
                text = f"{text}\n[status: {env.status}; score: {env.result.score}]"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=failed)

    return Server("workbench-scenario-env", version="1.0.0", instructions=f"{env.instructions}\n\n{observation}",
                  on_list_tools=list_tools, on_call_tool=call_tool)


def main(argv: list[str] | None = None) -> None:
    """Serve one scenario over stdio."""
    import anyio
    from mcp.server.stdio import stdio_server

    parser = argparse.ArgumentParser(prog="python -m workbench.runtime.mcp_servers.scenario_env", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", required=True, help="a scenario name, e.g. hello or calculator-test-0003")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--library", type=Path, default=None, help="scenario directory (default: ./scenarios)")
    args = parser.parse_args(argv)
    server = build_server(args.scenario, seed=args.seed, library=args.library)

    async def serve() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(serve)


if __name__ == "__main__":
    main()
