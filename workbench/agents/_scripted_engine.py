"""The scripted engine: deterministic replies for tests, demos and offline pipelines.

It is a real engine, not a mock: it renders prompts through the same protocol, honours stop
strings and ``max_new_tokens``, and returns token ids and logprobs with the same shape guarantees
as the model engines. Its "tokenizer" is UTF-8 bytes (one token per byte) and every chosen token
has logprob 0 (the script is certain).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from pydantic import Field

from workbench.agents._engine import Engine, EngineConfig, EngineError, register_engine
from workbench.agents._protocol import to_prompt_messages
from workbench.agents._types import ChatRequest, Completion, Timing

__all__ = ["ScriptedEngine", "ScriptedEngineConfig"]

ReplyFn = Callable[[ChatRequest], str]


class ScriptedEngineConfig(EngineConfig):
    """Replies to give, in order, to successive conversations (across calls)."""

    kind: Literal["scripted"] = "scripted"
    replies: list[str] = Field(default_factory=list, description="Replayed in order, one per conversation.")
    cycle: bool = Field(False, description="Start again from the first reply when the list runs out.")
    model: str = "scripted"


def _render(request: ChatRequest, protocol) -> str:  # noqa: ANN001 - ToolProtocol, kept loose on purpose
    # ChatML-shaped, so prompts look like what the model engines see.
    messages = to_prompt_messages(request.messages, request.tools, protocol)
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


@register_engine("scripted", ScriptedEngineConfig)
class ScriptedEngine(Engine):
    """Replays ``config.replies`` in order, or asks ``reply_fn(request)`` for each reply.

    ``requests`` keeps every request seen, so tests can check what the engine was shown.
    """

    config: ScriptedEngineConfig

    def __init__(self, config: ScriptedEngineConfig | None = None, *, reply_fn: ReplyFn | None = None) -> None:
        super().__init__(config or ScriptedEngineConfig())
        self._reply_fn = reply_fn
        self._next = 0
        self._lock = threading.Lock()
        self.requests: list[ChatRequest] = []

    @classmethod
    def from_replies(cls, *replies: str, cycle: bool = False) -> ScriptedEngine:
        """Shorthand: ``ScriptedEngine.from_replies('{"answer": "4"}')``."""
        return cls(ScriptedEngineConfig(replies=list(replies), cycle=cycle))

    @property
    def model_name(self) -> str:
        return self.config.model

    @property
    def replies_left(self) -> int | None:
        """How many scripted replies remain (``None`` with ``cycle`` or a ``reply_fn``)."""
        if self._reply_fn is not None or self.config.cycle:
            return None
        return max(0, len(self.config.replies) - self._next)

    def _reply(self, request: ChatRequest) -> str:
        if self._reply_fn is not None:
            reply = self._reply_fn(request)
            if not isinstance(reply, str):
                raise EngineError(f"reply_fn returned {type(reply).__name__}, not str")
            return reply
        replies = self.config.replies
        if not replies:
            raise EngineError("the scripted engine has no replies")
        with self._lock:
            if self._next >= len(replies):
                if not self.config.cycle:
                    raise EngineError(f"the scripted engine ran out of replies after {len(replies)}")
                self._next = 0
            reply = replies[self._next]
            self._next += 1
        return reply

    def _generate(self, requests: list[ChatRequest], timeout_s: float | None) -> list[Completion]:
        start = time.perf_counter()
        out = []
        for request in requests:
            self.requests.append(request)
            reply = self._reply(request)
            sampling = request.sampling
            finish: Literal["stop", "length"] = "stop"
            stop_reason: str | None = "eos"
            generated = reply.encode("utf-8")
            # Cut at the earliest stop string, keeping it in the tokens as a model engine would.
            cut = None
            for stop in sampling.stop:
                at = reply.find(stop)
                if at >= 0 and (cut is None or at < cut[0]):
                    cut = (at, stop)
            text = reply
            if cut is not None:
                text = reply[: cut[0]]
                generated = reply[: cut[0] + len(cut[1])].encode("utf-8")
                stop_reason = cut[1]
            if len(generated) > sampling.max_new_tokens:
                generated = generated[: sampling.max_new_tokens]
                text = generated.decode("utf-8", errors="ignore")
                finish, stop_reason = "length", None
            prompt_ids = list(_render(request, self.protocol).encode("utf-8"))
            elapsed = time.perf_counter() - start
            out.append(
                Completion(
                    text=text,
                    prompt_token_ids=prompt_ids,
                    completion_token_ids=list(generated),
                    logprobs=[0.0] * len(generated),
                    finish_reason=finish,
                    stop_reason=stop_reason,
                    timing=Timing(total_s=elapsed, first_token_s=elapsed, tokens_per_s=None),
                    model=self.model_name,
                )
            )
        return out
