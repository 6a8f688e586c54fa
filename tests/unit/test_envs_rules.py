"""YAML checker rules, JSONPath, checker results, tool-argument checks and the gym action parser."""

from __future__ import annotations

import numpy as np
import pytest

import workbench.envs as envs
from workbench.envs._arguments import check_arguments
from workbench.envs._checkers import evaluate_rules, normalise_result, to_number
from workbench.envs._jsonpath import jsonpath, parse_jsonpath

DOC = {
    "answer": "The total is 1,250 apples.",
    "state": {
        "items": {"mug-blue": {"stock": 7, "price": 8.5}, "pen": {"stock": 0, "price": 1.2}},
        "orders": {
            "ORD-1": {"sku": "pen", "qty": 3, "status": "shipped"},
            "ORD-2": {"sku": "mug-blue", "qty": 1, "status": "pending"},
        },
        "log": ["a", "b"],
    },
    "initial_state": {},
    "steps": 4,
    "tool_calls": [{"name": "list_items", "arguments": {}, "content": "[]", "error": False}],
}


def check(rule) -> tuple[bool, str]:
    scenario = envs.parse_scenario(
        {"name": "r", "type": "text", "instructions": "x", "checker": rule}
    )
    verdict = evaluate_rules(scenario.checker, DOC)
    return verdict.success, verdict.reason


@pytest.mark.parametrize(
    ("rule", "ok"),
    [
        ({"equals": {"value": 1250, "tolerance": 0.5}}, True),
        ({"equals": {"value": 1251, "tolerance": 0.5}}, False),
        ({"equals": {"target": "steps", "value": 4}}, True),
        ({"equals": {"target": "state.items.pen.stock", "value": 0}}, True),
        ({"equals": {"target": "state.items.nope", "value": 0}}, False),
        ({"equals": {"target": "state.log.1", "value": "B", "ignore_case": True}}, True),
        ({"regex": "1,250 apples"}, True),
        ({"regex": {"pattern": "^the total", "ignore_case": True}}, True),
        ({"regex": {"pattern": "apples", "fullmatch": True}}, False),
        ({"state": {"path": "items.mug-blue.stock", "op": ">=", "value": 7}}, True),
        ({"state": {"path": "items.mug-blue.stock", "op": "<", "value": 7}}, False),
        ({"state": {"path": "orders.ORD-2.status", "op": "in", "value": ["pending", "shipped"]}}, True),
        ({"state": {"path": "log", "op": "contains", "value": "b"}}, True),
        ({"state": {"path": "orders.ORD-9", "op": "missing"}}, True),
        ({"state": {"path": "orders.ORD-1", "op": "exists"}}, True),
        ({"state": {"path": "items.pen.stock", "op": ">", "value": "a"}}, False),  # no TypeError
        ({"json_path": {"path": "$.state.orders[?(@.sku == 'pen' && @.status == 'shipped')]", "count": 1}}, True),
        ({"json_path": {"path": "$.state.orders[?(@.qty >= 2)].sku", "op": "==", "value": "pen"}}, True),
        ({"json_path": {"path": "$.state.orders.*", "count": 3}}, False),
        ({"json_path": {"path": "$.state.items.*.stock", "op": ">", "value": 0, "match": "all"}}, False),
        ({"json_path": {"path": "$.state.items.*.stock", "op": ">", "value": 0, "match": "any"}}, True),
        ({"json_path": {"path": "$..price", "count": 2}}, True),
        ({"json_path": {"path": "$.tool_calls[0].name", "op": "==", "value": "list_items"}}, True),
        ({"json_path": {"path": "$.state.nothing", "op": "missing"}}, True),
        ({"all": [{"regex": "apples"}, {"state": {"path": "items.pen.stock", "op": "==", "value": 0}}]}, True),
        ({"all": [{"regex": "apples"}, {"regex": "pears"}]}, False),
        ({"any": [{"regex": "pears"}, {"regex": "apples"}]}, True),
        ({"not": {"regex": "pears"}}, True),
    ],
)
def test_rules(rule, ok):
    assert check(rule)[0] is ok


def test_rule_reasons_say_what_was_found():
    ok, reason = check({"state": {"path": "items.mug-blue.stock", "op": "==", "value": 9}})
    assert not ok and "is 7" in reason and "9" in reason
    ok, reason = check({"any": [{"regex": "pears"}, {"regex": "plums"}]})
    assert reason.startswith("none passed")
    ok, reason = check({"json_path": {"path": "$.state.orders.*", "count": 5}})
    assert "matched 2 values, expected 5" in reason


def test_equals_compares_answer_text_with_numbers():
    scenario = envs.parse_scenario({"name": "r", "type": "text", "instructions": "x", "checker": {"equals": 42}})
    assert evaluate_rules(scenario.checker, {"answer": " 42 "}).success
    assert evaluate_rules(scenario.checker, {"answer": "42.0"}).success
    assert not evaluate_rules(scenario.checker, {"answer": "forty-two"}).success


def test_jsonpath_parser():
    assert jsonpath({"a": [{"b": 1}, {"b": 2}]}, "$.a[*].b") == [1, 2]
    assert jsonpath({"a": [1, 2, 3]}, "$.a[-1]") == [3]
    assert jsonpath({"a b": 1}, "$['a b']") == [1]
    assert jsonpath({"a": {"x": {"k": 1}, "y": {"k": 2}}}, "$..k") == [1, 2]
    for bad in ("a.b", "$.a[", "$.a[?(@.x ~ 1)]", "$.a[?(@.x == unquoted)]"):
        with pytest.raises(ValueError):
            parse_jsonpath(bad)


def test_to_number():
    assert to_number("It is 1,250.") == 1250
    assert to_number("-3.5 and then 7") == 7
    assert to_number(True) is None
    assert to_number("none") is None


def test_normalise_checker_results():
    assert normalise_result(True).success
    assert normalise_result(0.5).score == 0.5 and not normalise_result(0.5).success
    assert normalise_result(2).score == 1.0
    verdict = normalise_result({"score": 1.0, "reason": "fine", "done": True})
    assert verdict.success and verdict.reason == "fine" and verdict.done
    assert not normalise_result({"success": False}).success
    for bad in (None, "yes", {"reason": "no verdict"}, float("nan"), {"score": "high"}):
        with pytest.raises(ValueError):
            normalise_result(bad)


def test_check_arguments():
    schema = {
        "type": "object",
        "properties": {
            "sku": {"type": "string", "minLength": 2},
            "qty": {"type": "integer", "minimum": 1},
            "mode": {"enum": ["a", "b"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["sku"],
        "additionalProperties": False,
    }
    assert check_arguments(schema, {"sku": "ab", "qty": 2, "mode": "a", "tags": ["x"]}) is None
    assert check_arguments(schema, {}) == "sku: required"
    assert check_arguments(schema, {"sku": "ab", "qty": 0}) == "qty: must be >= 1"
    assert check_arguments(schema, {"sku": "ab", "qty": True}).startswith("qty: expected integer")
    assert check_arguments(schema, {"sku": "ab", "mode": "c"}).startswith("mode: must be one of")
    assert check_arguments(schema, {"sku": "ab", "tags": [1]}).startswith("tags[0]: expected string")
    assert check_arguments(schema, {"sku": "ab", "extra": 1}).startswith("extra: unknown argument")
    assert check_arguments(schema, "not an object") == "arguments: must be an object"


def test_gym_action_parser():
    from gymnasium import spaces

    discrete = spaces.Discrete(4)
    names = ["left", "down", "right", "up"]
    assert envs.parse_gym_action(discrete, 2) == 2
    assert envs.parse_gym_action(discrete, "3") == 3
    assert envs.parse_gym_action(discrete, "action 1") == 1
    assert envs.parse_gym_action(discrete, "Right", names) == 2
    for bad in (4, "jump", True, 1.5, [1]):
        with pytest.raises(ValueError):
            envs.parse_gym_action(discrete, bad, names)
    box = spaces.Box(low=-1.0, high=1.0, shape=(2,), dtype=np.float32)
    assert envs.parse_gym_action(box, [0.5, 3]).tolist() == [0.5, 1.0]  # clipped to the bounds
    assert envs.parse_gym_action(box, "-0.25, 0.75").tolist() == [-0.25, 0.75]
    with pytest.raises(ValueError, match="expected 2 numbers"):
        envs.parse_gym_action(box, [1.0])
    multi = spaces.MultiDiscrete([3, 2])
    assert envs.parse_gym_action(multi, [2, 1]).tolist() == [2, 1]
    with pytest.raises(ValueError):
        envs.parse_gym_action(multi, [3, 0])
