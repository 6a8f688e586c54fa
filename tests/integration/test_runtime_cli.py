"""The runtime's CLI commands on a temp home: agents create / list / chat, and a rollout whose
trajectories land in the Data Factory."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from workbench.cli_runtime import agents_app, models_app, rollout

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WORKBENCH_PII_NER", "false")
    app = typer.Typer()
    app.add_typer(agents_app, name="agents")
    app.add_typer(models_app, name="models")
    app.command("rollout")(rollout)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return run


def test_agents_create_list_and_chat(cli):
    engine = json.dumps({"kind": "scripted", "replies": ['{"answer": "hello there"}', "second"]})
    created = cli("agents", "create", "--name", "greeter", "--engine", engine)
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["agent_version"] == "greeter@v1"
    assert json.loads(cli("agents", "create", "--name", "greeter", "--engine", engine).stdout)["version"] == 2
    listed = json.loads(cli("agents", "list").stdout)
    assert [a["agent_version"] for a in listed] == ["greeter@v2", "greeter@v1"]
    chat = cli("agents", "chat", "greeter", "-m", "hi", "-m", "again")
    assert chat.exit_code == 0
    assert chat.stdout.splitlines()[:2] == ["hello there", "second"]
    shown = json.loads(cli("agents", "show", "greeter").stdout)
    assert shown["metrics"]["turns"] == 2


def test_bad_input_is_one_line_and_exit_2(cli):
    result = cli("agents", "create", "--name", "bad name", "--engine", '{"kind": "scripted"}')
    assert result.exit_code == 2 and "error: name:" in result.output
    missing = cli("rollout", "--scenario", "calculator", "--agent", "nobody")
    assert missing.exit_code == 2 and "agent 'nobody' not found" in missing.output


def test_rollout_reports_success_and_ingests(cli, tmp_path):
    from workbench.agents.rollouts import load_tasks

    replies = []
    for task in load_tasks("calculator", "train", limit=2):
        replies += [json.dumps(a.to_dict()) for a in task.oracle.actions]
    engine = json.dumps({"kind": "scripted", "replies": replies})
    assert cli("agents", "create", "--name", "calc", "--engine", engine).exit_code == 0
    result = cli("rollout", "--scenario", "calculator", "--split", "train", "--agent", "calc", "--limit", "2",
                 "--batch-size", "1", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["success_rate"] == 1.0 and report["agent_version"] == "calc@v1"
    assert report["ingested"]["accepted"] == report["events"] > 0
