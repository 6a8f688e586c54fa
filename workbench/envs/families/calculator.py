"""calculator — arithmetic word problems solved by calling a calculator tool (type ``text``).

What it tests: whether an agent turns a short word problem into one tool call,
``calculator {"expression": "12 + 30"}``, and then answers with the number it got. Problems use
one or two operations (+, -, *, /) on small whole numbers with whole-number results, phrased a
few different ways, so a 135M model can learn the pattern from a few dozen examples. The answer
is checked numerically (the last number in the answer text, within 1e-6).

Splits: a task's split is a hash of its arithmetic (``12 + 30``), so no calculation in the test
split appears in train, in any phrasing.

Run it::

    workbench scenarios run scenarios/calculator.yaml --split test --policy oracle
"""

from __future__ import annotations

import ast
import math
import operator
import random
from collections.abc import Iterator
from typing import Any

from workbench.envs._registry import checker, family, tool

_NAMES = ["Tom", "Ana", "Sam", "Lea", "Raj", "Mia", "Ben", "Zoe", "Omar", "Ivy"]
_ITEMS = ["apples", "pencils", "stickers", "books", "marbles", "cookies", "cards", "shells"]

_OPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def evaluate(expression: str) -> float:
    """Evaluate + - * / // % ** and parentheses on numbers; anything else raises ValueError."""
    if len(expression) > 200:
        raise ValueError("expression is longer than 200 characters")
    try:
        tree = ast.parse(expression.replace("^", "**").replace("×", "*").replace("÷", "/"), mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot parse {expression!r}; use numbers with + - * / and parentheses") from None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError("exponent too large")
            try:
                return _OPS[type(node.op)](left, right)
            except ZeroDivisionError:
                raise ValueError("division by zero") from None
        raise ValueError(f"unsupported element in expression: {ast.dump(node)[:60]}")

    return walk(tree)


def format_number(value: float) -> str:
    """12.0 -> "12", 2.5 -> "2.5" (at most 6 decimals)."""
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer()):
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


@tool("calculator")
def calculator(ctx: Any, expression: str) -> str:
    """Tool: evaluate an arithmetic expression and return the result as text."""
    return format_number(evaluate(expression))


@checker("numeric_answer")
def numeric_answer(ctx: Any, expected: float, tolerance: float = 1e-6) -> dict[str, Any]:
    """Checker: the last number in the answer equals ``expected`` within ``tolerance``."""
    from workbench.envs._checkers import to_number

    got = to_number(ctx.answer)
    if got is None:
        return {"success": False, "reason": "the answer contains no number"}
    ok = abs(got - float(expected)) <= tolerance
    return {"success": ok, "reason": f"answer {format_number(got)} is {'right' if ok else 'wrong'}"}


CALCULATOR_TOOL = {
    "name": "calculator",
    "description": "Evaluate an arithmetic expression with + - * / and parentheses; returns the result.",
    "parameters": {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "For example: 12 + 30"}},
        "required": ["expression"],
        "additionalProperties": False,
    },
    "handler": "calculator",
}

INSTRUCTIONS = (
    "Solve the problem. Call the calculator tool with the arithmetic expression, "
    "then give the final answer as a number.\n\nProblem: {problem}"
)


def _problem(rng: random.Random) -> tuple[str, str]:
    """(problem text, expression) for one randomly chosen template."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    kind = rng.randrange(10)
    if kind == 0:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?", f"{a} + {b}"
    if kind == 1:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return f"What is {a} plus {b}?", f"{a} + {b}"
    if kind == 2:
        a = rng.randint(10, 99)
        b = rng.randint(2, a - 1)
        return f"{name} had {a} {item} and gave away {b}. How many {item} are left?", f"{a} - {b}"
    if kind == 3:
        a = rng.randint(10, 99)
        b = rng.randint(2, a - 1)
        return f"What is {a} minus {b}?", f"{a} - {b}"
    if kind == 4:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        return f"There are {a} boxes with {b} {item} in each box. How many {item} are there in total?", f"{a} * {b}"
    if kind == 5:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        return f"What is {a} times {b}?", f"{a} * {b}"
    if kind == 6:
        b, k = rng.randint(2, 10), rng.randint(2, 12)
        return (
            f"{name} shares {b * k} {item} equally among {b} friends. How many {item} does each friend get?",
            f"{b * k} / {b}",
        )
    if kind == 7:
        b, k = rng.randint(2, 10), rng.randint(2, 12)
        return f"What is {b * k} divided by {b}?", f"{b * k} / {b}"
    if kind == 8:
        a, b = rng.randint(5, 60), rng.randint(2, 40)
        c = rng.randint(1, a + b - 1)
        return (
            f"{name} has {a} {item}, buys {b} more and then gives away {c}. How many {item} does {name} have now?",
            f"{a} + {b} - {c}",
        )
    a, b, c = rng.randint(2, 9), rng.randint(2, 12), rng.randint(1, 30)
    return (
        f"{name} buys {a} packs of {b} {item} and already had {c}. How many {item} does {name} have in total?",
        f"{a} * {b} + {c}",
    )


@family("calculator", type="text", counts={"train": 200, "test": 60})
def generate(split: str, rng: random.Random, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Candidate calculator tasks in a seeded order (the family keeps those of ``split``)."""
    while True:
        problem, expression = _problem(rng)
        answer = format_number(evaluate(expression))
        yield {
            "name": "calculator",
            "type": "text",
            "description": "Arithmetic word problem solved with a calculator tool.",
            "instructions": INSTRUCTIONS.format(problem=problem),
            "tools": [CALCULATOR_TOOL],
            "checker": {"python": "numeric_answer", "args": {"expected": float(answer)}},
            "limits": {"max_steps": 6, "max_tool_calls": 4, "step_timeout_s": 5, "run_timeout_s": 120},
            "oracle": {
                "actions": [
                    {"tool": "calculator", "arguments": {"expression": expression}},
                    {"answer": answer},
                ]
            },
            "tags": ["arithmetic"],
            "metadata": {"task_key": expression, "expression": expression, "expected": answer},
        }

