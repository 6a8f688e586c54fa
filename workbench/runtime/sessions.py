"""Sessions: conversations with an agent version, persisted turn by turn in the control plane.

A step takes the user's message, rebuilds the conversation from the stored turns (so a session
survives server restarts and may be continued by any API process), runs the agent loop with the
agent's plugin tools (through the MCP gateway) and generation settings on the shared engine
(:mod:`workbench.runtime.serving`), stores the turn, counts metrics
(:mod:`workbench.runtime.monitoring`) and hands the turn to the Data Factory as events:

* ``message`` — the system prompt (first turn only) and the user's message;
* per assistant turn, ``agent_action`` ``{text, tool, arguments}`` or ``{text, answer}`` (an
  unreadable reply is ``{text}`` followed by an ``environment_observation`` with the error shown
  to the model), then ``tool_call`` and ``tool_result`` for each call.

Events carry ``session_id``, ``agent_version`` (``name@vN``) and steps that keep increasing across
the session's turns; ingest redacts PII before anything reaches the lake. They are queued without
waiting for the lake commit, so the reply is not delayed by it. The control plane keeps the raw
conversation (the model needs it to continue); erasing the tenant or agent removes it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from workbench.errors import ConflictError, NotFoundError, OverloadedError, ValidationFailed, WorkbenchError
from workbench.security.tenants import new_id
from workbench.store.models import SessionRecord, SessionTurnRecord

if TYPE_CHECKING:
    from workbench.agents import AgentTranscript, Message, ToolCall, ToolSpec
    from workbench.runtime.agents import AgentInfo
    from workbench.services import Services

__all__ = [
    "MAX_MESSAGE_CHARS",
    "SessionHistory",
    "SessionInfo",
    "StepResult",
    "ToolCallView",
    "TurnView",
    "create_session",
    "get_session",
    "list_sessions",
    "session_history",
    "step_session",
]

log = logging.getLogger("workbench.runtime.sessions")

MAX_MESSAGE_CHARS = 32_000
# Previous turns kept in the prompt; older ones stay in the history but are not shown to the model.
HISTORY_TURNS = 16


class SessionInfo(BaseModel):
    """A session as the API returns it."""

    session_id: str
    agent_id: str
    agent_version: str
    created_at: datetime
    turns: int = 0


class ToolCallView(BaseModel):
    """One tool call of a step and how it ended."""

    id: str
    name: str
    arguments: dict[str, Any]
    ok: bool
    content: str | None = Field(None, description="The tool's result (when ok).")
    error: str | None = Field(None, description="Why it failed or was refused (when not ok).")
    denied: bool = Field(False, description="Refused by the gateway (a safety violation).")
    plugin: str | None = None
    latency_ms: float | None = None


class StepResult(BaseModel):
    """What ``POST /agents/{id}/sessions/{sid}/step`` returns."""

    session_id: str
    turn: int
    reply: str
    tool_calls: list[ToolCallView]
    latency_ms: float
    end_reason: str = Field(description="answer, max_steps or timeout.")
    steps: int = Field(description="Assistant turns the loop took.")
    agent_version: str


class TurnView(BaseModel):
    """One stored turn."""

    turn: int
    message: str
    reply: str
    tool_calls: list[ToolCallView]
    latency_ms: float
    end_reason: str | None = None
    error: str | None = None
    created_at: datetime


class SessionHistory(BaseModel):
    """What ``GET /agents/{id}/sessions/{sid}/history`` returns."""

    session_id: str
    agent_id: str
    agent_version: str
    created_at: datetime
    turns: list[TurnView]
    messages: list[dict[str, Any]] = Field(description="The conversation the model sees next (system prompt first).")


# --------------------------------------------------------------------------- sessions


def create_session(services: Services, tenant_id: str, agent_id: str) -> SessionInfo:
    """Open a session with an agent version (404 for other tenants' agents)."""
    from workbench.runtime.agents import get_agent

    agent = get_agent(services, tenant_id, agent_id)
    record = SessionRecord(id=new_id("ses"), tenant_id=tenant_id, agent_id=agent.id, created_at=datetime.now(UTC))
    with services.control.session() as session:
        session.add(record)
    return SessionInfo(
        session_id=record.id, agent_id=agent.id, agent_version=agent.agent_version, created_at=record.created_at
    )


def _session(db: Any, tenant_id: str, agent_id: str, session_id: str) -> SessionRecord:
    record = db.get(SessionRecord, session_id)
    if record is None or record.tenant_id != tenant_id or record.agent_id != agent_id:
        raise NotFoundError("session", session_id)
    return record


def get_session(services: Services, tenant_id: str, agent_id: str, session_id: str) -> SessionInfo:
    """One session of an agent."""
    from workbench.runtime.agents import get_agent

    agent = get_agent(services, tenant_id, agent_id)
    with services.control.session() as db:
        record = _session(db, tenant_id, agent_id, session_id)
        turns = db.scalar(select(func.count()).select_from(SessionTurnRecord)
                          .where(SessionTurnRecord.session_id == session_id)) or 0
    return SessionInfo(session_id=record.id, agent_id=agent.id, agent_version=agent.agent_version,
                       created_at=record.created_at, turns=turns)


def list_sessions(services: Services, tenant_id: str, agent_id: str) -> list[SessionInfo]:
    """An agent's sessions, newest first."""
    from workbench.runtime.agents import get_agent

    agent = get_agent(services, tenant_id, agent_id)
    with services.control.session() as db:
        counts = dict(db.execute(
            select(SessionTurnRecord.session_id, func.count()).join(
                SessionRecord, SessionRecord.id == SessionTurnRecord.session_id
            ).where(SessionRecord.agent_id == agent_id).group_by(SessionTurnRecord.session_id)
        ).all())
        rows = db.scalars(
            select(SessionRecord).where(SessionRecord.tenant_id == tenant_id, SessionRecord.agent_id == agent_id)
            .order_by(SessionRecord.created_at.desc())
        )
        return [SessionInfo(session_id=r.id, agent_id=agent.id, agent_version=agent.agent_version,
                            created_at=r.created_at, turns=counts.get(r.id, 0)) for r in rows]


def _turn_view(record: SessionTurnRecord) -> TurnView:
    stats = record.stats or {}
    messages = record.messages or []
    message = next((m.get("content", "") for m in messages if m.get("role") == "user"), stats.get("message", ""))
    return TurnView(
        turn=record.turn, message=message or "", reply=record.reply,
        tool_calls=[ToolCallView.model_validate(c) for c in record.tool_calls or []], latency_ms=record.latency_ms,
        end_reason=stats.get("end_reason"), error=stats.get("error"), created_at=record.created_at,
    )


def _system(agent: AgentInfo) -> list[Message]:
    prompt = agent.spec.system_prompt
    return [{"role": "system", "content": prompt}] if prompt else []


def _conversation(agent: AgentInfo, turns: list[SessionTurnRecord], keep: int | None = None) -> list[Message]:
    ok = [t for t in turns if not (t.stats or {}).get("error")]
    if keep is not None:
        ok = ok[-keep:] if keep else []
    return _system(agent) + [m for t in ok for m in (t.messages or [])]


def session_history(services: Services, tenant_id: str, agent_id: str, session_id: str) -> SessionHistory:
    """Every stored turn of a session, and the conversation the model sees next."""
    from workbench.runtime.agents import get_agent

    agent = get_agent(services, tenant_id, agent_id)
    with services.control.session() as db:
        record = _session(db, tenant_id, agent_id, session_id)
        turns = list(db.scalars(
            select(SessionTurnRecord).where(SessionTurnRecord.session_id == session_id).order_by(SessionTurnRecord.turn)
        ))
    return SessionHistory(
        session_id=record.id, agent_id=agent.id, agent_version=agent.agent_version, created_at=record.created_at,
        turns=[_turn_view(t) for t in turns], messages=_conversation(agent, turns, HISTORY_TURNS),
    )


# --------------------------------------------------------------------------- stepping


class _SessionLock:
    """A per-session lock object (weakly cached, so finished sessions cost nothing)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


_LOCKS: weakref.WeakValueDictionary[str, _SessionLock] = weakref.WeakValueDictionary()
_LOCKS_GUARD = threading.Lock()


def _lock_for(session_id: str) -> _SessionLock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(session_id)
        if lock is None:
            lock = _LOCKS[session_id] = _SessionLock()
        return lock


def _agent_tools(
    services: Services, tenant_id: str, agent: AgentInfo
) -> tuple[list[ToolSpec], Callable[[ToolCall], Any], dict[str, dict[str, Any]]]:
    """The agent's tools (with its worked examples), a tool function through the gateway, and a
    dict the function fills with each call's plugin, denial and latency (by call id)."""
    seen: dict[str, dict[str, Any]] = {}
    if not agent.spec.plugins:
        def no_tools(call: ToolCall) -> Any:
            raise ValueError(f"agent {agent.name!r} has no tools")

        return [], no_tools, seen
    from workbench.runtime import plugins

    pins = agent.spec.plugins
    tools = []
    for tool in plugins.resolve_tools(services, tenant_id, agent.name, pins):
        spec = tool.to_tool_spec()
        examples = agent.spec.tool_examples.get(spec.name)
        tools.append(spec.model_copy(update={"examples": examples}) if examples else spec)

    def call_tool(call: ToolCall) -> Any:
        outcome = plugins.call_tool(services, tenant_id, agent.name, pins, call.name, call.arguments)
        seen[call.id] = {"plugin": outcome.plugin, "denied": outcome.denied, "latency_ms": outcome.latency_ms}
        return outcome.to_tool_result(call.id)

    return tools, call_tool, seen


def _tool_views(transcript: AgentTranscript, seen: dict[str, dict[str, Any]]) -> list[ToolCallView]:
    views = []
    for turn in transcript.turns:
        results = {r.call_id: r for r in turn.tool_results}
        for call in turn.parsed.tool_calls:
            result = results.get(call.id)
            extra = seen.get(call.id, {})
            ok = result is not None and not result.is_error
            text = result.content if result is not None else "the call did not run (the step ended first)"
            views.append(ToolCallView(
                id=call.id, name=call.name, arguments=call.arguments, ok=ok,
                content=text if ok else None, error=None if ok else text, denied=bool(extra.get("denied")),
                plugin=extra.get("plugin"),
                latency_ms=extra.get("latency_ms", round(result.latency_s * 1000, 3) if result is not None else None),
            ))
    return views


def _out_of_scope(
    services: Services, tenant_id: str, agent: AgentInfo, transcript: AgentTranscript, tools: list[ToolSpec]
) -> list[ToolCallView]:
    """Calls the model made to tools of its pinned plugins that it was not granted.

    The protocol only shows (and parses) granted tools, so such a call reaches the model as an
    "unknown tool" error. It is still an attempt at something the agent may not do: the gateway
    is asked (it refuses without reaching the server, and counts it) and the refusal is reported
    as a denied call. Names no pinned plugin offers are plain format errors, not violations.
    """
    if not agent.spec.plugins or not transcript.parse_errors:
        return []
    from workbench.agents import parse_tool_output
    from workbench.runtime import plugins

    offered: set[str] = set()
    for pin in agent.spec.plugins:
        try:
            offered |= {t.name for t in plugins.get_plugin(services, tenant_id, pin.name, pin.version).tools}
        except NotFoundError:
            continue
    visible = {t.name for t in tools}
    views = []
    for turn in transcript.turns:
        if turn.parsed.kind != "parse_error":
            continue
        attempt = parse_tool_output(turn.completion.text, None, call_id_prefix=f"denied_{turn.step}")
        for call in attempt.tool_calls:
            if call.name in visible or call.name not in offered:
                continue
            outcome = plugins.call_tool(services, tenant_id, agent.name, agent.spec.plugins, call.name, call.arguments)
            views.append(ToolCallView(
                id=call.id, name=call.name, arguments=call.arguments, ok=outcome.ok,
                content=outcome.content if outcome.ok else None, error=None if outcome.ok else outcome.error,
                denied=outcome.denied, plugin=outcome.plugin, latency_ms=outcome.latency_ms,
            ))
    return views


def _reply(transcript: AgentTranscript) -> str:
    if transcript.end_reason == "answer" and transcript.answer is not None:
        return transcript.answer
    last = next((m for m in reversed(transcript.messages) if m.get("role") == "assistant"), None)
    return str(last.get("content") or "") if last else ""


def _events(
    agent: AgentInfo, session_id: str, turn: int, first_step: int, user: Message,
    transcript: AgentTranscript | None, views: list[ToolCallView],
) -> tuple[list[dict[str, Any]], int]:
    """The turn's events and the next free step number."""
    base = {"session_id": session_id, "agent_version": agent.agent_version,
            "tags": ["session", f"agent:{agent.name}"]}
    started = datetime.now(UTC)
    events: list[dict[str, Any]] = []

    def add(kind: str, step: int, payload: dict[str, Any]) -> None:
        # Explicit, increasing timestamps keep the order of events that share a step.
        ts = started + timedelta(microseconds=len(events))
        events.append({"event_id": str(uuid.uuid4()), "kind": kind, "ts": ts.isoformat(), "step": step,
                       "payload": payload, **base})

    step = first_step
    if turn == 0 and agent.spec.system_prompt:
        add("message", step, {"role": "system", "content": agent.spec.system_prompt})
        step += 1
    add("message", step, {"role": "user", "content": user["content"]})
    step += 1
    by_id = {v.id: v for v in views}
    for t in (transcript.turns if transcript is not None else []):
        text = t.completion.text
        if t.parsed.kind == "answer":
            add("agent_action", step, {"text": text, "answer": t.parsed.answer})
        elif t.parsed.kind == "tool_call":
            first = t.parsed.tool_calls[0]
            add("agent_action", step, {"text": text, "tool": first.name, "arguments": first.arguments})
            for call in t.parsed.tool_calls:
                view = by_id.get(call.id)
                add("tool_call", step, {"name": call.name, "arguments": call.arguments, "id": call.id})
                if view is not None:
                    add("tool_result", step, {
                        "name": call.name, "id": call.id, "ok": view.ok, "denied": view.denied,
                        "content": view.content if view.ok else f"Error: {view.error}",
                        **({"plugin": view.plugin} if view.plugin else {}),
                    })
        else:
            add("agent_action", step, {"text": text})
            add("environment_observation", step, {"observation": f"Error: {t.parsed.error}", "step_kind": "parse_error"})
        step += 1
    return events, step


def _warm_ingestor(services: Services) -> None:
    try:
        services.ingestor  # noqa: B018 - loading it is the point
    except Exception:  # noqa: BLE001 - the step's own ingest reports the problem
        log.exception("loading the event ingestor failed")


def _ingest(services: Services, tenant_id: str, events: list[dict[str, Any]]) -> None:
    """Queue the turn's events; failures are logged, never the user's problem."""
    if not events:
        return
    try:
        rejected, future = services.ingestor.submit(tenant_id, events)
    except OverloadedError as exc:
        log.warning("session events dropped: %s", exc)
        return
    for r in rejected:
        log.warning("session event rejected: %s %s", r.field, r.reason)

    def done(f: Any) -> None:
        if f.exception() is not None:
            log.warning("session events not stored: %s", f.exception())

    future.add_done_callback(done)


def step_session(services: Services, tenant_id: str, agent_id: str, session_id: str, message: str) -> StepResult:
    """Run one turn of a session: the agent answers ``message``, calling its tools as it needs.

    Raises :class:`~workbench.agents.EngineError` (502) or :class:`~workbench.agents.EngineTimeout`
    (504) when the model produced nothing usable; the failed turn is still stored (with its error)
    and counted, but left out of the conversation the model sees next.
    """
    from workbench.agents import EngineError, EngineTimeout, run_agent_loop
    from workbench.runtime import monitoring, serving
    from workbench.runtime.agents import get_agent

    if not isinstance(message, str) or not message.strip():
        raise ValidationFailed("message", "must be a non-empty string")
    if len(message) > MAX_MESSAGE_CHARS:
        raise ValidationFailed("message", f"is longer than {MAX_MESSAGE_CHARS} characters")
    agent = get_agent(services, tenant_id, agent_id)
    if not services.ingestor_ready:
        # Load the PII pipeline while the model generates, not after it (first step of a process only).
        threading.Thread(target=_warm_ingestor, args=(services,), name="ingest-warmup", daemon=True).start()
    lock = _lock_for(session_id)
    with lock.lock:  # turns of one session are strictly ordered
        with services.control.session() as db:
            _session(db, tenant_id, agent_id, session_id)
            turns = list(db.scalars(
                select(SessionTurnRecord).where(SessionTurnRecord.session_id == session_id)
                .order_by(SessionTurnRecord.turn)
            ))
        turn = turns[-1].turn + 1 if turns else 0
        first_step = int((turns[-1].stats or {}).get("next_event_step", 0)) if turns else 0
        user: Message = {"role": "user", "content": message}
        history = _conversation(agent, turns, HISTORY_TURNS)
        started = time.perf_counter()
        transcript: AgentTranscript | None = None
        views: list[ToolCallView] = []
        stats: dict[str, Any] = {"agent_version": agent.agent_version}
        failure: WorkbenchError | None = None
        try:
            handle, resolved = serving.engine_for_agent(services, tenant_id, agent)
            stats.update(engine=handle.kind, model=handle.engine.model_name,
                         checkpoint_id=resolved.checkpoint_id if resolved else None)
            tools, call_tool, seen = _agent_tools(services, tenant_id, agent)
            gen = agent.spec.generation
            transcript = run_agent_loop(
                handle.engine, [*history, user], tools, call_tool, max_steps=gen.max_steps, timeout_s=gen.timeout_s,
                sampling=gen.sampling(),
            )
            views = _tool_views(transcript, seen) + _out_of_scope(services, tenant_id, agent, transcript, tools)
            if transcript.end_reason == "engine_error":
                failure = EngineError(transcript.error or "the engine failed")
            elif transcript.end_reason == "timeout" and not transcript.turns:
                failure = EngineTimeout(transcript.error or f"no reply within {gen.timeout_s:g} s")
        except WorkbenchError as exc:
            failure = exc
        latency_s = time.perf_counter() - started

        reply = _reply(transcript) if transcript is not None and failure is None else ""
        end_reason = transcript.end_reason if transcript is not None else "engine_error"
        completion_tokens = sum(t.completion.num_completion_tokens or 0 for t in transcript.turns) if transcript else 0
        generation_s = sum(t.completion.timing.total_s for t in transcript.turns) if transcript else 0.0
        events, next_step = _events(agent, session_id, turn, first_step, user, transcript, views)
        stats.update(
            end_reason=end_reason, steps=transcript.steps if transcript else 0,
            parse_errors=transcript.parse_errors if transcript else 0,
            prompt_tokens=(transcript.turns[-1].completion.num_prompt_tokens if transcript and transcript.turns else None),
            completion_tokens=completion_tokens, generation_s=round(generation_s, 6), next_event_step=next_step,
            error=f"{type(failure).__name__}: {failure}" if failure is not None else None,
        )
        # The loop starts from a copy of history + user, so what follows history is this turn's.
        new_messages = transcript.messages[len(history):] if transcript is not None and failure is None else [user]
        record = SessionTurnRecord(
            session_id=session_id, turn=turn, messages=new_messages, reply=reply,
            tool_calls=[v.model_dump() for v in views], latency_ms=round(latency_s * 1000, 3), stats=stats,
            created_at=datetime.now(UTC),
        )
        try:
            with services.control.session() as db:
                db.add(record)
        except IntegrityError:
            raise ConflictError(f"session {session_id} was stepped by another process at the same time; retry") from None
    _ingest(services, tenant_id, events)
    error_kind = None
    if failure is not None:
        error_kind = "timeout" if isinstance(failure, EngineTimeout) else type(failure).__name__
    elif end_reason == "timeout":
        error_kind = "timeout"
    monitoring.record_step(
        agent.id, latency_s=latency_s, outcome="error" if failure is not None else end_reason, error_kind=error_kind,
        tool_calls=[v.model_dump() for v in views], completion_tokens=completion_tokens, generation_s=generation_s,
    )
    if failure is not None:
        raise failure
    return StepResult(
        session_id=session_id, turn=turn, reply=reply, tool_calls=views, latency_ms=record.latency_ms,
        end_reason=end_reason, steps=transcript.steps if transcript else 0, agent_version=agent.agent_version,
    )

