"""The event schema: what POST /events, ``wb.events.log`` and environments send.

Payload conventions (what dataset builders read):

* ``message`` — ``{"role": "system|user|assistant|tool", "content": str, "tool_calls"?: [...]}``
* ``environment_observation`` — ``{"observation": str | object, "instructions"?: str}`` (a user turn)
* ``agent_action`` — ``{"text"?: raw model output, "tool"?: name, "arguments"?: {...}, "answer"?: ...}``
* ``tool_call`` — ``{"name": str, "arguments": {...}, "id"?: str}``
* ``tool_result`` — ``{"name": str, "content": str | object, "id"?: str}``
* ``reward`` — ``reward`` holds the number; payload ``{"success"?: bool, "score"?: float, ...}``
* ``metadata`` — anything
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class EventKind(StrEnum):
    """What happened: one of seven kinds; anything else is rejected."""

    AGENT_ACTION = "agent_action"
    ENVIRONMENT_OBSERVATION = "environment_observation"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    REWARD = "reward"
    MESSAGE = "message"
    METADATA = "metadata"


_ID = Field(None, max_length=200)


class EventIn(BaseModel):
    """One event as a client sends it. Unknown fields are rejected, so typos surface at once."""

    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID | None = Field(None, description="Client UUID for idempotent retries; generated when absent.")
    kind: EventKind
    ts: datetime | None = Field(None, description="When it happened (ISO-8601); defaults to receipt time, UTC.")
    session_id: str | None = _ID
    run_id: str | None = _ID
    env_id: str | None = _ID
    scenario_id: str | None = _ID
    agent_version: str | None = _ID
    step: int | None = Field(None, ge=0, le=10_000_000)
    payload: dict[str, Any] = Field(default_factory=dict)
    reward: float | None = None
    tags: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("tags")
    @classmethod
    def _tags_are_short(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag or len(tag) > 200:
                raise ValueError("each tag must be 1 to 200 characters")
        return tags

    @field_validator("reward")
    @classmethod
    def _reward_is_finite(cls, reward: float | None) -> float | None:
        if reward is not None and not math.isfinite(reward):
            raise ValueError("reward must be a finite number")
        return reward

    @model_validator(mode="after")
    def _reward_matches_kind(self) -> EventIn:
        if self.kind is EventKind.REWARD and self.reward is None:
            raise ValueError("reward: a reward event needs a numeric reward")
        if self.kind is not EventKind.REWARD and self.reward is not None:
            raise ValueError("reward: only reward events carry a reward; send it as a separate kind=reward event")
        return self

    def normalized(self) -> EventIn:
        """Fill the generated fields (event_id, ts in UTC)."""
        ts = self.ts or datetime.now(UTC)
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        return self.model_copy(update={"event_id": self.event_id or uuid.uuid4(), "ts": ts})


class ItemStatus(StrEnum):
    """What ingest did with one submitted item."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class ItemResult(BaseModel):
    """The per-item answer of an ingest call."""

    index: int
    status: ItemStatus
    event_id: str | None = None
    field: str | None = None
    reason: str | None = None
    quality_flags: list[str] = Field(default_factory=list)
    pii: dict[str, int] = Field(default_factory=dict)


def parse_event(index: int, item: Any) -> EventIn | ItemResult:
    """Validate one raw item; a failure becomes a ``rejected`` result naming the field.

    The reason never echoes the submitted value, which may hold personal data.
    """
    if not isinstance(item, dict):
        return ItemResult(index=index, status=ItemStatus.REJECTED, field="(event)", reason="an event must be a JSON object")
    try:
        return EventIn.model_validate(item).normalized()
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "(event)"
        reason = first["msg"].removeprefix("Value error, ")
        if reason.startswith("reward: "):
            field, reason = "reward", reason.removeprefix("reward: ")
        if first["type"] == "extra_forbidden":
            reason = "unknown field; allowed fields are " + ", ".join(EventIn.model_fields)
        if field == "kind" and first["type"] in ("enum", "missing"):
            reason = f"{reason}" if first["type"] == "missing" else "unknown kind; expected one of " + ", ".join(k.value for k in EventKind)
        return ItemResult(index=index, status=ItemStatus.REJECTED, field=field, reason=reason)
