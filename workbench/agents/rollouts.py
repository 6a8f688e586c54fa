"""Rollouts: run an engine as an agent in the Environment Factory's environments, batched.

Each task x attempt is one episode in its own environment (``workbench.envs.make``). Episodes are
stepped in lockstep by :func:`~workbench.agents.run_agent_loops`, ``batch_size`` at a time, so
every step is one batched engine call across episodes; the environment executes the tool calls
(in the loop's worker threads) and judges the final answer. The environments' events (observations,
actions, tool calls and results, the reward) go to ``sink`` once per batch, after each
``agent_action`` got the model's raw ``text`` — the environment only sees the parsed action, and
training rows need what the model actually wrote. Every event carries ``agent_version`` and
``tags``.

Example::

    tasks = load_tasks("calculator", "train", limit=8)
    report = run_rollouts(engine, tasks, attempts=2, agent_version="calc@v1", tags=["rollout"],
                          sink=lambda events: ingestor.ingest(tenant_id, events))
    report.success_rate
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from workbench.agents._engine import Engine
from workbench.agents._loop import AgentEpisode, AgentTranscript, run_agent_loops
from workbench.agents._types import Message, SamplingParams, ToolCall, ToolExample, ToolResult, ToolSpec
from workbench.errors import ValidationFailed

if TYPE_CHECKING:
    from workbench.envs import Env, Scenario

__all__ = ["RolloutEpisode", "RolloutProgress", "RolloutReport", "load_tasks", "run_rollouts"]

RolloutProgress = Callable[[int, int], None]
"""Called with (episodes finished, episodes in total) after each batch."""

Sink = Callable[[list[dict[str, Any]]], Any]


class RolloutEpisode(BaseModel):
    """One episode's outcome."""

    task: str
    attempt: int
    run_id: str
    status: str = Field(description="The environment's verdict: success, failure, error, timeout or running.")
    success: bool
    reason: str
    steps: int = Field(description="Assistant turns (engine calls) in the episode.")
    tool_calls: int
    parse_errors: int
    end_reason: str = Field(description="Why the agent loop stopped: answer, max_steps, timeout, engine_error.")
    answer: str | None = None
    score: float | None = Field(None, description="The environment's score of the run, when it finished.")
    outputs: list[str] = Field(default_factory=list, description="The model's raw text of every assistant turn.")
    out_of_scope_calls: int = Field(0, description="Calls to tools the environment does not offer.")
    elapsed_s: float


class RolloutReport(BaseModel):
    """What a rollout did, and how well."""

    agent_version: str | None
    episodes: list[RolloutEpisode]
    successes: int
    success_rate: float
    steps: int = Field(description="Assistant turns over all episodes.")
    elapsed_s: float
    steps_per_s: float
    events: int = Field(description="Events handed to the sink.")
    batch_size: int
    end_reasons: dict[str, int]


def load_tasks(
    scenario: str | Path, split: str = "train", *, limit: int | None = None, scenarios_dir: Path | None = None,
    seed: int | None = None,
) -> list[Scenario]:
    """Tasks of a family (``calculator`` or a path to its YAML) for ``split``; a single-scenario
    file gives that one scenario. ``limit`` keeps the first N."""
    from workbench.envs import FamilySpec, default_scenarios_dir, load_file

    if split not in ("train", "test"):
        raise ValidationFailed("split", f"must be train or test, not {split!r}")
    if limit is not None and limit < 1:
        raise ValidationFailed("limit", "must be at least 1")
    path = Path(scenario)
    if not path.suffix:
        path = Path(scenarios_dir or default_scenarios_dir()) / f"{scenario}.yaml"
    if not path.is_file():
        raise ValidationFailed("scenario", f"no scenario or family file {path}")
    loaded = load_file(path)
    if isinstance(loaded, FamilySpec):
        count = limit if limit is not None else None
        tasks = loaded.generate(split, count=count, seed=seed)
    else:
        tasks = [loaded]
    return tasks[:limit] if limit is not None else tasks


class _Episode:
    """One environment and the bookkeeping that ties its events to the model's text."""

    def __init__(self, task: str, attempt: int, max_steps: int) -> None:
        self.env: Env | None = None  # made after, with this episode's sink
        self.task = task
        self.attempt = attempt
        self.max_steps = max_steps
        self.events: list[dict[str, Any]] = []
        self.env_step_of_call: dict[str, int] = {}
        self.lock = threading.RLock()  # env.step flushes into sink() while call_tool holds it
        self.observation = ""

    def sink(self, events: list[dict[str, Any]]) -> None:
        with self.lock:
            self.events.extend(events)

    def call_tool(self, call: ToolCall) -> ToolResult:
        assert self.env is not None
        with self.lock:
            if self.env.done:
                return ToolResult(call_id=call.id, name=call.name, content="the run has ended", is_error=True)
            observation, _reward, _terminated, _truncated, info = self.env.step(
                {"tool": call.name, "arguments": call.arguments}
            )
            self.env_step_of_call[call.id] = int(info["step"])
        error = observation.startswith("error:")
        return ToolResult(call_id=call.id, name=call.name, content=observation, is_error=error)


def _tools(env: Env, examples: Mapping[str, Sequence[ToolExample]]) -> list[ToolSpec]:
    specs = []
    for schema in env.tool_schemas():
        spec = ToolSpec.from_openai(schema)
        shots = list(examples.get(spec.name, ()))
        specs.append(spec.model_copy(update={"examples": shots}) if shots else spec)
    return specs


def _enrich(episode: _Episode, transcript: AgentTranscript, answer_step: int | None) -> None:
    """Put the model's raw text on the environment's agent_action events."""
    text_of_step: dict[int, str] = {}
    for turn in transcript.turns:
        for call in turn.parsed.tool_calls:
            env_step = episode.env_step_of_call.get(call.id)
            if env_step is not None and env_step not in text_of_step:
                text_of_step[env_step] = turn.completion.text
    if answer_step is not None and transcript.turns:
        text_of_step[answer_step] = transcript.turns[-1].completion.text
    for event in episode.events:
        if event["kind"] == "agent_action" and event["step"] in text_of_step:
            event["payload"] = {"text": text_of_step[event["step"]], **event["payload"]}


def run_rollouts(
    engine: Engine,
    scenarios: Sequence[Scenario],
    *,
    attempts: int = 1,
    agent_version: str | None = None,
    tags: Sequence[str] = (),
    sink: Sink | None = None,
    system_prompt: str | None = None,
    sampling: SamplingParams | None = None,
    max_steps: int = 8,
    timeout_s: float = 300.0,
    batch_size: int = 8,
    tool_examples: Mapping[str, Sequence[ToolExample]] | None = None,
    seed: int = 0,
    progress: RolloutProgress | None = None,
) -> RolloutReport:
    """Run ``attempts`` episodes of every scenario with ``engine``; returns the success rate.

    ``batch_size`` episodes run in lockstep (one batched engine call per step); ``batch_size=1``
    runs them one after another. With ``temperature > 0``, each episode samples with its own seed
    (derived from ``seed``), so attempts differ and the rollout is reproducible. An episode that
    ends without an answer (``max_steps``, timeout) leaves its environment run unfinished.
    """
    import workbench.envs as envs

    if attempts < 1:
        raise ValidationFailed("attempts", "must be at least 1")
    if batch_size < 1:
        raise ValidationFailed("batch_size", "must be at least 1")
    sampling = sampling or engine.config.default_sampling
    examples = tool_examples or {}
    jobs = [(scenario, attempt) for scenario in scenarios for attempt in range(attempts)]
    started = time.perf_counter()
    results: list[RolloutEpisode] = []
    events = 0
    for at in range(0, len(jobs), batch_size):
        chunk = jobs[at : at + batch_size]
        episodes: list[_Episode] = []
        try:
            for scenario, attempt in chunk:
                episode = _Episode(scenario.name, attempt, min(max_steps, scenario.limits.max_steps))
                episode.env = envs.make(
                    scenario, seed=seed + attempt, sink=episode.sink, agent_version=agent_version, tags=list(tags)
                )
                episode.observation, _info = episode.env.reset()
                episodes.append(episode)
            loop_inputs = []
            for i, episode in enumerate(episodes):
                messages: list[Message] = [{"role": "system", "content": system_prompt}] if system_prompt else []
                messages.append({"role": "user", "content": episode.observation})
                own = sampling
                if not sampling.greedy:
                    own = sampling.model_copy(update={"seed": (sampling.seed or seed) * 1_000_003 + at + i})
                loop_inputs.append(AgentEpisode(
                    messages=messages, tools=_tools(episode.env, examples), call_tool=episode.call_tool, sampling=own,
                ))
            # Lockstep episodes share one step budget: the largest of the chunk (each env enforces its own).
            transcripts = run_agent_loops(
                engine, loop_inputs, max_steps=max(e.max_steps for e in episodes), timeout_s=timeout_s,
                sampling=sampling,
            )
            batch_events: list[dict[str, Any]] = []
            for episode, transcript in zip(episodes, transcripts, strict=True):
                answer_step = None
                if transcript.end_reason == "answer" and not episode.env.done:
                    _obs, _r, _t, _tr, info = episode.env.step({"answer": transcript.answer})
                    answer_step = int(info["step"])
                _enrich(episode, transcript, answer_step)
                result = episode.env.result
                results.append(RolloutEpisode(
                    task=episode.task, attempt=episode.attempt, run_id=result.run_id, status=result.status,
                    success=bool(result.success), reason=result.reason, steps=transcript.steps,
                    tool_calls=len(transcript.tool_calls), parse_errors=transcript.parse_errors,
                    end_reason=transcript.end_reason, answer=transcript.answer, score=result.score,
                    outputs=[turn.completion.text for turn in transcript.turns],
                    out_of_scope_calls=sum(
                        1 for turn in transcript.turns
                        if turn.parsed.kind == "parse_error" and (turn.parsed.error or "").startswith("unknown tool")
                    ),
                    elapsed_s=round(transcript.elapsed_s, 3),
                ))
                batch_events.extend(episode.events)
        finally:
            for episode in episodes:
                if episode.env is not None:
                    episode.env.close()
        if sink is not None and batch_events:
            sink(batch_events)
            events += len(batch_events)
        if progress is not None:
            progress(len(results), len(jobs))
    elapsed = time.perf_counter() - started
    successes = sum(e.success for e in results)
    steps = sum(e.steps for e in results)
    return RolloutReport(
        agent_version=agent_version, episodes=results, successes=successes,
        success_rate=round(successes / len(results), 4) if results else 0.0, steps=steps,
        elapsed_s=round(elapsed, 3), steps_per_s=round(steps / elapsed, 3) if elapsed > 0 else 0.0, events=events,
        batch_size=batch_size, end_reasons=dict(Counter(e.end_reason for e in results)),
    )
