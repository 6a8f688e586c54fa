"""Scenario families: registry, seeded generation, split sizes, disjoint splits, self-description."""

from __future__ import annotations

from pathlib import Path

import pytest

import workbench.envs as envs
from workbench.envs.families.calculator import evaluate, format_number

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FAMILIES = ("calculator", "inventory", "forms")


@pytest.mark.parametrize("name", FAMILIES)
def test_family_yaml_names_generator_and_command(name):
    spec = envs.load_family(SCENARIOS / f"{name}.yaml")
    assert spec.family == name
    assert spec.generator and spec.resolve() is envs.get_family(name)
    assert spec.command.startswith("workbench scenarios run scenarios/")
    family = spec.resolve()
    assert "What it tests" in family.description and "Run it" in family.description


@pytest.mark.parametrize("name", FAMILIES)
def test_split_sizes_and_disjoint(name):
    spec = envs.load_family(SCENARIOS / f"{name}.yaml")
    train, test = spec.generate("train"), spec.generate("test")
    assert len(train) >= 100 and len(test) >= 50
    assert {t.split for t in train} == {"train"} and {t.split for t in test} == {"test"}
    assert not {t.instructions for t in train} & {t.instructions for t in test}
    keys = lambda tasks: {t.metadata.get("task_key", t.instructions) for t in tasks}  # noqa: E731
    assert not keys(train) & keys(test)
    assert len({t.name for t in train + test}) == len(train) + len(test)
    assert all(t.oracle is not None and t.family == name for t in train + test)
    # another seed reorders and resamples, but never crosses the split line
    other = spec.generate("test", seed=7)
    assert not keys(other) & keys(train)
    assert all(envs.split_of(name, k) == "test" for k in keys(other))


@pytest.mark.parametrize("name", FAMILIES)
def test_generation_is_seeded(name):
    family = envs.get_family(name)
    a = [t.version for t in family.generate("test", seed=3, count=10)]
    b = [t.version for t in family.generate("test", seed=3, count=10)]
    c = [t.version for t in family.generate("test", seed=4, count=10)]
    assert a == b and a != c


def test_families_registry_and_lookup_errors():
    assert set(FAMILIES) <= set(envs.list_families())
    with pytest.raises(LookupError, match="no scenario family"):
        envs.get_family("nope")
    with pytest.raises(ValueError, match="split"):
        envs.get_family("calculator").generate("dev")
    assert "calculator" in envs.registered_tools()
    assert "numeric_answer" in envs.registered_checkers()


def test_calculator_problems_are_small_and_whole():
    for task in envs.get_family("calculator").generate("train"):
        expression = task.metadata["expression"]
        value = evaluate(expression)
        assert value == int(value) and 0 <= value < 1000
        assert len(expression.split()) in (3, 5)  # one or two operations
        assert task.tools[0].name == "calculator"


def test_calculator_tool_is_safe():
    assert format_number(evaluate("2 * (3 + 4) / 2")) == "7"
    assert format_number(evaluate("7 / 2")) == "3.5"
    for bad in ("__import__('os')", "x + 1", "2 ** 1000", "1 / 0", "[1, 2]"):
        with pytest.raises(ValueError):
            evaluate(bad)


def test_inventory_tasks_carry_their_state_and_rules():
    for task in envs.get_family("inventory").generate("test", count=20):
        assert task.type == "api" and task.initial_state["items"]
        assert task.checker is not None and not isinstance(task.checker, envs.PythonChecker)


def test_forms_tasks_point_at_existing_pages():
    for task in envs.load_family(SCENARIOS / "forms.yaml").generate("test", count=10):
        page = task.resolve_path(task.browser.pages_dir) / task.browser.start_url.lstrip("/")
        assert page.is_file(), page
