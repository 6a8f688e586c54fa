"""Verifiers: registered, named judges of an agent's attempt, usable from YAML/JSON by name.

* ``checker`` — the scenario's own checker (rule-based or Python, run in the sandbox by the
  environment); its verdict travels with the attempt.
* ``rules`` — YAML rules (equals / regex / json_path / all / any / not) over the final answer.
* ``llm_judge`` — a rubric prompt on any engine; score + rationale; unreadable replies counted.
* ``reward_model`` — a trained reward model's score, squashed to [0, 1].
* ``hybrid`` — a weighted sum of verifiers, or a gate (one must pass) before another scores.

:func:`pairwise_judgement` compares two replies with the judge twice, swapping their positions,
so a judge that prefers whatever comes first cannot decide the outcome.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import ValidationFailed


@dataclass
class Attempt:
    """What a verifier sees of one attempt at a task."""

    task: str
    prompt: str
    answer: str | None
    outputs: list[str] = field(default_factory=list)
    env_success: bool | None = None
    env_score: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Judgement:
    """A verifier's verdict: a score in [0, 1], pass/fail and why."""

    score: float
    passed: bool
    rationale: str = ""
    unreadable: bool = False


class Verifier(ABC):
    """Base class: judge many attempts at once (judges batch their engine calls)."""

    name = "verifier"

    @abstractmethod
    def judge(self, attempts: Sequence[Attempt]) -> list[Judgement]:
        """One judgement per attempt, in order."""


_REGISTRY: dict[str, Callable[..., Verifier]] = {}


def verifier(name: str) -> Callable[[Callable[..., Verifier]], Callable[..., Verifier]]:
    """Register a verifier factory under ``name`` (its keyword arguments come from the spec)."""

    def register(factory: Callable[..., Verifier]) -> Callable[..., Verifier]:
        _REGISTRY[name] = factory
        return factory

    return register


def verifier_names() -> list[str]:
    """Every registered verifier name."""
    return sorted(_REGISTRY)


def make_verifier(spec: str | Mapping[str, Any], *, field_name: str = "verifiers") -> Verifier:
    """A verifier from a name (``"checker"``) or a mapping (``{"name": "llm_judge", "rubric": ...}``)."""
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        name, params = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    else:
        raise ValidationFailed(field_name, "a verifier is a name or an object with a 'name'")
    if name not in _REGISTRY:
        raise ValidationFailed(field_name, f"unknown verifier {name!r}; registered: {', '.join(verifier_names())}")
    try:
        built = _REGISTRY[name](**params)
    except TypeError as exc:
        raise ValidationFailed(field_name, f"{name}: {exc}") from None
    built.name = name
    return built


class _Checker(Verifier):
    def judge(self, attempts: Sequence[Attempt]) -> list[Judgement]:
        out = []
        for a in attempts:
            if a.env_success is None:
                out.append(Judgement(0.0, False, "the environment gave no verdict (the attempt did not finish)"))
            else:
                score = a.env_score if a.env_score is not None else float(a.env_success)
                out.append(Judgement(max(0.0, min(1.0, score)), bool(a.env_success), "scenario checker"))
        return out


@verifier("checker")
def checker_verifier() -> Verifier:
    """The scenario's checker, as the environment ran it."""
    return _Checker()


class _Rules(Verifier):
    def __init__(self, rules: Any) -> None:
        from pydantic import ValidationError

        from workbench.envs import Scenario, validation_errors

        # Validate the rules with the scenario spec's own checker schema, so YAML reads the same.
        try:
            self._rule = Scenario.model_validate(
                {"name": "rules", "type": "text", "instructions": "-", "checker": rules}
            ).checker
        except ValidationError as exc:
            first = validation_errors(exc)[0]
            raise ValidationFailed("verifiers.rules" + first["field"].removeprefix("checker"), first["reason"]) from None

    def judge(self, attempts: Sequence[Attempt]) -> list[Judgement]:
        from workbench.envs._checkers import evaluate_rules

        out = []
        for a in attempts:
            verdict = evaluate_rules(self._rule, {"answer": a.answer, "tool_calls": [], "steps": [], "state": {}})
            out.append(Judgement(1.0 if verdict.success else 0.0, bool(verdict.success), verdict.reason))
        return out


@verifier("rules")
def rules_verifier(rules: Any) -> Verifier:
    """YAML rules over the final answer (the checker rule language of scenarios; ``target`` defaults to answer)."""
    return _Rules(rules)


def _engine(config: Any):
    from workbench.agents import Engine, make_engine

    return config if isinstance(config, Engine) else make_engine(config)


class _Judge(Verifier):
    def __init__(self, engine: Any, rubric: str, threshold: float, **options: Any) -> None:
        from workbench.train import llm_judge_reward

        self.threshold = threshold
        self.reward = llm_judge_reward(_engine(engine), rubric, **options)

    def judge(self, attempts: Sequence[Attempt]) -> list[Judgement]:
        judged = self.reward.judge_texts([a.prompt for a in attempts], [a.answer or "" for a in attempts])
        out = []
        for score, reply in judged:
            if score is None:
                why = "judge engine failed" if reply is None else f"unreadable judgement: {reply[:200]}"
                out.append(Judgement(self.reward.fallback_score, False, why, unreadable=True))
            else:
                out.append(Judgement(score, score >= self.threshold, reply[:500]))
        return out


@verifier("llm_judge")
def judge_verifier(engine: Any, rubric: str, threshold: float = 0.5, **options: Any) -> Verifier:
    """An LLM judge: ``engine`` is an engine config (or engine), ``rubric`` what a good reply does."""
    return _Judge(engine, rubric, threshold, **options)


class _RewardModel(Verifier):
    def __init__(self, path: str, threshold: float, **options: Any) -> None:
        from workbench.train import RewardModelScorer

        self.scorer = RewardModelScorer(path, **options)
        self.threshold = threshold

    def judge(self, attempts: Sequence[Attempt]) -> list[Judgement]:
        raw = self.scorer.score([a.prompt for a in attempts], [a.answer or "" for a in attempts])
        out = []
        for value in raw:
            score = 1.0 / (1.0 + math.exp(-value))
            out.append(Judgement(score, score >= self.threshold, f"reward model logit {value:.3f}"))
        return out


@verifier("reward_model")
def reward_model_verifier(path: str, threshold: float = 0.5, **options: Any) -> Verifier:
    """A reward model checkpoint (from POST /rm/train) as a verifier."""
    return _RewardModel(path, threshold, **options)


class _Hybrid(Verifier):
    def __init__(self, parts: list[tuple[Verifier, float]], gate: Verifier | None, threshold: float) -> None:
        self.parts, self.gate, self.threshold = parts, gate, threshold

    def judge(self, attempts: Sequence[Attempt]) -> list[Judgement]:
        total = sum(w for _, w in self.parts)
        per_part = [(v, w, v.judge(attempts)) for v, w in self.parts]
        gates = self.gate.judge(attempts) if self.gate is not None else None
        out = []
        for i in range(len(attempts)):
            score = sum(w * judged[i].score for _, w, judged in per_part) / total
            why = "; ".join(f"{v.name}={judged[i].score:.2f}" for v, _, judged in per_part)
            if gates is not None and not gates[i].passed:
                out.append(Judgement(0.0, False, f"gate {self.gate.name} failed: {gates[i].rationale}"))
            else:
                out.append(Judgement(score, score >= self.threshold, why))
        return out


@verifier("hybrid")
def hybrid_verifier(parts: list[Any], gate: Any = None, threshold: float = 0.5) -> Verifier:
    """``parts``: verifier specs with an optional ``weight`` (default 1); ``gate``: a spec that must pass."""
    if not parts:
        raise ValidationFailed("verifiers.parts", "a hybrid verifier needs at least one part")
    built = []
    for part in parts:
        weight = float(part.get("weight", 1.0)) if isinstance(part, Mapping) else 1.0
        spec = {k: v for k, v in part.items() if k != "weight"} if isinstance(part, Mapping) else part
        if weight <= 0:
            raise ValidationFailed("verifiers.parts.weight", "weights must be positive")
        built.append((make_verifier(spec, field_name="verifiers.parts"), weight))
    return _Hybrid(built, make_verifier(gate, field_name="verifiers.gate") if gate is not None else None, threshold)


_CHOICE = re.compile(r"\b(?:winner|better|answer|choice)?\s*[:=]?\s*\**\s*\b(A|B|tie)\b", re.IGNORECASE)


def _parse_choice(text: str) -> str | None:
    found = {m.group(1).upper() for m in _CHOICE.finditer(text or "")}
    found = {"TIE" if f == "TIE" else f for f in found}
    return found.pop() if len(found) == 1 else None


def pairwise_judgement(engine: Any, rubric: str, prompt: str, reply_a: str, reply_b: str) -> dict[str, Any]:
    """Which reply is better under the rubric, asked in both orders to cancel position bias.

    Returns ``{"winner": "a" | "b" | "tie", "consistent": bool, "raw": [first, second]}``; an
    unreadable or order-dependent verdict is a tie.
    """
    from workbench.agents import SamplingParams

    judge = _engine(engine)

    def ask(first: str, second: str) -> str:
        messages = [
            {"role": "system", "content": "You compare two replies and answer with A, B or tie only."},
            {"role": "user", "content": f"Rubric: {rubric}\n\nTask: {prompt}\n\nReply A:\n{first}\n\nReply B:\n{second}\n\n"
                                        "Which reply is better? Answer A, B or tie."},
        ]
        return judge.chat(messages, sampling=SamplingParams(temperature=0.0, max_new_tokens=8)).text

    first, second = ask(reply_a, reply_b), ask(reply_b, reply_a)
    one, two = _parse_choice(first), _parse_choice(second)
    swapped = {"A": "b", "B": "a", "TIE": "tie"}.get(two) if two else None
    original = {"A": "a", "B": "b", "TIE": "tie"}.get(one) if one else None
    consistent = original is not None and original == swapped
    return {"winner": original if consistent else "tie", "consistent": consistent, "raw": [first, second]}


def completion_verifier(
    specs: Sequence[Any], resolve_scenario: Callable[[str], Any | None]
) -> Callable[[Mapping[str, Any], str], float]:
    """A ``verify(row, completion_text) -> score`` for RFT from verifier specs (the first decides).

    The completion is read under the tool-call protocol; a final answer is played in a fresh run of
    the row's scenario (``resolve_scenario(row["scenario_id"])``), so the ``checker`` verifier sees
    the scenario checker's verdict. A completion that is not an answer scores what the verifier
    gives an unfinished attempt (0 for ``checker``).
    """
    if not specs:
        raise ValidationFailed("verifiers", "rft needs at least one verifier (e.g. [\"checker\"])")
    primary = make_verifier(specs[0])

    def verify(row: Mapping[str, Any], text: str) -> float:
        import workbench.envs as envs
        from workbench.agents import parse_tool_output

        parsed = parse_tool_output(text)
        answer = parsed.answer if parsed.kind == "answer" else None
        success = score = None
        scenario = resolve_scenario(str(row.get("scenario_id") or "")) if answer is not None else None
        if scenario is not None:
            env = envs.make(scenario)
            try:
                env.reset()
                env.step({"answer": answer})
                success, score = env.result.success, env.result.score
            finally:
                env.close()
        attempt = Attempt(task=str(row.get("scenario_id") or ""), prompt="", answer=answer, outputs=[text],
                          env_success=success, env_score=score)
        return primary.judge([attempt])[0].score

    return verify
