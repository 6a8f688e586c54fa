"""Events a run emits, in the Data Factory wire schema (see workbench.data.schema)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

Sink = Callable[[list[dict[str, Any]]], Any]

EVENT_KINDS = (
    "environment_observation",
    "agent_action",
    "tool_call",
    "tool_result",
    "reward",
    "message",
    "metadata",
)


class EventEmitter:
    """Buffers the events of one reset or step and hands them to ``sink`` as one list.

    A sink that raises does not break the run: its events stay queued, in order, and go out
    with the next flush (``pending`` counts them).
    """

    def __init__(
        self,
        sink: Sink | None,
        *,
        run_id: str,
        env_id: str,
        scenario_id: str,
        agent_version: str | None,
        tags: list[str],
    ) -> None:
        self.sink = sink
        self.run_id = run_id
        self.env_id = env_id
        self.scenario_id = scenario_id
        self.agent_version = agent_version
        self.tags = list(tags)
        self._buffer: list[dict[str, Any]] = []
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        """Events not yet accepted by the sink."""
        return len(self._buffer)

    def emit(self, kind: str, step: int, payload: dict[str, Any], *, reward: float | None = None) -> None:
        """Queue one event (a no-op without a sink)."""
        if self.sink is None:
            return
        event = {
            "event_id": str(uuid.uuid4()),
            "kind": kind,
            "ts": datetime.now(timezone.utc).isoformat(),
            "run_id": self.run_id,
            "env_id": self.env_id,
            "scenario_id": self.scenario_id,
            "agent_version": self.agent_version,
            "step": step,
            "payload": payload,
            "tags": list(self.tags),
        }
        if kind == "reward":
            event["reward"] = float(reward if reward is not None else 0.0)
        self._buffer.append(event)

    def flush(self) -> None:
        """Send what is queued; keep it queued if the sink raises."""
        if self.sink is None or not self._buffer:
            return
        batch = self._buffer
        self._buffer = []
        try:
            self.sink(batch)
            self.last_error = None
        except Exception as exc:  # noqa: BLE001 - a failing sink must not break the environment
            self._buffer = batch + self._buffer
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("event sink failed for run %s (%d events kept): %s", self.run_id, len(self._buffer), exc)
