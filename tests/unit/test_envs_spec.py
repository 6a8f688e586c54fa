"""Scenario spec: validation errors name the field and the reason; versions are content hashes."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import workbench.envs as envs

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"


def minimal(**changes):
    spec = {
        "name": "t1",
        "type": "text",
        "instructions": "Say hi.",
        "checker": {"equals": {"value": "hi"}},
    }
    spec.update(changes)
    return spec


def errors_of(data) -> list[dict[str, str]]:
    with pytest.raises(envs.ScenarioInvalid) as info:
        envs.parse_scenario(data)
    return info.value.errors


def fields(errors) -> list[str]:
    return [e["field"] for e in errors]


def test_minimal_scenario_has_defaults():
    scenario = envs.parse_scenario(minimal())
    assert scenario.limits.max_steps == 20
    assert scenario.split == "train"
    assert scenario.allow_network is False
    assert re.fullmatch(r"[0-9a-f]{64}", scenario.version)


def test_version_is_content_hash_stable_and_sensitive():
    a = envs.parse_scenario(minimal())
    b = envs.parse_scenario(dict(reversed(list(minimal().items()))))
    assert a.version == b.version  # key order does not matter
    explicit = envs.parse_scenario(minimal(limits={"max_steps": 20}))
    assert explicit.version == a.version  # a default written out is the same spec
    edited = envs.parse_scenario(minimal(instructions="Say hi!"))
    assert edited.version != a.version
    assert envs.parse_scenario(a.spec()).version == a.version  # a dumped spec loads back identical


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"instructions": ""}, "instructions", "at least 1 character"),
        ({"type": "robot"}, "type", "'text', 'api', 'browser' or 'gym'"),
        ({"name": "bad name!"}, "name", "letters, digits"),
        ({"limits": {"max_steps": 0}}, "limits.max_steps", "greater than or equal to 1"),
        ({"limits": {"memory_mb": 1}}, "limits.memory_mb", "greater than or equal to 64"),
        ({"limits": {"max_step": 3}}, "limits.max_step", "unknown field"),
        ({"instrucions": "x"}, "instrucions", "unknown field"),
        ({"split": "dev"}, "split", "'train' or 'test'"),
        ({"checker": {"regex": {"pattern": "("}}}, "checker.regex.pattern", "not a valid regular expression"),
        ({"checker": {"equals": 1, "regex": "x"}}, "checker", "exactly one of"),
        ({"checker": {"python": "not a ref"}}, "checker.python", "module:function"),
        ({"checker": {"json_path": {"path": "state.x"}}}, "checker.json_path.path", "starts with $"),
        ({"checker": {"all": [{"state": {"path": "a", "op": "~"}}]}}, "checker.all.0.state.op", "'=='"),
        ({"checker": None}, "checker", "needs a checker"),
        ({"tools": [{"name": "t", "parameters": {"type": "object"}}]}, "tools.0.handler", "need a handler"),
        ({"tools": [{"name": "bad name", "handler": "echo"}]}, "tools.0.name", "letters, digits"),
        (
            {"tools": [{"name": "t", "handler": "echo"}, {"name": "t", "handler": "echo"}]},
            "tools.1.name",
            "duplicate tool name",
        ),
        (
            {"tools": [{"name": "t", "handler": "echo", "parameters": {"type": "array"}}]},
            "tools.0.parameters",
            '"type": "object"',
        ),
        ({"oracle": {"actions": [{"tool": "nope", "arguments": {}}]}}, "oracle.actions.0.tool", "unknown tool"),
        ({"oracle": {"actions": [{"tool": "x", "answer": 1}]}}, "oracle.actions.0", "either"),
        ({"oracle": {}}, "oracle.actions", "exactly one of"),
        ({"tools": [{"mcp": {"name": "m"}}]}, "tools.0.mcp.command", "exactly one of command"),
        ({"browser": {"start_url": "/x.html"}}, "browser", "only browser scenarios"),
    ],
)
def test_invalid_specs_name_field_and_reason(change, field, reason):
    errors = errors_of(minimal(**change))
    assert field in fields(errors), errors
    assert any(reason in e["reason"] for e in errors if e["field"] == field), errors


def test_type_specific_sections_are_required():
    assert "browser" in fields(errors_of(minimal(type="browser")))
    assert "gym" in fields(errors_of(minimal(type="gym", checker=None)))
    gym = envs.parse_scenario(minimal(type="gym", checker=None, gym={"id": "CartPole-v1"}))
    assert gym.tool_names() == ["act"]


def test_every_error_is_reported_not_just_the_first():
    errors = errors_of(minimal(instructions="", limits={"max_steps": -1, "cpu_s": 0}))
    assert {"instructions", "limits.max_steps", "limits.cpu_s"} <= set(fields(errors))


def test_scenario_invalid_is_a_422_with_field_list():
    with pytest.raises(envs.ScenarioInvalid) as info:
        envs.parse_scenario(minimal(limits={"max_steps": 0}))
    exc = info.value
    assert exc.status_code == 422
    body = exc.to_dict()
    assert body["field"] == "limits.max_steps"
    assert body["errors"][0]["field"] == "limits.max_steps"
    assert "limits.max_steps" in str(exc)


def test_validation_errors_helper_on_raw_pydantic_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        envs.Scenario.model_validate(minimal(type="nope"))
    assert envs.validation_errors(info.value)[0]["field"] == "type"


def test_not_a_mapping():
    assert errors_of(["a list"]) == [{"field": "(scenario)", "reason": "a scenario must be a mapping"}]


def test_action_model():
    assert envs.Action.model_validate({"tool": "t"}).to_dict() == {"tool": "t", "arguments": {}}
    assert envs.Action.model_validate({"answer": 3}).is_answer
    with pytest.raises(Exception, match="either"):
        envs.Action.model_validate({"arguments": {}})


def test_hello_yaml_loads_and_validates():
    scenario = envs.load_scenario(SCENARIOS / "hello.yaml")
    assert scenario.name == "hello"
    assert scenario.base_dir == SCENARIOS.resolve()
    assert envs.validate_file(SCENARIOS / "hello.yaml") == []


def test_every_library_file_validates():
    for path in sorted(SCENARIOS.glob("*.yaml")):
        assert envs.validate_file(path) == [], path


def test_validate_file_reports_yaml_syntax_with_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntype: text\ninstructions: [unclosed\n")
    errors = envs.validate_file(bad)
    assert errors[0]["field"] == "(file)"
    assert "line" in errors[0]["reason"]


def test_validate_file_reports_unresolvable_references(tmp_path):
    spec = minimal(tools=[{"name": "t", "handler": "no_such_tool"}], checker={"python": "missing.py:check"})
    path = tmp_path / "refs.yaml"
    path.write_text(yaml.safe_dump(spec))
    errors = {e["field"]: e["reason"] for e in envs.validate_file(path)}
    assert "no tool registered as 'no_such_tool'" in errors["tools.0.handler"]
    assert "does not exist" in errors["checker.python"]


def test_validate_file_reports_bad_family(tmp_path):
    path = tmp_path / "fam.yaml"
    path.write_text("family: nope\ncommand: run it\n")
    assert envs.validate_file(path)[0]["field"] == "family"
    path.write_text("family: calculator\n")
    assert envs.validate_file(path) == [{"field": "command", "reason": "Field required"}]


def test_load_library_lists_scenarios_families_and_invalid_files(tmp_path):
    for name in ("hello.yaml", "calculator.yaml"):
        (tmp_path / name).write_text((SCENARIOS / name).read_text())
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(minimal(limits={"max_steps": 0})))
    entries = {e.name: e for e in envs.load_library(tmp_path)}
    assert entries["hello"].kind == "scenario" and entries["hello"].version
    assert entries["calculator"].kind == "family"
    assert entries["calculator"].counts == {"train": 200, "test": 60}
    assert "workbench scenarios run" in entries["calculator"].command
    assert entries["broken"].kind == "invalid"
    assert entries["broken"].errors[0]["field"] == "limits.max_steps"


def test_show_and_find_scenario():
    shown = envs.show("hello", SCENARIOS)
    assert shown["kind"] == "scenario" and shown["version"] == envs.load_scenario(SCENARIOS / "hello.yaml").version
    family = envs.show("calculator", SCENARIOS)
    assert family["kind"] == "family" and family["sample"]["spec"]["type"] == "text"
    task = envs.find_scenario("calculator-test-0003", SCENARIOS)
    assert task.name == "calculator-test-0003" and task.split == "test"
    with pytest.raises(LookupError):
        envs.find_scenario("nothing-here", SCENARIOS)


def test_spec_is_plain_json_and_copy_safe():
    scenario = envs.load_scenario(SCENARIOS / "hello.yaml")
    spec = scenario.spec()
    again = envs.parse_scenario(copy.deepcopy(spec))
    assert again.version == scenario.version


def test_import_is_light():
    code = (
        "import sys, workbench.envs; "
        "bad = [m for m in ('playwright', 'gymnasium', 'torch') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
