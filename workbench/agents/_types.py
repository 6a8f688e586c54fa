"""Value types shared by engines, the tool-call protocol and the agent loop.

Messages are plain OpenAI-style dicts (``{"role": ..., "content": ...}``) because every consumer
downstream (chat templates, TRL datasets, the event schema, JSON over REST) already speaks that
shape; the types here describe what travels *around* messages.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Message = dict[str, Any]
"""One chat message: ``{"role": "system"|"user"|"assistant"|"tool", "content": str, ...}``."""

FinishReason = Literal["stop", "length", "timeout"]
"""Why a completion ended: EOS or a stop string (``stop``), ``max_new_tokens`` (``length``), or the
caller's deadline (``timeout``)."""


class ToolExample(BaseModel):
    """One worked exchange shown to the model: question, call, tool result, final answer."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="The user's request in the example.")
    arguments: dict[str, Any] = Field(description="Arguments of the example call.")
    result: str = Field(description="What the tool returned in the example.")
    answer: str = Field(description="The final answer the assistant gives after the result.")


class ToolSpec(BaseModel):
    """A tool the model may call: a name, what it does and a JSON schema of its arguments."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON schema of the arguments object.",
    )
    examples: list[ToolExample] = Field(
        default_factory=list,
        description="Worked examples, shown to the model as example turns (see ToolProtocol.max_examples).",
    )

    @classmethod
    def from_openai(cls, tool: dict[str, Any]) -> ToolSpec:
        """Build from an OpenAI ``{"type": "function", "function": {...}}`` tool or an MCP tool dict."""
        fn = tool.get("function", tool)
        return cls(
            name=fn["name"],
            description=fn.get("description") or "",
            parameters=fn.get("parameters") or fn.get("inputSchema") or fn.get("input_schema")
            or {"type": "object", "properties": {}},
        )

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry for this tool."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class ToolCall(BaseModel):
    """A parsed request from the model to run one tool."""

    id: str = Field(description="Unique within a transcript; ties the tool result to the call.")
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``tool_calls`` entry (arguments as a JSON string, as that API does)."""
        import json

        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }


class ToolResult(BaseModel):
    """What running a tool produced; ``is_error`` results are shown to the model as errors."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    latency_s: float = 0.0


class SamplingParams(BaseModel):
    """How to decode. ``temperature == 0`` means greedy; ``seed`` makes sampling reproducible."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(128, ge=1, le=32768)
    seed: int | None = None
    stop: tuple[str, ...] = Field(default=(), description="Stop strings; the text is cut before the first one.")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_tuple(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        return tuple(value)

    @field_validator("stop")
    @classmethod
    def _stop_non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(s == "" for s in value):
            raise ValueError("stop strings must not be empty")
        return value

    @property
    def greedy(self) -> bool:
        """True when decoding picks the most likely token every step."""
        return self.temperature == 0.0


class Timing(BaseModel):
    """Wall-clock figures of one completion, in seconds."""

    total_s: float = Field(description="From the start of the engine call until this completion finished.")
    first_token_s: float | None = Field(None, description="Until the first completion token (prefill).")
    tokens_per_s: float | None = Field(None, description="Completion tokens / total_s for this completion.")


class Completion(BaseModel):
    """One generated reply, with what training needs to avoid re-tokenization drift.

    ``completion_token_ids`` are every token the model sampled, including a final EOS or the tokens
    that formed a stop string; ``text`` is the visible text, cut before a stop string and without
    special tokens. ``logprobs[i]`` is the log-probability of ``completion_token_ids[i]`` under the
    unmodified model distribution (before temperature / top-p). Fields the backend cannot provide
    (for example token ids from a generic OpenAI server) are ``None``.
    """

    text: str
    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    finish_reason: FinishReason
    stop_reason: str | None = Field(None, description="The stop string or EOS token that ended it.")
    timing: Timing
    model: str | None = None

    @property
    def num_prompt_tokens(self) -> int | None:
        """Number of prompt tokens, when known."""
        return None if self.prompt_token_ids is None else len(self.prompt_token_ids)

    @property
    def num_completion_tokens(self) -> int | None:
        """Number of completion tokens, when known."""
        return None if self.completion_token_ids is None else len(self.completion_token_ids)


class ChatRequest(BaseModel):
    """One conversation to complete, with the tools the model may call and how to decode."""

    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    sampling: SamplingParams = Field(default_factory=SamplingParams)
