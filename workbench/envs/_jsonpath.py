"""A small JSONPath subset for checker rules.

Supported: ``$``, ``.name``, ``['name']``, ``[0]`` / ``[-1]``, ``[*]`` / ``.*``, ``..name`` (recursive
descent) and filters ``[?(@.a.b == 'x' && @.n >= 3)]`` with ==, !=, <, <=, >, >= and bare ``@.a``
(exists). Literals: numbers, 'strings' / "strings", true, false, null.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

_TOKEN = re.compile(
    r"""\.\.(?P<deep>[A-Za-z_][\w\-]*|\*)
      | \.(?P<name>[A-Za-z_][\w\-]*|\*)
      | \[\s*(?P<index>-?\d+)\s*\]
      | \[\s*(?P<quoted>'[^']*'|"[^"]*")\s*\]
      | \[\s*(?P<star>\*)\s*\]
      | \[\?\((?P<filter>.*?)\)\]
    """,
    re.X,
)
_COND = re.compile(r"^\s*@((?:\.[A-Za-z_][\w\-]*|\[\d+\])*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*$")


@lru_cache(maxsize=512)
def parse_jsonpath(path: str) -> tuple[tuple[str, Any], ...]:
    """Parse a path into steps; raises ValueError saying where it stopped making sense."""
    if not path.startswith("$"):
        raise ValueError("a JSONPath starts with $")
    steps: list[tuple[str, Any]] = []
    pos = 1
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if not match:
            raise ValueError(f"cannot parse JSONPath at position {pos}: {path[pos:]!r}")
        if match.group("deep") is not None:
            steps.append(("deep", match.group("deep")))
        elif match.group("name") is not None:
            name = match.group("name")
            steps.append(("star", None) if name == "*" else ("key", name))
        elif match.group("index") is not None:
            steps.append(("index", int(match.group("index"))))
        elif match.group("quoted") is not None:
            steps.append(("key", match.group("quoted")[1:-1]))
        elif match.group("star") is not None:
            steps.append(("star", None))
        else:
            steps.append(("filter", _parse_filter(match.group("filter"))))
        pos = match.end()
    return tuple(steps)


def _parse_filter(text: str) -> tuple[tuple[tuple[tuple[str, Any], ...], str | None, Any], ...]:
    conds = []
    for part in text.split("&&"):
        match = _COND.match(part)
        if not match:
            raise ValueError(f"cannot parse filter condition {part.strip()!r}; expected @.field OP literal")
        sub, op, literal = match.groups()
        conds.append((parse_jsonpath("$" + sub), op, _literal(literal) if op else None))
    return tuple(conds)


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"cannot parse literal {text!r}; quote strings") from None


def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node.values())
    if isinstance(node, list):
        return list(node)
    return []


def _descend(node: Any) -> list[Any]:
    out = [node]
    for child in _children(node):
        out.extend(_descend(child))
    return out


def compare(left: Any, op: str, right: Any) -> bool:
    """``left op right`` without raising: mismatched types compare unequal and unordered."""
    try:
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        if isinstance(left, bool) or isinstance(right, bool):
            return False
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        if op == ">=":
            return left >= right
    except TypeError:
        return False
    raise ValueError(f"unknown operator {op!r}")


def _filter_ok(node: Any, conds) -> bool:
    for sub, op, literal in conds:
        found = _apply(node, sub)
        if not found:
            return False
        if op is not None and not any(compare(v, op, literal) for v in found):
            return False
    return True


def _apply(root: Any, steps) -> list[Any]:
    nodes = [root]
    for kind, arg in steps:
        nxt: list[Any] = []
        for node in nodes:
            if kind == "key":
                if isinstance(node, dict) and arg in node:
                    nxt.append(node[arg])
            elif kind == "index":
                if isinstance(node, list) and -len(node) <= arg < len(node):
                    nxt.append(node[arg])
            elif kind == "star":
                nxt.extend(_children(node))
            elif kind == "deep":
                for sub in _descend(node):
                    if arg == "*":
                        nxt.extend(_children(sub))
                    elif isinstance(sub, dict) and arg in sub:
                        nxt.append(sub[arg])
            elif kind == "filter":
                nxt.extend(child for child in _children(node) if _filter_ok(child, arg))
        nodes = nxt
    return nodes


def jsonpath(document: Any, path: str) -> list[Any]:
    """All values ``path`` selects in ``document`` (an empty list when nothing matches)."""
    return _apply(document, parse_jsonpath(path))
