"""Reward functions: a registry referenced by name from YAML, built-ins, an LLM judge, verifiers, RMs.

Every reward function follows TRL's GRPO convention::

    fn(prompts, completions, **kwargs) -> list[float | None]

``prompts`` / ``completions`` are conversations (lists of messages) or strings; every extra dataset
column arrives in ``kwargs`` as a list aligned with them (plus TRL's ``trainer_state``,
``log_metric`` ...). ``None`` means "no opinion" (TRL ignores it in the sum).

Names resolve through :func:`get_reward_function`: a name registered with :func:`reward_function`
or a ``"module:function"`` string. Factories (registered with ``factory=True``) build a reward
function from parameters, e.g. ``get_reward_function("llm_judge", engine=..., rubric=...)``.

Nothing here imports torch; :class:`RewardModelScorer` loads it when built.
"""

from __future__ import annotations

import importlib
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ValidationFailed

__all__ = [
    "JudgeReward",
    "RewardFn",
    "RewardModelScorer",
    "VerifierReward",
    "completion_text",
    "get_reward_function",
    "llm_judge_reward",
    "parse_judge_score",
    "reward_function",
    "reward_function_names",
]

RewardFn = Callable[..., list[float | None]]

# Keyword arguments TRL adds next to the dataset columns; not part of a dataset row.
_TRL_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "environments", "completion_ids"})


@dataclass(frozen=True)
class _Entry:
    obj: Callable[..., Any]
    factory: bool


_REGISTRY: dict[str, _Entry] = {}
_LOCK = threading.Lock()


def reward_function(name: str | None = None, *, factory: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: register a reward function (or, with ``factory=True``, a function that builds one).

    >>> @reward_function("short")
    ... def short(prompts, completions, **kwargs):
    ...     return [1.0 if len(completion_text(c)) < 200 else 0.0 for c in completions]
    """

    def decorate(fn: Callable) -> Callable:
        key = name or fn.__name__
        with _LOCK:
            existing = _REGISTRY.get(key)
            if existing is not None and existing.obj is not fn:
                same = getattr(existing.obj, "__qualname__", None) == getattr(fn, "__qualname__", None) and getattr(
                    existing.obj, "__module__", None
                ) == getattr(fn, "__module__", None)
                if not same:  # a module imported twice re-registers itself; anything else is a clash
                    raise ValueError(f"reward function {key!r} is already registered by {existing.obj!r}")
            _REGISTRY[key] = _Entry(fn, factory)
        return fn

    return decorate


def reward_function_names() -> list[str]:
    """Names of the registered reward functions and factories."""
    return sorted(_REGISTRY)


def _named(fn: Callable, name: str) -> Callable:
    # TRL names the reward metrics after __name__ (rewards/<name>/mean).
    if not hasattr(fn, "__name__"):
        try:
            fn.__name__ = name  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
    return fn


def get_reward_function(spec: str | Callable[..., Any], **params: Any) -> RewardFn:
    """Resolve a reward function: a callable, a registered name, or ``"module:function"``.

    ``params`` go to factories (and to ``module:function`` objects when given). Unknown names,
    missing modules or parameters for a plain function raise :class:`ValidationFailed`.
    """
    if callable(spec):
        if params:
            return _named(spec(**params), getattr(spec, "__name__", "reward"))
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValidationFailed("reward_funcs", f"not a reward function name: {spec!r}")
    spec = spec.strip()
    entry = _REGISTRY.get(spec)
    if entry is not None:
        if entry.factory:
            return _named(entry.obj(**params), spec)
        if params:
            raise ValidationFailed("reward_funcs", f"{spec!r} takes no parameters (got {', '.join(params)})")
        return entry.obj
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValidationFailed("reward_funcs", f"cannot import {module_name!r}: {exc}") from exc
        obj = getattr(module, attr, None)
        if obj is None or not callable(obj):
            raise ValidationFailed("reward_funcs", f"{module_name!r} has no callable {attr!r}")
        is_factory = any(e.obj is obj and e.factory for e in _REGISTRY.values())
        if is_factory or params:
            return _named(obj(**params), attr)
        return obj
    known = ", ".join(reward_function_names()) or "none"
    raise ValidationFailed("reward_funcs", f"unknown reward function {spec!r} (registered: {known}; or 'module:function')")


# --------------------------------------------------------------------------- helpers


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or the assistant content of a list of messages."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, Mapping))
    return str(completion)


def _render_prompt(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    lines = []
    for message in prompt or []:
        if isinstance(message, Mapping):
            lines.append(f"{message.get('role', 'user')}: {message.get('content') or ''}")
    return "\n".join(lines)


def _rows(prompts: Sequence[Any], kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Dataset rows back from TRL's column-wise kwargs (one per completion)."""
    columns = {k: v for k, v in kwargs.items() if k not in _TRL_KWARGS and isinstance(v, (list, tuple))}
    return [{"prompt": p, **{k: v[i] for k, v in columns.items() if i < len(v)}} for i, p in enumerate(prompts)]


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------- built-ins


@reward_function("tool_call_format")
def tool_call_format(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """1.0 when the reply is a well-formed JSON tool call or ``{"answer": ...}`` under the protocol, else 0.0."""
    from workbench.agents import parse_tool_output

    scores: list[float | None] = []
    for completion in completions:
        parsed = parse_tool_output(completion_text(completion))
        ok = parsed.kind == "tool_call" or (parsed.kind == "answer" and parsed.answer_format == "json")
        scores.append(1.0 if ok else 0.0)
    return scores


def _same_answer(given: str, expected: Any) -> bool:
    a, b = given.strip().strip(".").lower(), str(expected).strip().strip(".").lower()
    if a == b:
        return True
    x, y = _finite(a.replace(",", "")), _finite(b.replace(",", ""))
    return x is not None and y is not None and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)


@reward_function("exact_answer")
def exact_answer(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """1.0 when the reply's final answer equals the row's ``answer`` column (numbers compared as numbers).

    Rows without an ``answer`` get ``None`` (no opinion).
    """
    from workbench.agents import parse_tool_output

    expected = kwargs.get("answer") or [None] * len(completions)
    scores: list[float | None] = []
    for completion, want in zip(completions, expected, strict=False):
        if want is None:
            scores.append(None)
            continue
        parsed = parse_tool_output(completion_text(completion))
        scores.append(1.0 if parsed.kind == "answer" and _same_answer(parsed.answer or "", want) else 0.0)
    return scores


# --------------------------------------------------------------------------- verifiers


class VerifierReward:
    """A reward function around ``verify(prompt_row, completion_text) -> float``.

    The row holds ``prompt`` and every extra dataset column. A verifier that raises or returns a
    non-number scores ``failure_score`` and is counted in ``errors`` (and logged as
    ``<name>/errors`` when TRL provides ``log_metric``), so one bad check does not end a run.
    """

    def __init__(self, verify: Callable[[Mapping[str, Any], str], float], *, name: str = "verifier",
                 failure_score: float = 0.0) -> None:  # fmt: skip
        if not callable(verify):
            raise ValidationFailed("verifier", "must be a callable verify(prompt_row, completion_text) -> float")
        self.verify = verify
        self.__name__ = name
        self.failure_score = failure_score
        self.calls = 0
        self.errors = 0
        self.last_error: str | None = None

    def score(self, row: Mapping[str, Any], text: str) -> float:
        """The verifier's score of one completion (``failure_score`` if it fails)."""
        self.calls += 1
        try:
            value = _finite(self.verify(row, text))
        except Exception as exc:  # noqa: BLE001 - a failing check scores failure_score, it does not end training
            value = None
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if value is None:
            self.errors += 1
            return self.failure_score
        return value

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        rows = _rows(prompts, kwargs)
        errors_before = self.errors
        scores = [self.score(row, completion_text(c)) for row, c in zip(rows, completions, strict=True)]
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric(f"{self.__name__}/errors", float(self.errors - errors_before))
        return scores


@reward_function("verifier", factory=True)
def verifier_reward(verify: Callable[[Mapping[str, Any], str], float], name: str = "verifier",
                    failure_score: float = 0.0) -> VerifierReward:  # fmt: skip
    """Factory: a reward function that calls ``verify(prompt_row, completion_text)``."""
    return VerifierReward(verify, name=name, failure_score=failure_score)


# --------------------------------------------------------------------------- LLM judge (RLAIF)

_JSON_SCORE = re.compile(r"\{[^{}]*\"score\"\s*:\s*\"?(-?\d+(?:\.\d+)?)\"?[^{}]*\}", re.IGNORECASE)
_LABELLED = re.compile(r"\b(?:score|rating|grade)\b\s*(?:is|of|=|:)?\s*\**\s*(-?\d+(?:\.\d+)?)"
                       r"(?:\s*(?:/|out of)\s*(\d+(?:\.\d+)?))?", re.IGNORECASE)  # fmt: skip
_FRACTION = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_BARE = re.compile(r"^\s*\**\s*(-?\d+(?:\.\d+)?)\s*\**\s*\.?\s*$")


def parse_judge_score(text: str, min_score: float = 0.0, max_score: float = 10.0) -> float | None:
    """The score a judge wrote, on the ``[min_score, max_score]`` scale, or ``None`` if unreadable.

    Reads, in order: a JSON object with ``"score"``; a labelled score (``Score: 7``, ``rating = 7/10``,
    ``**Score:** 4 out of 5``); a bare fraction (``8/10``); a reply that is only a number. A fraction
    with another denominator is rescaled (``4/5`` on 0-10 is 8). Values outside the range, or
    several different labelled scores, count as unreadable rather than being guessed at.
    """
    if not isinstance(text, str) or not text.strip():
        return None

    def scaled(value: str, denominator: str | None) -> float | None:
        number = _finite(value)
        if number is None:
            return None
        if denominator is not None:
            denom = _finite(denominator)
            if not denom or denom <= 0:
                return None
            if denom != max_score:
                number = min_score + number / denom * (max_score - min_score)
        return number if min_score <= number <= max_score else None

    match = _JSON_SCORE.search(text)
    if match:
        return scaled(match.group(1), None)
    labelled = [(m.group(1), m.group(2)) for m in _LABELLED.finditer(text)]
    if labelled:
        values = {scaled(v, d) for v, d in labelled}
        if len(values) == 1:
            return values.pop()
        return None  # "Score: 3 ... Score: 9": ambiguous
    fractions = _FRACTION.findall(text)
    if len(fractions) == 1:
        return scaled(*fractions[0])
    match = _BARE.match(text)
    if match:
        return scaled(match.group(1), None)
    return None


DEFAULT_JUDGE_SYSTEM = (
    "You are a strict, fair grader. You read a conversation and an assistant's reply and grade the reply "
    "against the rubric. You answer with the score only."
)


class JudgeReward:
    """An LLM judge as a reward function (RLAIF): one engine call per completion, batched.

    The judge model sees the rubric, the conversation and the reply, and must answer
    ``Score: N`` with N in ``[min_score, max_score]``. Scores are normalized to ``[0, 1]`` unless
    ``normalize=False``. Replies that cannot be parsed (see :func:`parse_judge_score`) and engine
    failures score ``fallback_score`` and are counted (``parse_failures``, ``engine_errors``);
    when TRL provides ``log_metric`` they are logged as ``<name>/parse_failures`` too.
    """

    def __init__(
        self,
        engine: Any,
        rubric: str,
        *,
        min_score: float = 0.0,
        max_score: float = 10.0,
        normalize: bool = True,
        fallback_score: float = 0.0,
        sampling: Any = None,
        batch_size: int = 8,
        max_chars: int = 4000,
        system_prompt: str = DEFAULT_JUDGE_SYSTEM,
        timeout_s: float | None = None,
        name: str = "llm_judge",
    ) -> None:
        if not (hasattr(engine, "generate") or hasattr(engine, "chat")):
            raise ValidationFailed("engine", "the judge needs an engine with generate() or chat()")
        if not isinstance(rubric, str) or not rubric.strip():
            raise ValidationFailed("rubric", "the judge needs a non-empty rubric")
        if not max_score > min_score:
            raise ValidationFailed("max_score", "must be greater than min_score")
        if batch_size < 1:
            raise ValidationFailed("batch_size", "must be >= 1")
        self.engine = engine
        self.rubric = rubric.strip()
        self.min_score, self.max_score = float(min_score), float(max_score)
        self.normalize = normalize
        self.fallback_score = float(fallback_score)
        self.sampling = sampling
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.system_prompt = system_prompt
        self.timeout_s = timeout_s
        self.__name__ = name
        self.calls = 0
        self.parse_failures = 0
        self.engine_errors = 0
        self.last_replies: list[str] = []
        self._lock = threading.Lock()

    @property
    def stats(self) -> dict[str, int]:
        """Counters since the judge was built."""
        return {"calls": self.calls, "parse_failures": self.parse_failures, "engine_errors": self.engine_errors}

    def judge_messages(self, prompt: Any, completion: str) -> list[dict[str, str]]:
        """The conversation the judge model is shown for one completion."""
        low, high = f"{self.min_score:g}", f"{self.max_score:g}"
        user = (
            f"Rubric:\n{self.rubric}\n\n"
            f"Conversation:\n{_render_prompt(prompt)[-self.max_chars:]}\n\n"
            f"Reply to grade:\n{completion[: self.max_chars]}\n\n"
            f"Grade the reply from {low} (worst) to {high} (best). Answer with one line: Score: <number>"
        )
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]

    def _sampling(self) -> Any:
        if self.sampling is not None:
            return self.sampling
        from workbench.agents import SamplingParams

        return SamplingParams(temperature=0.0, max_new_tokens=24)

    def _ask(self, conversations: list[list[dict[str, str]]]) -> list[str | None]:
        timeout = {"timeout_s": self.timeout_s} if self.timeout_s is not None else {}
        try:
            if hasattr(self.engine, "generate"):
                replies = self.engine.generate(conversations, self._sampling(), **timeout)
            else:
                replies = [self.engine.chat(c, sampling=self._sampling(), **timeout) for c in conversations]
        except Exception:  # noqa: BLE001 - a judge outage scores fallback_score (counted), it does not end training
            return [None] * len(conversations)
        texts: list[str | None] = [getattr(r, "text", r) if r is not None else None for r in replies]
        if len(texts) != len(conversations):
            return [None] * len(conversations)
        return [t if isinstance(t, str) else None for t in texts]

    def judge_texts(self, prompts: Sequence[Any], completions: Sequence[str]) -> list[tuple[float | None, str | None]]:
        """(score or None if unreadable or failed, the judge's reply or None on engine failure) per completion."""
        out: list[tuple[float | None, str | None]] = []
        failures = errors = 0
        for start in range(0, len(prompts), self.batch_size):
            chunk = list(zip(prompts[start : start + self.batch_size], completions[start : start + self.batch_size], strict=True))
            for reply in self._ask([self.judge_messages(p, c) for p, c in chunk]):
                if reply is None:
                    errors += 1
                    out.append((None, None))
                    continue
                value = parse_judge_score(reply, self.min_score, self.max_score)
                if value is None:
                    failures += 1
                elif self.normalize:
                    value = (value - self.min_score) / (self.max_score - self.min_score)
                out.append((value, reply))
        with self._lock:
            self.calls += len(prompts)
            self.parse_failures += failures
            self.engine_errors += errors
            self.last_replies = [r for _, r in out if r is not None][-16:]
        return out

    def score_texts(self, prompts: Sequence[Any], completions: Sequence[str]) -> list[float]:
        """Scores of plain-text completions (one per prompt); unreadable ones score ``fallback_score``."""
        return [self.fallback_score if score is None else score for score, _ in self.judge_texts(prompts, completions)]

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        before = self.parse_failures + self.engine_errors
        scores = self.score_texts(list(prompts), [completion_text(c) for c in completions])
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric(f"{self.__name__}/parse_failures", float(self.parse_failures + self.engine_errors - before))
        return scores

    def verify(self, row: Mapping[str, Any], text: str) -> float:
        """Verifier form (``verify(prompt_row, completion_text)``), for RFT."""
        return self.score_texts([row.get("prompt")], [text])[0]


@reward_function("llm_judge", factory=True)
def llm_judge_reward(engine: Any, rubric: str, **options: Any) -> JudgeReward:
    """Factory: an LLM-judge reward (RLAIF) on ``engine``.

    ``engine`` is an engine object (``workbench.agents.Engine`` or anything with ``generate`` /
    ``chat``) or an engine config mapping (``{"kind": "openai", ...}``), built with ``make_engine``.
    ``options`` are :class:`JudgeReward`'s keyword arguments.
    """
    if isinstance(engine, Mapping):
        from workbench.agents import make_engine

        engine = make_engine(engine)
    return JudgeReward(engine, rubric, **options)


# --------------------------------------------------------------------------- reward models


class RewardModelScorer:
    """Scores (prompt, completion) pairs with a reward model checkpoint (what the ``rm`` algorithm saves).

    Usable as a GRPO reward function (``scorer(prompts, completions)``), as a verifier
    (``scorer.verify(row, text)``) or directly (``scorer.score(prompts, completions)``). The text
    scored is the chat template applied to prompt + reply, as in reward-model training.
    """

    def __init__(self, path: str | Path, *, device: str = "cpu", batch_size: int = 8, max_length: int = 1024,
                 name: str | None = None) -> None:  # fmt: skip
        from workbench.train._models import load_reward_model

        self.path = Path(path)
        self.model, self.tokenizer = load_reward_model(self.path)
        self.model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.__name__ = name or "reward_model"

    def _text(self, prompt: Any, completion: Any) -> str:
        if isinstance(prompt, str):
            return prompt + completion_text(completion)
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in prompt]
        messages.append({"role": "assistant", "content": completion_text(completion)})
        return self.tokenizer.apply_chat_template(messages, tokenize=False)

    def score(self, prompts: Sequence[Any], completions: Sequence[Any]) -> list[float]:
        """One scalar reward per (prompt, completion)."""
        import torch

        texts = [self._text(p, c) for p, c in zip(prompts, completions, strict=True)]
        scores: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size], return_tensors="pt", padding=True, truncation=True,
                    max_length=self.max_length, padding_side="right", add_special_tokens=False,
                ).to(self.device)  # fmt: skip
                scores.extend(self.model(**batch).logits[:, 0].float().tolist())
        return scores

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        return self.score(prompts, completions)

    def verify(self, row: Mapping[str, Any], text: str) -> float:
        """Verifier form (``verify(prompt_row, completion_text)``), for RFT."""
        return self.score([row.get("prompt")], [text])[0]


@reward_function("reward_model", factory=True)
def reward_model_reward(path: str, **options: Any) -> RewardModelScorer:
    """Factory: a reward model checkpoint as a reward function."""
    return RewardModelScorer(path, **options)
