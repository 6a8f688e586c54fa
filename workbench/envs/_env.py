"""Environments with a Gymnasium-style API, and ``make`` to build one from a scenario.

``obs, info = env.reset()``; ``obs, reward, terminated, truncated, info = env.step(action)``
where an action is ``{"tool": name, "arguments": {...}}`` or ``{"answer": ...}``. Observations are
text. A run ends on the checker's verdict, ``max_steps``, ``max_tool_calls``, ``run_timeout_s`` or
an error in sandboxed code; ``env.result`` says how (status and reason) and ``env.trace()`` holds
every step with its timing, which is also what :func:`workbench.envs.replay` re-executes.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from enum import StrEnum
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from workbench.envs._arguments import check_arguments
from workbench.envs._checkers import Verdict, evaluate_rules, normalise_result
from workbench.envs._events import EventEmitter, Sink
from workbench.envs._registry import resolve_reference
from workbench.envs._sandbox import Sandbox, SandboxError, default_sys_path
from workbench.envs._spec import (
    Action,
    McpToolRef,
    PythonChecker,
    Scenario,
    ToolSpec,
    parse_scenario,
    validation_errors,
)
from workbench.errors import ConflictError, ValidationFailed


class RunStatus(StrEnum):
    """Where a run stands."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"
    TIMEOUT = "timeout"


class RunNotStarted(ConflictError):
    """step() before reset()."""


class RunFinished(ConflictError):
    """step() after the run ended; reset() starts a new run."""


@dataclass
class RunResult:
    """The outcome of a run (``status`` is ``running`` until it ends)."""

    run_id: str
    status: str
    reason: str
    success: bool | None
    score: float | None
    steps: int
    tool_calls: int
    duration_ms: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return asdict(self)


class _EndRun(Exception):
    """Raised by environment hooks to end the run now."""

    def __init__(self, status: RunStatus, reason: str, *, truncated: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.truncated = truncated


def content_text(content: Any) -> str:
    """A tool result as the text an agent reads."""
    if isinstance(content, str):
        return content
    return json.dumps(content, sort_keys=True, ensure_ascii=False)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class Env:
    """Base of every environment: run bookkeeping, limits, checking, events and the trace.

    Subclasses implement the hooks ``_begin`` (set up a run, return the environment's part of
    the first observation), ``_call_tool`` and ``_after_tool`` (observation after a tool call),
    and ``_end`` (release per-run resources). Every public call holds the instance's lock, so
    an API's request threads may share an instance; calls are served one at a time.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int = 0,
        sink: Sink | None = None,
        run_id: str | None = None,
        agent_version: str | None = None,
        tags: list[str] | None = None,
        scenario_id: str | None = None,
        env_id: str | None = None,
        recorded: dict[str, Any] | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = int(seed)
        self.sink = sink
        self.agent_version = agent_version
        self.scenario_id = scenario_id or scenario.name
        self.env_id = env_id or f"{scenario.type}/{scenario.family or scenario.name}"
        self.tags = sorted(set(scenario.tags) | set(tags or []) | {f"split:{scenario.split}", f"type:{scenario.type}"})
        self._next_run_id = run_id
        self._recorded = recorded or {}
        # a replay serves recorded outside responses instead of reaching out again
        self._replaying = recorded is not None
        self._lock = threading.RLock()
        self._started = False
        self._closed = False
        self._resets = 0
        self._sandbox: Sandbox | None = None
        self._cleanup: list[threading.Thread] = []
        self._checker_ref = self._resolve_checker()
        self.run_id: str = ""
        self._reset_state()

    # ------------------------------------------------------------------ public

    @property
    def instructions(self) -> str:
        """What the agent is told."""
        return self.scenario.instructions

    def tool_schemas(self) -> list[dict[str, Any]]:
        """The tools the agent may call, in the OpenAI function-calling format."""
        return [t.openai_schema() for t in self._tool_specs()]

    @property
    def status(self) -> str:
        """running, success, failure, error or timeout."""
        return self._status.value

    @property
    def done(self) -> bool:
        """Whether the current run has ended."""
        return self._status is not RunStatus.RUNNING

    @property
    def state(self) -> dict[str, Any]:
        """The environment state of the current run (a copy)."""
        return copy.deepcopy(self._state)

    @property
    def result(self) -> RunResult:
        """The outcome so far."""
        return RunResult(
            run_id=self.run_id,
            status=self._status.value,
            reason=self._reason,
            success=self._success,
            score=self._score,
            steps=self._step,
            tool_calls=self._tool_calls,
            duration_ms=round(self._elapsed_ms(), 3),
        )

    @property
    def pending_events(self) -> int:
        """Events a failing sink has not accepted yet (they are retried on the next step)."""
        return self._events.pending if self._started else 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start a new run and return its first observation and info.

        The first reset uses the seed and run id given to :func:`make`; later ones, unless given a
        seed, use the previous seed + 1 and a fresh run id.
        """
        with self._lock:
            if self._closed:
                raise RunFinished("environment is closed")
            if self._started:
                self._end_run_resources()
            self._wait_for_cleanup()
            if seed is not None:
                self.seed = int(seed)
            elif self._resets:
                self.seed += 1
            self._resets += 1
            self.run_id = self._next_run_id or str(uuid.uuid4())
            self._next_run_id = None
            self._reset_state()
            self._started = True
            self._events = EventEmitter(
                self.sink,
                run_id=self.run_id,
                env_id=self.env_id,
                scenario_id=self.scenario_id,
                agent_version=self.agent_version,
                tags=self.tags,
            )
            self._t0 = time.monotonic()
            self._started_at = _now_iso()
            started = time.perf_counter()
            if self._needs_sandbox():
                # fork the worker now so the first step does not pay for it
                self._get_sandbox().start()
            try:
                part = self._begin(options or {})
            except _EndRun as end:
                part = f"[environment could not start: {end.reason}]"
                self._finish(end.status, end.reason)
            observation = self.instructions + (f"\n\n{part}" if part else "")
            duration = (time.perf_counter() - started) * 1000
            self._steps.append(
                {
                    "step": 0,
                    "action": None,
                    "observation": observation,
                    "reward": 0.0,
                    "terminated": self.done,
                    "truncated": False,
                    "status": self._status.value,
                    "tool_calls": [],
                    "t_ms": 0.0,
                    "duration_ms": round(duration, 3),
                }
            )
            self._observation = observation
            self._events.emit(
                "metadata",
                0,
                {
                    "event": "run_started",
                    "scenario_name": self.scenario.name,
                    "scenario_version": self.scenario.version,
                    "scenario_type": self.scenario.type,
                    "split": self.scenario.split,
                    "family": self.scenario.family,
                    "seed": self.seed,
                    "tools": self.tool_schemas(),
                },
            )
            self._events.emit(
                "environment_observation",
                0,
                {"observation": observation, "instructions": self.instructions, "step_kind": "reset"},
            )
            if self.done:
                self._emit_outcome(0)
                self._end_run_resources(background=True)
            self._events.flush()
            return observation, self._info(duration)

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Apply one action; returns ``(observation, reward, terminated, truncated, info)``."""
        with self._lock:
            if not self._started:
                raise RunNotStarted("call reset() before step()")
            if self.done:
                raise RunFinished(f"run {self.run_id} has ended ({self._status.value}); call reset() for a new run")
            started = time.perf_counter()
            t_ms = self._elapsed_ms()
            self._step += 1
            step = self._step
            reward = 0.0
            truncated = False
            calls_before = len(self._call_log)
            parsed, action_record, problem = self._parse_action(action)
            self._events.emit("agent_action", step, action_record)
            observation = ""
            kind = "invalid"
            try:
                if self._elapsed_ms() / 1000 > self.scenario.limits.run_timeout_s:
                    raise _EndRun(
                        RunStatus.TIMEOUT,
                        f"run exceeded run_timeout_s={self.scenario.limits.run_timeout_s:g}",
                        truncated=True,
                    )
                if parsed is None:
                    observation = f"error: invalid action: {problem}"
                elif parsed.is_answer:
                    kind = "answer"
                    self._answer = parsed.answer
                    self._conclude(self._judge())
                else:
                    kind = "tool"
                    observation = self._run_tool(step, parsed.tool or "", parsed.arguments)
                    reward = self._step_reward()
                    if self._env_finished():
                        self._conclude(self._judge())
                    elif self.scenario.check_on == "step" and self.scenario.checker is not None:
                        verdict = self._judge()
                        if verdict.success or verdict.done:
                            self._conclude(verdict)
            except _EndRun as end:
                truncated = end.truncated
                self._finish(end.status, end.reason, score=0.0, success=False)
            if not self.done and step >= self.scenario.limits.max_steps:
                truncated = True
                self._finish(
                    RunStatus.FAILURE,
                    f"max_steps={self.scenario.limits.max_steps} reached without success",
                    score=0.0,
                    success=False,
                )
            if self.done:
                ending = f"[run finished: {self._status.value}]"
                observation = f"{observation}\n{ending}" if observation else ending
                if not (self._env_reward_is_per_step() and kind == "tool"):
                    reward = float(self._score or 0.0)
            terminated = self.done and not truncated
            duration = (time.perf_counter() - started) * 1000
            self._observation = observation
            self._steps.append(
                {
                    "step": step,
                    "action": action_record,
                    "observation": observation,
                    "reward": reward,
                    "terminated": terminated,
                    "truncated": truncated,
                    "status": self._status.value,
                    "tool_calls": self._call_log[calls_before:],
                    "t_ms": round(t_ms, 3),
                    "duration_ms": round(duration, 3),
                }
            )
            self._events.emit("environment_observation", step, {"observation": observation, "step_kind": kind})
            if self.done:
                self._emit_outcome(step)
                self._end_run_resources(background=True)
            self._events.flush()
            return observation, reward, terminated, truncated, self._info(duration)

    def trace(self) -> dict[str, Any]:
        """The run as plain data: spec, seed, every step with action, observation and timings.

        This is what GET /runs/{id}/trace returns and what :func:`workbench.envs.replay` takes.
        """
        with self._lock:
            return {
                "run_id": self.run_id,
                "scenario_id": self.scenario_id,
                "env_id": self.env_id,
                "scenario_name": self.scenario.name,
                "scenario_version": self.scenario.version,
                "scenario": self.scenario.spec(),
                "base_dir": str(self.scenario.base_dir) if self.scenario.base_dir else None,
                "type": self.scenario.type,
                "seed": self.seed,
                "agent_version": self.agent_version,
                "initial_state": copy.deepcopy(self.scenario.initial_state),
                "status": self._status.value,
                "reason": self._reason,
                "success": self._success,
                "score": self._score,
                "answer": self._answer,
                "final_state": copy.deepcopy(self._state),
                "started_at": getattr(self, "_started_at", None),
                "duration_ms": round(self._elapsed_ms(), 3),
                "steps": copy.deepcopy(self._steps),
                "recorded": copy.deepcopy(self._recording),
            }

    def close(self) -> None:
        """End the current run (an unfinished one is left as is) and release processes."""
        with self._lock:
            if self._started:
                self._end_run_resources()
                self._events.flush()
            self._wait_for_cleanup()
            self._close_env()
            self._closed = True

    def __enter__(self) -> Env:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: do not leak worker processes
        try:
            if self._sandbox is not None:
                self._sandbox.close()
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------ hooks

    def _begin(self, options: dict[str, Any]) -> str:
        return ""

    def _call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        raise _EndRun(RunStatus.ERROR, f"tool {name!r} has no implementation")

    def _after_tool(self, name: str, text: str, error: bool) -> str:
        return text

    def _tool_specs(self) -> list[ToolSpec]:
        return [t for t in self.scenario.tools if isinstance(t, ToolSpec)]

    def _step_reward(self) -> float:
        return 0.0

    def _env_reward_is_per_step(self) -> bool:
        return False

    def _env_finished(self) -> bool:
        return False

    def _default_verdict(self) -> Verdict:
        return Verdict(False, 0.0, "scenario has no checker")

    def _document_extra(self) -> dict[str, Any]:
        return {}

    def _end(self) -> Callable[[], None] | None:
        """Detach per-run resources; return a function that releases them (may run on another thread)."""
        return None

    def _close_env(self) -> None:
        pass

    # ------------------------------------------------------------------ internals

    def _reset_state(self) -> None:
        self._status = RunStatus.RUNNING
        self._reason = ""
        self._success: bool | None = None
        self._score: float | None = None
        self._step = 0
        self._tool_calls = 0
        self._sandbox_calls = 0
        self._answer: Any = None
        self._state: dict[str, Any] = copy.deepcopy(self.scenario.initial_state)
        self._steps: list[dict[str, Any]] = []
        self._call_log: list[dict[str, Any]] = []
        self._recording: dict[str, Any] = {}
        self._observation = ""
        self._ended_ms: float | None = None

    def _elapsed_ms(self) -> float:
        if not self._started:
            return 0.0
        if self._ended_ms is not None:
            return self._ended_ms
        return (time.monotonic() - self._t0) * 1000

    def _info(self, duration_ms: float) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "step": self._step,
            "status": self._status.value,
            "reason": self._reason,
            "success": self._success,
            "score": self._score,
            "tool_calls": self._tool_calls,
            "elapsed_ms": round(duration_ms, 3),
            "events_pending": self.pending_events,
        }

    def _finish(self, status: RunStatus, reason: str, *, score: float | None = 0.0, success: bool | None = False) -> None:
        self._status = status
        self._reason = reason
        self._score = float(score or 0.0)
        self._success = bool(success) and status is RunStatus.SUCCESS
        self._ended_ms = self._elapsed_ms()

    def _conclude(self, verdict: Verdict) -> None:
        """End the run with the checker's verdict."""
        status = RunStatus.SUCCESS if verdict.success else RunStatus.FAILURE
        self._finish(status, verdict.reason, score=verdict.score, success=verdict.success)

    def _emit_outcome(self, step: int) -> None:
        self._events.emit(
            "reward",
            step,
            {"success": bool(self._success), "score": self._score, "status": self._status.value, "reason": self._reason},
            reward=self._score or 0.0,
        )

    def _end_run_resources(self, *, background: bool = False) -> None:
        """Release the run's worker, browser context and servers.

        At the end of a step this happens on a helper thread, so the step that ends a run does
        not pay for the teardown; ``reset()`` and ``close()`` wait for it.
        """
        sandbox, self._sandbox = self._sandbox, None
        closer = self._end()

        def finish() -> None:
            try:
                if closer is not None:
                    closer()
            finally:
                if sandbox is not None:
                    sandbox.close()

        if background:
            thread = threading.Thread(target=finish, name="wb-run-cleanup", daemon=True)
            thread.start()
            self._cleanup.append(thread)
        else:
            finish()

    def _wait_for_cleanup(self) -> None:
        while self._cleanup:
            self._cleanup.pop().join(60)

    def _parse_action(self, action: Any) -> tuple[Action | None, dict[str, Any], str]:
        raw = action
        if isinstance(action, str):
            try:
                action = json.loads(action)
            except ValueError:
                return None, {"text": raw}, 'expected a JSON object {"tool": ..., "arguments": {...}} or {"answer": ...}'
        if isinstance(action, Action):
            return action, action.to_dict(), ""
        if not isinstance(action, dict):
            text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
            return None, {"text": text}, "an action must be an object"
        try:
            parsed = Action.model_validate(action)
        except ValidationError as exc:
            first = validation_errors(exc)[0]
            field = "" if first["field"] == "(scenario)" else f"{first['field']}: "
            # recorded as the JSON text, so a replay sends exactly the same thing again
            return None, {"text": json.dumps(action, default=str)}, f"{field}{first['reason']}"
        return parsed, parsed.to_dict(), ""

    def _run_tool(self, step: int, name: str, arguments: dict[str, Any]) -> str:
        limits = self.scenario.limits
        if self._tool_calls >= limits.max_tool_calls:
            raise _EndRun(RunStatus.FAILURE, f"max_tool_calls={limits.max_tool_calls} reached", truncated=True)
        self._tool_calls += 1
        call_id = f"call_{step}_{self._tool_calls}"
        self._events.emit("tool_call", step, {"name": name, "arguments": arguments, "id": call_id})
        started = time.perf_counter()
        error = False
        specs = {t.name: t for t in self._tool_specs()}
        known = self._known_tools()
        if name not in known:
            content: Any = f"error: unknown tool {name!r}; available tools: {', '.join(known) or 'none'}"
            error = True
        else:
            problem = check_arguments(specs[name].parameters, arguments) if name in specs else None
            if problem:
                content = f"error: invalid arguments for {name}: {problem}"
                error = True
            else:
                try:
                    content = self._call_tool(name, arguments)
                except _ToolFailed as failed:
                    content = f"error: {failed}"
                    error = True
                except _EndRun as end:
                    self._log_call(step, call_id, name, arguments, f"error: {end.reason}", True, started)
                    raise
        text = self._log_call(step, call_id, name, arguments, content, error, started)
        return self._after_tool(name, text, error)

    def _log_call(
        self, step: int, call_id: str, name: str, arguments: dict[str, Any], content: Any, error: bool, started: float
    ) -> str:
        text = content_text(content)
        record = {
            "name": name,
            "arguments": arguments,
            "content": text,
            "error": error,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        self._call_log.append(record)
        self._events.emit("tool_result", step, {"name": name, "content": text, "id": call_id, "error": error})
        return text

    def _known_tools(self) -> list[str]:
        return self.scenario.tool_names()

    def _needs_sandbox(self) -> bool:
        scenario = self.scenario
        return (
            isinstance(scenario.checker, PythonChecker)
            or any(isinstance(t, ToolSpec) and t.handler for t in scenario.tools)
            or bool(scenario.browser and scenario.browser.routes)
        )

    def _get_sandbox(self) -> Sandbox:
        if self._sandbox is None:
            limits = self.scenario.limits
            extra = [str(self.scenario.base_dir)] if self.scenario.base_dir else []
            self._sandbox = Sandbox(
                memory_mb=limits.memory_mb,
                cpu_s=limits.cpu_s,
                allow_network=self.scenario.allow_network,
                sys_path=default_sys_path() + extra,
                label=self.scenario.name[:40],
            )
        return self._sandbox

    def _sandbox_call(self, op: str, ref: str, *, what: str, timeout: float, **payload: Any) -> Any:
        """Call sandboxed code with the run's context; updates the state from the reply."""
        ctx = {
            "state": self._state,
            "seed": self.seed,
            "step": self._step,
            "call_index": self._sandbox_calls,
        }
        self._sandbox_calls += 1
        reply = self._get_sandbox().call(op, ref, ctx=ctx, timeout=timeout, what=what, **payload)
        if reply.state is not None:
            self._state = reply.state
        return reply.result

    def _resolve_checker(self) -> str | None:
        checker = self.scenario.checker
        if isinstance(checker, PythonChecker):
            try:
                return resolve_reference(checker.python, kind="checker", base_dir=self.scenario.base_dir)
            except LookupError as exc:
                raise ValidationFailed("checker.python", str(exc)) from None
        return None

    def _document(self) -> dict[str, Any]:
        return {
            "answer": self._answer,
            "state": self._state,
            "initial_state": self.scenario.initial_state,
            "steps": self._step,
            "tool_calls": [
                {"name": c["name"], "arguments": c["arguments"], "content": c["content"], "error": c["error"]}
                for c in self._call_log
            ],
            "observation": self._observation,
            **self._document_extra(),
        }

    def _judge(self) -> Verdict:
        checker = self.scenario.checker
        if checker is None:
            return self._default_verdict()
        document = self._document()
        if isinstance(checker, PythonChecker):
            context = {**document, "seed": self.seed, "step": self._step, "call_index": self._sandbox_calls}
            self._sandbox_calls += 1
            try:
                # the checker's view of the state is a copy: what it changes is not kept
                result = self._get_sandbox().call(
                    "checker",
                    self._checker_ref or "",
                    ctx=context,
                    kwargs=checker.args,
                    timeout=self.scenario.limits.step_timeout_s,
                    what=f"checker {checker.python}",
                ).result
                return normalise_result(result)
            except SandboxError as exc:
                raise _EndRun(RunStatus.ERROR, exc.reason) from None
            except ValueError as exc:
                raise _EndRun(RunStatus.ERROR, str(exc)) from None
        return evaluate_rules(checker, document)


def tool_handler_refs(scenario: Scenario) -> dict[str, str]:
    """Each tool's resolved handler reference; an unresolvable one is a ValidationFailed naming the tool."""
    refs: dict[str, str] = {}
    for i, tool in enumerate(scenario.tools):
        if isinstance(tool, ToolSpec) and tool.handler:
            try:
                refs[tool.name] = resolve_reference(tool.handler, kind="tool", base_dir=scenario.base_dir)
            except LookupError as exc:
                raise ValidationFailed(f"tools.{i}.handler", str(exc)) from None
    return refs


class _ToolFailed(Exception):
    """A tool call failed in a way the agent should see (and may recover from)."""


class ToolEnv(Env):
    """``text`` and ``api`` scenarios: tools run in the sandbox (or come from MCP servers)."""

    def __init__(self, scenario: Scenario, **kwargs: Any) -> None:
        self._refs = tool_handler_refs(scenario)
        self._mcp: Any = None
        self._mcp_specs: list[ToolSpec] = []
        super().__init__(scenario, **kwargs)

    def _begin(self, options: dict[str, Any]) -> str:
        refs = [t for t in self.scenario.tools if isinstance(t, McpToolRef)]
        if refs:
            from workbench.envs._mcp import McpTools

            limits = self.scenario.limits
            try:
                self._mcp = McpTools(
                    [r.mcp for r in refs],
                    workdir=self._get_sandbox().workdir,
                    cpu_s=limits.cpu_s,
                    timeout=limits.step_timeout_s,
                    recorded=self._recorded.get("mcp") if self._replaying else None,
                )
            except Exception as exc:  # noqa: BLE001 - any start-up failure ends the run with its reason
                self._mcp = None
                raise _EndRun(RunStatus.ERROR, f"MCP server failed to start: {exc}") from None
            self._mcp_specs = self._mcp.tool_specs()
            self._recording["mcp"] = self._mcp.recording
        return ""

    def _tool_specs(self) -> list[ToolSpec]:
        return super()._tool_specs() + self._mcp_specs

    def _known_tools(self) -> list[str]:
        return [t.name for t in self._tool_specs()]

    def _call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        if name not in self._refs and self._mcp is not None:
            try:
                return self._mcp.call(name, arguments)
            except TimeoutError:
                raise _EndRun(
                    RunStatus.TIMEOUT, f"MCP tool {name!r} exceeded step_timeout_s={self.scenario.limits.step_timeout_s:g}"
                ) from None
            except Exception as exc:  # noqa: BLE001 - an MCP error is shown to the agent
                raise _ToolFailed(f"{name}: {exc}") from None
        try:
            return self._sandbox_call(
                "tool",
                self._refs[name],
                what=f"tool {name!r}",
                timeout=self.scenario.limits.step_timeout_s,
                kwargs=arguments,
            )
        except SandboxError as exc:
            if exc.kind == "exception":
                raise _ToolFailed(exc.reason.removeprefix(f"tool {name!r} raised ")) from None
            if exc.kind == "timeout":
                raise _EndRun(RunStatus.TIMEOUT, exc.reason) from None
            raise _EndRun(RunStatus.ERROR, exc.reason) from None

    def _end(self) -> Callable[[], None] | None:
        mcp, self._mcp = self._mcp, None
        return mcp.close if mcp is not None else None


def make(
    scenario: Scenario | dict[str, Any],
    seed: int = 0,
    sink: Sink | None = None,
    run_id: str | None = None,
    agent_version: str | None = None,
    *,
    tags: list[str] | None = None,
    scenario_id: str | None = None,
    env_id: str | None = None,
    browser: Any = None,
    recorded: dict[str, Any] | None = None,
) -> Env:
    """An environment for ``scenario`` (call ``reset()`` to start a run).

    ``sink(events)`` receives each reset's and step's events in the Data Factory wire schema
    (None: emit nothing). ``run_id`` names the first run. ``browser`` is a
    :class:`~workbench.envs.BrowserHost` to share (default: the process-wide one). ``recorded``
    is a trace whose recorded outside responses are served instead of the network (replay).
    Raises :class:`~workbench.errors.ValidationFailed` when a referenced handler cannot be found.
    """
    scenario = parse_scenario(scenario)
    kwargs = dict(
        seed=seed,
        sink=sink,
        run_id=run_id,
        agent_version=agent_version,
        tags=tags,
        scenario_id=scenario_id,
        env_id=env_id,
        recorded=recorded,
    )
    if scenario.type in ("text", "api"):
        return ToolEnv(scenario, **kwargs)
    if scenario.type == "browser":
        from workbench.envs._browser import BrowserEnv

        return BrowserEnv(scenario, host=browser, **kwargs)
    if scenario.type == "gym":
        from workbench.envs._gym import GymEnv

        return GymEnv(scenario, **kwargs)
    raise ValidationFailed("type", f"unknown scenario type {scenario.type!r}")
