"""The in-process transformers engine: the CPU default.

It runs its own decode loop instead of ``model.generate`` because training needs, per sampled
token, the log-probability under the unmodified model (``generate`` only exposes processed scores
unless it keeps every step's full logits), per-row stop strings with exact token boundaries, and
per-request sampling in one batch. The loop is the standard one: left-padded prefill with a KV
cache, then one token per step; finished rows are dropped from the batch so the remaining ones
run faster.
"""

from __future__ import annotations

import inspect
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from workbench.agents._engine import Engine, EngineConfig, EngineError, register_engine
from workbench.agents._protocol import to_prompt_messages
from workbench.agents._types import ChatRequest, Completion, SamplingParams, Timing

if TYPE_CHECKING:
    import torch

__all__ = ["TransformersEngine", "TransformersEngineConfig"]


class TransformersEngineConfig(EngineConfig):
    """A local Hugging Face checkpoint run in this process."""

    kind: Literal["transformers"] = "transformers"
    model_path: Path = Field(description="Local directory with config.json, weights and tokenizer.")
    adapter_path: Path | None = Field(None, description="Optional PEFT (LoRA) adapter directory.")
    model_name: str | None = Field(None, description="Name reported in completions; default: the directory name.")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda:0. Never chosen automatically.")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    max_batch_size: int = Field(8, ge=1, le=1024, description="Most conversations decoded together.")
    max_prompt_tokens: int = Field(4096, ge=16, description="Longer prompts are rejected, not truncated.")
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads; default: torch's choice.")


class _Row:
    """Decode state of one request inside a batch."""

    __slots__ = (
        "index", "sampling", "prompt_ids", "tokens", "logprobs", "finish", "stop_reason", "end_s", "text", "generator",
    )  # fmt: skip

    def __init__(self, index: int, sampling: SamplingParams, prompt_ids: list[int]) -> None:
        self.index = index
        self.sampling = sampling
        self.prompt_ids = prompt_ids
        self.tokens: list[int] = []
        self.logprobs: list[float] = []
        self.finish: str | None = None
        self.stop_reason: str | None = None
        self.end_s = 0.0
        self.text = ""
        self.generator: torch.Generator | None = None


@register_engine("transformers", TransformersEngineConfig)
class TransformersEngine(Engine):
    """Runs a causal LM with transformers in this process; batched, greedy or sampled.

    Loading reads only ``config.model_path`` (``local_files_only``); it never touches the network.
    Calls are serialized by a lock, so one engine can be shared between threads.
    """

    config: TransformersEngineConfig

    def __init__(self, config: TransformersEngineConfig) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._load()

    # -- loading ------------------------------------------------------------------------------

    def _load(self) -> None:
        cfg = self.config
        path = Path(cfg.model_path)
        if not (path / "config.json").is_file():
            raise EngineError(f"no model at {path} (config.json missing); convert one with pull_base()")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                path, local_files_only=True, dtype=getattr(torch, cfg.dtype)
            ).to(cfg.device)
        except Exception as exc:  # noqa: BLE001 - one clear error for any loader failure
            raise EngineError(f"could not load the model at {path}: {exc}") from exc
        if cfg.adapter_path is not None:
            try:
                from peft import PeftModel
            except ImportError as exc:
                raise EngineError("adapter_path needs the 'peft' package, which is not installed") from exc
            model = PeftModel.from_pretrained(model, cfg.adapter_path, is_trainable=False).to(cfg.device)
        model.eval()
        if tokenizer.chat_template is None:
            raise EngineError(f"the tokenizer at {path} has no chat template")

        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        if not eos_ids:
            raise EngineError("the model has no EOS token; generation could not stop")
        self._eos_ids = eos_ids
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        # transformers 5.x renamed the forward argument `past_key_values` to `cache`.
        params = inspect.signature(type(base).forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._model = model
        self._tokenizer = tokenizer

    @property
    def model(self) -> Any:
        """The loaded ``PreTrainedModel`` (or ``PeftModel``)."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer (its chat template renders prompts)."""
        return self._tokenizer

    @property
    def model_name(self) -> str:
        return self.config.model_name or Path(self.config.model_path).name

    def close(self) -> None:
        self._model = None
        self._tokenizer = None

    # -- prompts ------------------------------------------------------------------------------

    def render_prompt(self, request: ChatRequest) -> str:
        """The exact prompt text for a request: protocol messages through the chat template."""
        messages = to_prompt_messages(request.messages, request.tools, self.protocol)
        return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prompt_token_ids(self, request: ChatRequest) -> list[int]:
        """Token ids of :meth:`render_prompt` (special tokens come from the template text)."""
        return list(self._tokenizer(self.render_prompt(request), add_special_tokens=False).input_ids)

    # -- generation ---------------------------------------------------------------------------

    def _generate(self, requests: list[ChatRequest], timeout_s: float | None) -> list[Completion]:
        if self._model is None:
            raise EngineError("the engine is closed")
        start = time.perf_counter()
        deadline = None if timeout_s is None else start + timeout_s
        rows = []
        for i, request in enumerate(requests):
            ids = self.prompt_token_ids(request)
            if len(ids) > self.config.max_prompt_tokens:
                raise EngineError(f"request {i}: prompt has {len(ids)} tokens, over max_prompt_tokens")
            rows.append(_Row(i, request.sampling, ids))
        # Similar lengths together means less padding.
        order = sorted(rows, key=lambda r: len(r.prompt_ids))
        size = self.config.max_batch_size
        first_token: dict[int, float] = {}
        with self._lock:
            for at in range(0, len(order), size):
                batch = order[at : at + size]
                prefill_s = self._decode(batch, start, deadline)
                for row in batch:
                    first_token[row.index] = prefill_s
        out = []
        for row in rows:
            n = len(row.tokens)
            out.append(
                Completion(
                    text=row.text,
                    prompt_token_ids=row.prompt_ids,
                    completion_token_ids=row.tokens,
                    logprobs=row.logprobs,
                    finish_reason=row.finish or "length",
                    stop_reason=row.stop_reason,
                    timing=Timing(
                        total_s=row.end_s,
                        first_token_s=first_token.get(row.index),
                        tokens_per_s=(n / row.end_s) if row.end_s > 0 and n else None,
                    ),
                    model=self.model_name,
                )
            )
        return out

    def _decode(self, batch: list[_Row], start: float, deadline: float | None) -> float:
        """Decode one batch in place; returns the time until the first token (prefill)."""
        import torch

        model, device = self._model, self.config.device
        width = max(len(r.prompt_ids) for r in batch)
        input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for j, row in enumerate(batch):
            n = len(row.prompt_ids)
            input_ids[j, width - n :] = torch.tensor(row.prompt_ids, dtype=torch.long)
            attention[j, width - n :] = 1
            if row.sampling.seed is not None:
                # Each request has its own generator, so its sample does not depend on its batch mates.
                row.generator = torch.Generator(device=device).manual_seed(row.sampling.seed + row.index)
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        cache = self._new_cache()
        active = list(batch)
        prefill_s = 0.0
        steps = max(r.sampling.max_new_tokens for r in batch)
        with torch.inference_mode():
            for step in range(steps):
                out = model(
                    input_ids=input_ids,
                    attention_mask=attention,
                    position_ids=positions,
                    use_cache=True,
                    logits_to_keep=1,
                    **{self._cache_kwarg: cache},
                )
                logits = out.logits[:, -1, :].float()
                if step == 0:
                    prefill_s = time.perf_counter() - start
                chosen, chosen_lp = self._pick(logits, active)
                now = time.perf_counter() - start
                keep: list[int] = []
                for j, row in enumerate(active):
                    token = int(chosen[j])
                    row.tokens.append(token)
                    row.logprobs.append(float(chosen_lp[j]))
                    if self._finished(row, token):
                        row.end_s = now
                    else:
                        keep.append(j)
                if not keep:
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    for j in keep:
                        self._finish(active[j], "timeout", None)
                        active[j].end_s = now
                    break
                if len(keep) < len(active):
                    # Drop finished rows from every batched tensor, the KV cache included.
                    index = torch.tensor(keep, dtype=torch.long, device=device)
                    cache.batch_select_indices(index)
                    chosen = chosen.index_select(0, index)
                    attention = attention.index_select(0, index)
                    positions = positions.index_select(0, index)
                    active = [active[j] for j in keep]
                input_ids = chosen.view(-1, 1)
                attention = torch.cat([attention, attention.new_ones((attention.shape[0], 1))], dim=1)
                positions = positions[:, -1:] + 1
        return prefill_s

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self._model.config)
        except TypeError:  # older transformers take no config
            return DynamicCache()

    def _pick(self, logits: torch.Tensor, rows: list[_Row]) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose the next token per row; return it and its log-probability under the raw model."""
        import torch

        logprobs = torch.log_softmax(logits, dim=-1)
        chosen = logits.argmax(dim=-1)
        for j, row in enumerate(rows):
            s = row.sampling
            if s.greedy:
                continue
            scaled = logits[j] / s.temperature
            if s.top_p < 1.0:
                sorted_logits, sorted_idx = torch.sort(scaled, descending=True)
                cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
                # Keep the smallest prefix whose mass reaches top_p (always at least one token).
                cut = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= s.top_p
                sorted_logits[cut] = float("-inf")
                scaled = torch.full_like(scaled, float("-inf")).scatter(0, sorted_idx, sorted_logits)
            probs = torch.softmax(scaled, dim=-1)
            chosen[j] = torch.multinomial(probs, 1, generator=row.generator)[0]
        chosen_lp = logprobs.gather(1, chosen.view(-1, 1)).view(-1)
        return chosen, chosen_lp.cpu()

    def _finished(self, row: _Row, token: int) -> bool:
        if token in self._eos_ids:
            self._finish(row, "stop", self._tokenizer.convert_ids_to_tokens(token))
            return True
        stops = row.sampling.stop
        if stops:
            text = self._tokenizer.decode(row.tokens, skip_special_tokens=True)
            hits = [(text.find(s), s) for s in stops if s in text]
            if hits:
                at, stop = min(hits)
                row.finish, row.stop_reason, row.text = "stop", stop, text[:at]
                return True
        if len(row.tokens) >= row.sampling.max_new_tokens:
            self._finish(row, "length", None)
            return True
        return False

    def _finish(self, row: _Row, reason: str, stop_reason: str | None) -> None:
        row.finish, row.stop_reason = reason, stop_reason
        row.text = self._tokenizer.decode(row.tokens, skip_special_tokens=True)
