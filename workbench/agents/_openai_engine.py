"""Engines that talk to an OpenAI-compatible HTTP server: any such server, and vLLM in particular.

Prompts are rendered through the same tool-call protocol as the in-process engine, so the
server sees the same conversation text. Conversations of a batch go out as concurrent requests
(the server batches them). Where the server can say which tokens it used (vLLM's
``return_token_ids``) and their logprobs, the completion carries them; otherwise those fields are
``None``. The ``completions`` endpoint renders the chat template locally and sends token ids, for
servers without a chat template or when the exact prompt ids must be ours.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr

from workbench.agents._engine import Engine, EngineConfig, EngineError, EngineTimeout, register_engine
from workbench.agents._protocol import _tool_calls_text, to_prompt_messages
from workbench.agents._types import ChatRequest, Completion, Timing

__all__ = ["OpenAIEngine", "OpenAIEngineConfig", "VLLMEngine", "VLLMEngineConfig"]


class OpenAIEngineConfig(EngineConfig):
    """An OpenAI-compatible server: its ``/v1`` root URL, a key and a model name."""

    kind: Literal["openai"] = "openai"
    base_url: str = Field(description="API root including /v1, e.g. https://api.example.com/v1")
    model: str = Field(description="Model name as the server knows it.")
    api_key: SecretStr | None = Field(None, description="Sent as a Bearer token.")
    api_key_env: str | None = Field(None, description="Read the key from this environment variable instead.")
    endpoint: Literal["chat", "completions"] = Field(
        "chat", description="/chat/completions, or /completions with the prompt rendered locally."
    )
    tokenizer_path: Path | None = Field(
        None, description="Local tokenizer directory (its chat template); required for endpoint=completions."
    )
    logprobs: bool = Field(True, description="Ask for logprobs (dropped automatically if the server refuses).")
    timeout_s: float = Field(120.0, gt=0)
    max_concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once for a batch.")
    headers: dict[str, str] = Field(default_factory=dict)
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Merged into every request body.")


class VLLMEngineConfig(OpenAIEngineConfig):
    """A vLLM OpenAI-compatible server, with token ids returned and LoRA adapters switchable."""

    kind: Literal["vllm"] = "vllm"  # type: ignore[assignment]
    base_url: str = "http://127.0.0.1:8000/v1"
    adapter: str | None = Field(None, description="A loaded LoRA adapter's name; requests go to it instead of model.")


def _api_root(base_url: str) -> str:
    return base_url.rstrip("/")


@register_engine("openai", OpenAIEngineConfig)
class OpenAIEngine(Engine):
    """Chat completions from any OpenAI-compatible server, via httpx.

    ``http_client`` may be given (an ``httpx.Client``; tests pass one with a mock transport);
    otherwise the engine owns one and closes it in :meth:`close`.
    """

    config: OpenAIEngineConfig

    def __init__(self, config: OpenAIEngineConfig, *, http_client: Any = None) -> None:
        super().__init__(config)
        import httpx

        headers = dict(config.headers)
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._owns_client = http_client is None
        self._client = http_client or httpx.Client(timeout=config.timeout_s)
        self._headers = headers
        self._logprobs = config.logprobs
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()
        if config.endpoint == "completions" and config.tokenizer_path is None:
            raise EngineError("endpoint=completions needs tokenizer_path (the chat template is rendered locally)")

    def _api_key(self) -> str | None:
        if self.config.api_key is not None:
            return self.config.api_key.get_secret_value()
        if self.config.api_key_env:
            value = os.environ.get(self.config.api_key_env)
            if not value:
                raise EngineError(f"environment variable {self.config.api_key_env} (the API key) is not set")
            return value
        return None

    @property
    def model_name(self) -> str:
        return self.config.model

    @property
    def request_model(self) -> str:
        """The ``model`` field sent with each request."""
        return self.config.model

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- HTTP ---------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{_api_root(self.config.base_url)}/{path.lstrip('/')}"

    def _post(self, path: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        import httpx

        try:
            response = self._client.post(self._url(path), json=body, headers=self._headers, timeout=timeout_s)
        except httpx.TimeoutException as exc:
            raise EngineTimeout(f"{path}: no answer within {timeout_s:.1f} s") from exc
        except httpx.HTTPError as exc:
            raise EngineError(f"{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise EngineError(f"{path}: HTTP {response.status_code}: {response.text[:500]}")
        try:
            return response.json()
        except ValueError as exc:
            raise EngineError(f"{path}: the server answered with non-JSON: {response.text[:200]}") from exc

    def list_models(self) -> list[str]:
        """Ids of the models (and loaded adapters) the server offers."""
        import httpx

        try:
            response = self._client.get(self._url("models"), headers=self._headers, timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise EngineError(f"models: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise EngineError(f"models: HTTP {response.status_code}: {response.text[:300]}")
        return [m.get("id") for m in response.json().get("data", [])]

    # -- generation ---------------------------------------------------------------------------

    def _extra_body(self) -> dict[str, Any]:
        return dict(self.config.extra_body)

    def _body(self, request: ChatRequest, index: int) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.request_model,
            "max_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
        }
        if s.seed is not None:
            body["seed"] = s.seed + index  # same convention as the in-process engine
        if s.stop:
            body["stop"] = list(s.stop)
        body.update(self._extra_body())
        return body

    def _tokenize_prompt(self, request: ChatRequest) -> list[int]:
        with self._tokenizer_lock:
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                try:
                    self._tokenizer = AutoTokenizer.from_pretrained(self.config.tokenizer_path, local_files_only=True)
                except Exception as exc:  # noqa: BLE001
                    raise EngineError(f"could not load the tokenizer at {self.config.tokenizer_path}: {exc}") from exc
        messages = to_prompt_messages(request.messages, request.tools, self.protocol)
        text = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(self._tokenizer(text, add_special_tokens=False).input_ids)

    def _one(self, request: ChatRequest, index: int, start: float, deadline: float | None) -> Completion:
        remaining = self.config.timeout_s
        if deadline is not None:
            remaining = min(remaining, deadline - time.perf_counter())
        if remaining <= 0:
            raise EngineTimeout("no time left for generation")
        body = self._body(request, index)
        prompt_ids: list[int] | None = None
        if self.config.endpoint == "completions":
            prompt_ids = self._tokenize_prompt(request)
            path = "completions"
            body["prompt"] = prompt_ids
            if self._logprobs:
                body["logprobs"] = 1
        else:
            path = "chat/completions"
            body["messages"] = to_prompt_messages(request.messages, request.tools, self.protocol)
            if self._logprobs:
                body["logprobs"] = True
        try:
            data = self._post(path, body, remaining)
        except EngineError as exc:
            # Some servers reject logprobs outright; stop asking rather than fail every call.
            if self._logprobs and "logprob" in str(exc).lower() and not isinstance(exc, EngineTimeout):
                self._logprobs = False
                body.pop("logprobs", None)
                data = self._post(path, body, remaining)
            else:
                raise
        return self._completion(data, prompt_ids, time.perf_counter() - start)

    def _completion(self, data: dict[str, Any], prompt_ids: list[int] | None, elapsed: float) -> Completion:
        choices = data.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            raise EngineError(f"the server returned no choices: {str(data)[:300]}")
        choice = choices[0]
        if "message" in choice:
            message = choice.get("message") or {}
            text = message.get("content") or ""
            if not text.strip() and message.get("tool_calls"):
                # A server-side tool parser took the call out of the text; put it back in our format.
                text = _tool_calls_text(message["tool_calls"])
        else:
            text = choice.get("text") or ""
        token_ids = choice.get("token_ids")
        prompt_ids = prompt_ids or choice.get("prompt_token_ids") or data.get("prompt_token_ids")
        logprobs = self._logprob_values(choice.get("logprobs"))
        if token_ids is None and logprobs is not None:
            token_ids = self._ids_from_logprob_tokens(choice.get("logprobs"))
        if token_ids is not None and logprobs is not None and len(token_ids) != len(logprobs):
            logprobs = None  # cannot be aligned with the tokens; better absent than wrong
        reason = choice.get("finish_reason")
        stop_reason = choice.get("stop_reason")
        n = len(token_ids) if token_ids is not None else None
        return Completion(
            text=text,
            prompt_token_ids=list(prompt_ids) if prompt_ids is not None else None,
            completion_token_ids=list(token_ids) if token_ids is not None else None,
            logprobs=logprobs,
            finish_reason="length" if reason == "length" else "stop",
            stop_reason=str(stop_reason) if stop_reason is not None else None,
            timing=Timing(total_s=elapsed, tokens_per_s=(n / elapsed) if n and elapsed > 0 else None),
            model=data.get("model") or self.request_model,
        )

    @staticmethod
    def _logprob_values(block: Any) -> list[float] | None:
        if not isinstance(block, dict):
            return None
        if isinstance(block.get("content"), list):  # chat format
            values = [item.get("logprob") for item in block["content"] if isinstance(item, dict)]
        elif isinstance(block.get("token_logprobs"), list):  # completions format
            values = block["token_logprobs"]
        else:
            return None
        if any(v is None for v in values):
            return None
        return [float(v) for v in values]

    @staticmethod
    def _ids_from_logprob_tokens(block: Any) -> list[int] | None:
        # vLLM with return_tokens_as_token_ids names tokens "token_id:123".
        tokens = []
        items = block.get("content") if isinstance(block, dict) else None
        raw = [i.get("token") for i in items] if isinstance(items, list) else (block or {}).get("tokens")
        if not isinstance(raw, list):
            return None
        for token in raw:
            if not isinstance(token, str) or not token.startswith("token_id:"):
                return None
            try:
                tokens.append(int(token.removeprefix("token_id:")))
            except ValueError:
                return None
        return tokens

    def _generate(self, requests: list[ChatRequest], timeout_s: float | None) -> list[Completion]:
        start = time.perf_counter()
        deadline = None if timeout_s is None else start + timeout_s
        if len(requests) == 1:
            return [self._one(requests[0], 0, start, deadline)]
        workers = min(self.config.max_concurrency, len(requests))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-engine") as pool:
            futures = [pool.submit(self._one, r, i, start, deadline) for i, r in enumerate(requests)]
            return [f.result() for f in futures]


@register_engine("vllm", VLLMEngineConfig)
class VLLMEngine(OpenAIEngine):
    """A vLLM server: asks for token ids, and loads / unloads LoRA adapters at runtime.

    Runtime adapter loading needs the server started with ``--enable-lora`` and the environment
    variable ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` (see :class:`VLLMServer`).
    """

    config: VLLMEngineConfig

    def __init__(self, config: VLLMEngineConfig, *, http_client: Any = None) -> None:
        super().__init__(config, http_client=http_client)
        self._adapter = config.adapter

    @property
    def request_model(self) -> str:
        return self._adapter or self.config.model

    @property
    def adapter(self) -> str | None:
        """The LoRA adapter requests currently go to (``None``: the base model)."""
        return self._adapter

    def use_adapter(self, name: str | None) -> None:
        """Send later requests to adapter ``name`` (already loaded), or to the base model with ``None``."""
        self._adapter = name

    def _extra_body(self) -> dict[str, Any]:
        # Token ids of prompt and completion: what makes trajectories trainable without re-tokenizing.
        return {"return_token_ids": True, **self.config.extra_body}

    def _server_root(self) -> str:
        root = _api_root(self.config.base_url)
        return root[: -len("/v1")] if root.endswith("/v1") else root

    def _admin(self, path: str, body: dict[str, Any]) -> None:
        import httpx

        url = f"{self._server_root()}/v1/{path}"
        try:
            response = self._client.post(url, json=body, headers=self._headers, timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            raise EngineError(f"{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise EngineError(f"{path}: HTTP {response.status_code}: {response.text[:500]}")

    def load_lora_adapter(self, name: str, path: Path | str) -> None:
        """Load a PEFT LoRA adapter directory into the running server under ``name``."""
        self._admin("load_lora_adapter", {"lora_name": name, "lora_path": str(Path(path).resolve())})

    def unload_lora_adapter(self, name: str) -> None:
        """Unload adapter ``name``; requests that named it switch back to the base model."""
        self._admin("unload_lora_adapter", {"lora_name": name})
        if self._adapter == name:
            self._adapter = None
