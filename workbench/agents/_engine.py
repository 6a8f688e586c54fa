"""The engine interface, its errors and the registry that builds an engine from its config.

An engine turns conversations into completions. Every implementation renders tools through the
same protocol (:func:`to_prompt_messages`), so a transcript means the same text whichever engine
produced it. Engines are chosen by ``config.kind`` through :func:`make_engine`, never by probing
what happens to be installed.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workbench.agents._protocol import DEFAULT_PROTOCOL, ToolProtocol
from workbench.agents._types import ChatRequest, Completion, Message, SamplingParams, ToolSpec
from workbench.errors import ValidationFailed, WorkbenchError

__all__ = [
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineTimeout",
    "engine_kinds",
    "make_engine",
    "parse_engine_config",
    "register_engine",
]


class EngineError(WorkbenchError):
    """The engine could not produce a completion (server error, bad response, model failure)."""

    status_code = 502


class EngineTimeout(EngineError):
    """The engine did not answer within the caller's time limit."""

    status_code = 504


class EngineConfig(BaseModel):
    """Base of every engine config; ``kind`` names the registered engine that reads it."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    protocol: ToolProtocol = Field(default_factory=lambda: DEFAULT_PROTOCOL)
    default_sampling: SamplingParams = Field(default_factory=SamplingParams)


class Engine(ABC):
    """Generates chat completions, one conversation or many at once.

    Implementations override :meth:`_generate`; callers use :meth:`chat` (one conversation),
    :meth:`generate` (a batch sharing tools and sampling) or :meth:`generate_requests` (a batch
    where each conversation has its own tools and sampling). Engines are context managers;
    :meth:`close` releases models, processes or connections.
    """

    kind: ClassVar[str] = ""
    config_class: ClassVar[type[EngineConfig]] = EngineConfig

    def __init__(self, config: EngineConfig) -> None:
        self.config = config

    @property
    def protocol(self) -> ToolProtocol:
        """How this engine renders tools into prompts."""
        return self.config.protocol

    @property
    def model_name(self) -> str | None:
        """A name for the model behind the engine (for transcripts and metrics)."""
        return None

    # -- public API ---------------------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        sampling: SamplingParams | None = None,
        *,
        timeout_s: float | None = None,
    ) -> Completion:
        """Complete one conversation; the model may call ``tools`` (rendered by the protocol)."""
        return self.generate([messages], sampling, tools=tools, timeout_s=timeout_s)[0]

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        sampling: SamplingParams | None = None,
        *,
        tools: Sequence[ToolSpec] = (),
        timeout_s: float | None = None,
    ) -> list[Completion]:
        """Complete many conversations at once (batched where the backend allows); order is kept."""
        sampling = sampling or self.config.default_sampling
        requests = [ChatRequest(messages=list(c), tools=list(tools), sampling=sampling) for c in conversations]
        return self.generate_requests(requests, timeout_s=timeout_s)

    def generate_requests(self, requests: Sequence[ChatRequest], *, timeout_s: float | None = None) -> list[Completion]:
        """Complete requests that may differ in tools and sampling; order is kept."""
        if not requests:
            return []
        for i, request in enumerate(requests):
            _check_messages(request.messages, f"requests[{i}].messages")
        if timeout_s is not None and timeout_s <= 0:
            raise EngineTimeout("no time left for generation")
        completions = self._generate(list(requests), timeout_s)
        if len(completions) != len(requests):  # an engine bug, not a user error
            name = type(self).__name__
            raise EngineError(f"{name} returned {len(completions)} completions for {len(requests)} requests")
        return completions

    def close(self) -> None:
        """Release what the engine holds (models, servers, connections). Idempotent."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for implementations ------------------------------------------------------------------

    @abstractmethod
    def _generate(self, requests: list[ChatRequest], timeout_s: float | None) -> list[Completion]:
        """Produce one completion per request, in order."""


def _check_messages(messages: Sequence[Message], field: str) -> None:
    if not messages:
        raise ValidationFailed(field, "a conversation needs at least one message")
    for j, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ValidationFailed(f"{field}[{j}]", "a message must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise ValidationFailed(f"{field}[{j}].role", f"must be system, user, assistant or tool, not {role!r}")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ValidationFailed(f"{field}[{j}].content", "must be a string")
        if content is None and not message.get("tool_calls"):
            raise ValidationFailed(f"{field}[{j}].content", "is required (unless the message has tool_calls)")


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[Engine]] = {}
_REGISTRY_LOCK = threading.Lock()
E = TypeVar("E", bound=type[Engine])


def register_engine(kind: str, config_class: type[EngineConfig]) -> Callable[[E], E]:
    """Class decorator: make an engine constructible by :func:`make_engine` under ``kind``."""

    def decorate(cls: E) -> E:
        with _REGISTRY_LOCK:
            existing = _REGISTRY.get(kind)
            if existing is not None and existing is not cls:
                raise ValueError(f"engine kind {kind!r} is already registered by {existing.__qualname__}")
            cls.kind = kind
            cls.config_class = config_class
            _REGISTRY[kind] = cls
        return cls

    return decorate


def engine_kinds() -> list[str]:
    """Names of the registered engine kinds."""
    _load_builtin_engines()
    return sorted(_REGISTRY)


def _load_builtin_engines() -> None:
    # The built-in modules register themselves on import; importing them is cheap (no torch).
    from workbench.agents import _openai_engine, _scripted_engine, _transformers_engine  # noqa: F401


def parse_engine_config(data: EngineConfig | Mapping[str, Any]) -> EngineConfig:
    """Validate a config dict (from YAML, JSON or CLI) into the config class of its ``kind``."""
    _load_builtin_engines()
    if isinstance(data, EngineConfig):
        cls = _REGISTRY.get(data.kind)
        if cls is None:
            raise ValidationFailed("kind", f"unknown engine kind {data.kind!r}; known: {', '.join(sorted(_REGISTRY))}")
        if not isinstance(data, cls.config_class):
            raise ValidationFailed("kind", f"config {type(data).__name__} does not belong to engine {data.kind!r}")
        return data
    if not isinstance(data, Mapping) or "kind" not in data:
        raise ValidationFailed("kind", "an engine config needs a 'kind' (" + ", ".join(sorted(_REGISTRY)) + ")")
    kind = data["kind"]
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise ValidationFailed("kind", f"unknown engine kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}")
    try:
        return cls.config_class.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        raise ValidationFailed(field, err["msg"]) from exc


def make_engine(config: EngineConfig | Mapping[str, Any], **kwargs: Any) -> Engine:
    """Build the engine named by ``config.kind`` (a config object or a dict with ``kind``).

    ``kwargs`` go to the engine's constructor (for example ``http_client=`` for the OpenAI-compatible
    engines, ``reply_fn=`` for the scripted one).
    """
    cfg = parse_engine_config(config)
    return _REGISTRY[cfg.kind](cfg, **kwargs)
