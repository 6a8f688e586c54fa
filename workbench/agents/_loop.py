"""The multi-turn agent loop: generate, parse, run tools, feed results back, until an answer.

:func:`run_agent_loops` steps many episodes in lockstep so each step is one batched engine call
(the throughput path for rollouts); :func:`run_agent_loop` is the one-episode form. Every
assistant turn keeps its completion (prompt and completion token ids, logprobs), so a transcript
can become training rows without re-tokenizing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from workbench.agents._engine import Engine, EngineError, EngineTimeout
from workbench.agents._protocol import ParsedOutput, parse_tool_output
from workbench.agents._types import ChatRequest, Completion, Message, SamplingParams, ToolCall, ToolResult, ToolSpec

__all__ = ["AgentEpisode", "AgentTranscript", "AgentTurn", "EndReason", "ToolFn", "run_agent_loop", "run_agent_loops"]

ToolFn = Callable[[ToolCall], Any]
"""Runs one tool call. May return a :class:`ToolResult`, a string, or any JSON-able value (or an
awaitable of one); an exception becomes an error result shown to the model."""

EndReason = Literal["answer", "max_steps", "timeout", "engine_error"]

_FORMAT_HINT = 'Reply with one JSON object: {"tool": "<tool name>", "arguments": {...}} or {"answer": "..."}.'


class AgentTurn(BaseModel):
    """One assistant turn: what the model produced, how it was read, and the tool results."""

    step: int
    message_index: int = Field(description="Index of the assistant message in the transcript's messages.")
    completion: Completion
    parsed: ParsedOutput
    tool_results: list[ToolResult] = Field(default_factory=list)


class AgentTranscript(BaseModel):
    """A finished episode: every message (initial ones included) and every assistant turn."""

    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    turns: list[AgentTurn] = Field(default_factory=list)
    end_reason: EndReason
    answer: str | None = None
    error: str | None = None
    elapsed_s: float = 0.0

    @property
    def steps(self) -> int:
        """Number of assistant turns."""
        return len(self.turns)

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every parsed tool call, in order."""
        return [call for turn in self.turns for call in turn.parsed.tool_calls]

    @property
    def parse_errors(self) -> int:
        """Number of assistant turns that could not be read under the protocol."""
        return sum(turn.parsed.kind == "parse_error" for turn in self.turns)


@dataclass
class AgentEpisode:
    """Input of one episode for :func:`run_agent_loops`."""

    messages: Sequence[Message]
    tools: Sequence[ToolSpec]
    call_tool: ToolFn
    sampling: SamplingParams | None = None


@dataclass
class _State:
    episode: AgentEpisode
    index: int
    messages: list[Message]
    turns: list[AgentTurn] = field(default_factory=list)
    end_reason: EndReason | None = None
    answer: str | None = None
    error: str | None = None
    ended_s: float | None = None


def _as_result(call: ToolCall, value: Any, latency: float) -> ToolResult:
    if isinstance(value, ToolResult):
        return value.model_copy(update={"call_id": call.id, "name": call.name, "latency_s": latency})
    if isinstance(value, str):
        content = value
    else:
        try:
            content = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            content = str(value)
    return ToolResult(call_id=call.id, name=call.name, content=content, latency_s=latency)


def _invoke(fn: ToolFn, call: ToolCall) -> Any:
    value = fn(call)
    if inspect.isawaitable(value):
        # Async tools (an MCP client session, say) run to completion on this worker thread.
        async def wait() -> Any:
            return await value

        value = asyncio.run(wait())
    return value


def _run_tool(fn: ToolFn, call: ToolCall, pool: ThreadPoolExecutor, timeout_s: float) -> ToolResult:
    started = time.perf_counter()
    future = pool.submit(_invoke, fn, call)
    try:
        value = future.result(timeout=max(timeout_s, 0.001))
    except FutureTimeout:
        # The thread cannot be killed; it finishes in the background and its result is dropped.
        return ToolResult(call_id=call.id, name=call.name, content=f"tool {call.name!r} timed out", is_error=True,
                          latency_s=time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - a failing tool is an observation, not a crash
        return ToolResult(call_id=call.id, name=call.name, content=f"{type(exc).__name__}: {exc}", is_error=True,
                          latency_s=time.perf_counter() - started)
    return _as_result(call, value, time.perf_counter() - started)


def _tool_message(result: ToolResult) -> Message:
    content = f"Error: {result.content}" if result.is_error else result.content
    return {"role": "tool", "tool_call_id": result.call_id, "name": result.name, "content": content}


def run_agent_loops(
    engine: Engine,
    episodes: Sequence[AgentEpisode],
    *,
    max_steps: int = 8,
    timeout_s: float = 60.0,
    sampling: SamplingParams | None = None,
    tool_timeout_s: float | None = None,
) -> list[AgentTranscript]:
    """Run many episodes in lockstep: one batched engine call per step for all unfinished ones.

    Each episode ends on an answer (``{"answer": ...}`` or plain text), after ``max_steps``
    assistant turns, when ``timeout_s`` (wall clock, from the start of the call) runs out, or on an
    engine error. Unparseable replies and failing tools become ``Error: ...`` tool messages and the
    episode goes on. Tool calls run in worker threads, each bounded by ``tool_timeout_s`` and the
    time left.
    """
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    start = time.perf_counter()
    deadline = start + timeout_s
    states = [_State(ep, i, [dict(m) for m in ep.messages]) for i, ep in enumerate(episodes)]
    default_sampling = sampling or engine.config.default_sampling

    # Not a `with` block: leaving one waits for every worker, and a hung tool must not hang the loop.
    pool = ThreadPoolExecutor(max_workers=max(1, min(16, len(states))), thread_name_prefix="agent-tool")
    try:
        for step in range(max_steps):
            active = [s for s in states if s.end_reason is None]
            if not active:
                break
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                for s in active:
                    s.end_reason = "timeout"
                break
            requests = [
                ChatRequest(
                    messages=s.messages, tools=list(s.episode.tools), sampling=s.episode.sampling or default_sampling
                )
                for s in active
            ]
            try:
                completions = engine.generate_requests(requests, timeout_s=remaining)
            except EngineTimeout as exc:
                for s in active:
                    s.end_reason, s.error = "timeout", str(exc)
                break
            except EngineError as exc:
                for s in active:
                    s.end_reason, s.error = "engine_error", str(exc)
                break

            # Parse every reply, then run all tool calls of this step (across episodes) concurrently.
            pending: list[tuple[_State, AgentTurn]] = []
            for s, completion in zip(active, completions, strict=True):
                parsed = parse_tool_output(completion.text, list(s.episode.tools), call_id_prefix=f"call_{step}")
                message: Message = {"role": "assistant", "content": completion.text}
                if parsed.kind == "tool_call":
                    message["tool_calls"] = [c.to_openai() for c in parsed.tool_calls]
                s.messages.append(message)
                turn = AgentTurn(step=step, message_index=len(s.messages) - 1, completion=completion, parsed=parsed)
                s.turns.append(turn)
                if parsed.kind == "answer":
                    s.end_reason, s.answer = "answer", parsed.answer
                elif parsed.kind == "parse_error":
                    s.messages.append({"role": "tool", "content": f"Error: {parsed.error}. {_FORMAT_HINT}"})
                elif completion.finish_reason == "timeout":
                    s.end_reason = "timeout"
                else:
                    pending.append((s, turn))

            def run_calls(item: tuple[_State, AgentTurn]) -> list[ToolResult]:
                s, turn = item
                results = []
                for call in turn.parsed.tool_calls:
                    left = deadline - time.perf_counter()
                    limit = left if tool_timeout_s is None else min(left, tool_timeout_s)
                    results.append(_run_tool(s.episode.call_tool, call, pool, limit))
                return results

            if pending:
                with ThreadPoolExecutor(max_workers=min(16, len(pending)), thread_name_prefix="agent-episode") as fan:
                    all_results = list(fan.map(run_calls, pending))
                for (s, turn), results in zip(pending, all_results, strict=True):
                    turn.tool_results = results
                    s.messages.extend(_tool_message(r) for r in results)
                    if time.perf_counter() >= deadline:
                        s.end_reason = "timeout"
            for s in active:
                if s.end_reason is not None and s.ended_s is None:
                    s.ended_s = time.perf_counter() - start
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

    for s in states:
        if s.end_reason is None:
            s.end_reason = "max_steps"
    elapsed = time.perf_counter() - start
    return [
        AgentTranscript(
            messages=s.messages,
            tools=list(s.episode.tools),
            turns=s.turns,
            end_reason=s.end_reason or "max_steps",
            answer=s.answer,
            error=s.error,
            elapsed_s=s.ended_s if s.ended_s is not None else elapsed,
        )
        for s in states
    ]


def run_agent_loop(
    engine: Engine,
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    call_tool: ToolFn,
    max_steps: int = 8,
    timeout_s: float = 60.0,
    *,
    sampling: SamplingParams | None = None,
    tool_timeout_s: float | None = None,
) -> AgentTranscript:
    """Run one episode; see :func:`run_agent_loops` for how it ends and what it returns."""
    episode = AgentEpisode(messages=messages, tools=tools, call_tool=call_tool)
    return run_agent_loops(
        engine, [episode], max_steps=max_steps, timeout_s=timeout_s, sampling=sampling, tool_timeout_s=tool_timeout_s
    )[0]
