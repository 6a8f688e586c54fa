"""Judging a run: YAML rules evaluated in-process, Python checkers' results normalised.

Rules read a plain document ``{answer, state, initial_state, steps, tool_calls, observation}``;
they are data, so they run in the parent. Python checkers run in the sandbox (see _env.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from workbench.envs._jsonpath import compare, jsonpath
from workbench.envs._spec import (
    AllRule,
    AnyRule,
    EqualsRule,
    JsonPathRule,
    NotRule,
    RegexRule,
    StateRule,
)

_MISSING = object()
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class Verdict:
    """A checker's judgement: ``success``, a ``score`` in [0, 1], a ``reason``, and ``done``
    (for step-wise checking: the run cannot succeed any more, end it now)."""

    success: bool
    score: float
    reason: str
    done: bool = False


def lookup(document: Any, path: str) -> Any:
    """Value at a dotted path (``state.items.mug.qty``, ``tool_calls.0.name``), or a missing marker."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict):
            if part not in node:
                return _MISSING
            node = node[part]
        elif isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                return _MISSING
        else:
            return _MISSING
    return node


def to_number(value: Any) -> float | None:
    """A number from a value; from text, the last number written in it ("It is 1,250." -> 1250)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        found = _NUMBER.findall(re.sub(r"(?<=\d),(?=\d{3}\b)", "", value))
        if found:
            return float(found[-1])
    return None


def _show(value: Any, limit: int = 80) -> str:
    text = "missing" if value is _MISSING else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _test(actual: Any, op: str, expected: Any) -> bool:
    if op == "exists":
        return actual is not _MISSING
    if op == "missing":
        return actual is _MISSING
    if actual is _MISSING:
        return False
    if op == "in":
        return isinstance(expected, (list, str, dict)) and actual in expected
    if op == "not_in":
        return isinstance(expected, (list, str, dict)) and actual not in expected
    if op == "contains":
        return isinstance(actual, (list, str, dict)) and expected in actual
    return compare(actual, op, expected)


def _equals(actual: Any, expected: Any, tolerance: float | None, ignore_case: bool) -> bool:
    if actual is _MISSING:
        return False
    if tolerance is not None:
        a, b = to_number(actual), to_number(expected)
        return a is not None and b is not None and math.isclose(a, b, rel_tol=0, abs_tol=tolerance)
    if actual == expected and type(actual) is type(expected):
        return True
    a = actual if isinstance(actual, str) else None
    if a is not None and not isinstance(expected, str):
        # "42" from an agent equals 42 in the spec
        number = to_number(expected)
        return number is not None and a.strip() != "" and _same_number(a.strip(), number)
    if isinstance(actual, str) and isinstance(expected, str):
        x, y = actual.strip(), expected.strip()
        return x.lower() == y.lower() if ignore_case else x == y
    return actual == expected


def _same_number(text: str, number: float) -> bool:
    try:
        return math.isclose(float(text), number, rel_tol=0, abs_tol=1e-9)
    except ValueError:
        return False


def evaluate_rule(rule: Any, document: dict[str, Any]) -> tuple[bool, str]:
    """(passed, reason) of one rule tree against the run document."""
    if isinstance(rule, EqualsRule):
        args = rule.equals
        actual = lookup(document, args.target)
        ok = _equals(actual, args.value, args.tolerance, args.ignore_case)
        return ok, f"{args.target} is {_show(actual)}" + ("" if ok else f", expected {_show(args.value)}")
    if isinstance(rule, RegexRule):
        args = rule.regex
        actual = lookup(document, args.target)
        text = "" if actual is _MISSING or actual is None else str(actual)
        flags = re.I if args.ignore_case else 0
        match = (re.fullmatch if args.fullmatch else re.search)(args.pattern, text, flags)
        return bool(match), f"{args.target} {'matches' if match else 'does not match'} /{args.pattern}/"
    if isinstance(rule, StateRule):
        args = rule.state
        actual = lookup(document.get("state", {}), args.path)
        ok = _test(actual, args.op, args.value)
        detail = "" if args.op in ("exists", "missing") else f" {_show(args.value)}"
        return ok, f"state.{args.path} is {_show(actual)} ({'passes' if ok else 'fails'} {args.op}{detail})"
    if isinstance(rule, JsonPathRule):
        args = rule.json_path
        found = jsonpath(document, args.path)
        if args.count is not None and len(found) != args.count:
            return False, f"{args.path} matched {len(found)} values, expected {args.count}"
        if args.op == "missing":
            return not found, f"{args.path} matched {len(found)} values (expected none)"
        if args.op == "exists":
            return bool(found), f"{args.path} matched {len(found)} values"
        results = [_test(v, args.op, args.value) for v in found]
        ok = bool(results) and (all(results) if args.match == "all" else any(results))
        return ok, f"{args.path} = {_show(found)} ({'passes' if ok else 'fails'} {args.op} {_show(args.value)})"
    if isinstance(rule, AllRule):
        for sub in rule.all:
            ok, reason = evaluate_rule(sub, document)
            if not ok:
                return False, reason
        return True, f"all {len(rule.all)} rules passed"
    if isinstance(rule, AnyRule):
        reasons = []
        for sub in rule.any:
            ok, reason = evaluate_rule(sub, document)
            if ok:
                return True, reason
            reasons.append(reason)
        return False, "none passed: " + "; ".join(reasons)
    if isinstance(rule, NotRule):
        ok, reason = evaluate_rule(rule.not_, document)
        return not ok, f"not ({reason})"
    raise TypeError(f"not a rule: {type(rule).__name__}")


def evaluate_rules(rule: Any, document: dict[str, Any]) -> Verdict:
    """A :class:`Verdict` from a rule tree."""
    ok, reason = evaluate_rule(rule, document)
    return Verdict(success=ok, score=1.0 if ok else 0.0, reason=reason)


def normalise_result(value: Any) -> Verdict:
    """A Python checker's return value as a :class:`Verdict`; raises ValueError for unusable values.

    Accepted: a bool; a number (the score, clamped to [0, 1]; success when it is 1); or a dict
    with any of ``success``, ``score``, ``reason``, ``done``.
    """
    if isinstance(value, bool):
        return Verdict(value, 1.0 if value else 0.0, "checker passed" if value else "checker failed")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError("checker returned a non-finite score")
        score = min(1.0, max(0.0, float(value)))
        return Verdict(score >= 1.0, score, f"checker score {score:g}")
    if isinstance(value, dict) and ("success" in value or "score" in value):
        score = value.get("score")
        success = value.get("success")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)):
            raise ValueError("checker returned a dict whose score is not a finite number")
        if success is None:
            success = float(score) >= 1.0
        if score is None:
            score = 1.0 if success else 0.0
        reason = str(value.get("reason") or ("checker passed" if success else "checker failed"))
        return Verdict(bool(success), min(1.0, max(0.0, float(score))), reason, bool(value.get("done", False)))
    raise ValueError(
        f"checker returned {type(value).__name__}; return a bool, a score in [0, 1] or a dict with success/score/reason"
    )
