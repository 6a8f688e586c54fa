"""Agent specs, deployment requests and the pure parts of sessions, monitoring and rollouts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.agents import ScriptedEngine, ToolSpec, run_agent_loop
from workbench.errors import ValidationFailed
from workbench.runtime.agents import AgentSpec, GenerationSettings, is_managed_engine, parse_agent_spec
from workbench.runtime.serving import DeploymentRequest


def test_defaults_name_the_base_model_and_a_short_loop() -> None:
    spec = parse_agent_spec({"name": "helper"})
    assert spec.model.ref == "smollm2-135m-instruct"
    assert spec.model.checkpoint is None and spec.model.adapter is None
    assert spec.plugins == [] and spec.engine is None
    sampling = spec.generation.sampling()
    assert sampling.greedy and sampling.max_new_tokens == spec.generation.max_new_tokens


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "-leading-dash"}, "name"),
        ({"name": "ok", "colour": "blue"}, "colour"),
        ({"name": "ok", "generation": {"temperature": -1}}, "generation.temperature"),
        ({"name": "ok", "generation": {"max_steps": 0}}, "generation.max_steps"),
        ({"name": "ok", "generation": {"timeout_s": 0}}, "generation.timeout_s"),
        ({"name": "ok", "model": {"ref": ""}}, "model.ref"),
        ({"name": "ok", "model": {"ref": "m", "weights": "x"}}, "model.weights"),
        ({"name": "ok", "plugins": [{"name": "toolbox", "version": "1.0.0"}]}, "plugins.0.scopes"),
        ({"name": "ok", "tool_examples": {"calculator": [{"question": "q"}]}}, "tool_examples.calculator.0.arguments"),
    ],
)
def test_invalid_specs_name_the_field(spec: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_agent_spec(spec)
    assert err.value.field == field


def test_a_plugin_may_be_pinned_once() -> None:
    pin = {"name": "toolbox", "version": "1.0.0", "scopes": ["read"]}
    with pytest.raises(ValidationFailed, match="pinned once"):
        parse_agent_spec({"name": "ok", "plugins": [pin, {**pin, "version": "1.1.0"}]})


def test_engine_configs_are_validated_by_kind() -> None:
    scripted = parse_agent_spec({"name": "s", "engine": {"kind": "scripted", "replies": ["hi"]}})
    assert scripted.engine == {"kind": "scripted", "replies": ["hi"]}
    with pytest.raises(ValidationFailed, match="unknown engine kind 'telepathy'"):
        parse_agent_spec({"name": "s", "engine": {"kind": "telepathy"}})
    with pytest.raises(ValidationFailed, match="base_url"):
        parse_agent_spec({"name": "s", "engine": {"kind": "openai", "model": "m"}})
    with pytest.raises(ValidationFailed, match="needs a 'kind'"):
        parse_agent_spec({"name": "s", "engine": {"replies": ["hi"]}})


def test_a_kind_alone_selects_managed_serving() -> None:
    assert is_managed_engine(None)
    assert is_managed_engine({"kind": "transformers"})
    assert is_managed_engine({"kind": "vllm"})
    assert not is_managed_engine({"kind": "vllm", "base_url": "http://127.0.0.1:8000/v1", "model": "m"})
    assert not is_managed_engine({"kind": "transformers", "model_path": "/models/x"})
    assert not is_managed_engine({"kind": "scripted", "replies": []})
    parse_agent_spec({"name": "s", "engine": {"kind": "transformers"}})
    with pytest.raises(ValidationFailed, match="takes only 'kind'"):
        parse_agent_spec({"name": "s", "engine": {"kind": "transformers", "max_batch_size": 2}})


def test_public_view_masks_engine_keys() -> None:
    from datetime import UTC, datetime

    from workbench.runtime.agents import AgentInfo

    spec = AgentSpec(name="remote", engine={"kind": "openai", "base_url": "http://x/v1", "model": "m", "api_key": "sk-1"})
    info = AgentInfo(id="agt_1", name="remote", version=1, agent_version="remote@v1", spec=spec,
                     created_at=datetime.now(UTC))
    public = info.public()
    assert public.spec.engine["api_key"] == "********"
    assert info.spec.engine["api_key"] == "sk-1"  # the stored spec keeps it for the engine


def test_generation_sampling_carries_every_setting() -> None:
    gen = GenerationSettings(temperature=0.7, top_p=0.9, max_new_tokens=32, seed=5)
    sampling = gen.sampling()
    assert (sampling.temperature, sampling.top_p, sampling.max_new_tokens, sampling.seed) == (0.7, 0.9, 32, 5)


def test_deployment_request_rejects_unknown_fields() -> None:
    assert DeploymentRequest().model == "smollm2-135m-instruct"
    with pytest.raises(ValueError):
        DeploymentRequest.model_validate({"model": "m", "replicas": 3})


def test_percentiles_are_nearest_rank() -> None:
    from workbench.runtime.monitoring import _percentile

    values = [float(v) for v in range(1, 101)]
    assert _percentile(values, 0.5) == 50.0
    assert _percentile(values, 0.95) == 95.0
    assert _percentile([7.0], 0.95) == 7.0
    assert _percentile([1.0, 2.0], 0.5) == 1.0


CALC = ToolSpec(name="calculator", parameters={"type": "object", "properties": {"expression": {"type": "string"}},
                                               "required": ["expression"]})


def test_turn_events_follow_the_schema_and_keep_steps_increasing() -> None:
    from datetime import UTC, datetime

    from workbench.data.schema import EventIn
    from workbench.runtime.agents import AgentInfo
    from workbench.runtime.sessions import ToolCallView, _events

    engine = ScriptedEngine.from_replies(
        '{"tool": calculator}', '{"tool": "calculator", "arguments": {"expression": "2+3"}}', '{"answer": "5"}'
    )
    user = {"role": "user", "content": "What is 2+3?"}
    transcript = run_agent_loop(engine, [user], [CALC], lambda call: "5")
    views = [ToolCallView(id="call_1_0", name="calculator", arguments={"expression": "2+3"}, ok=True, content="5",
                          plugin="toolbox")]
    agent = AgentInfo(id="agt_1", name="calc", version=2, agent_version="calc@v2",
                      spec=AgentSpec(name="calc", system_prompt="Be exact."), created_at=datetime.now(UTC))
    events, next_step = _events(agent, "ses_1", 0, 0, user, transcript, views)
    kinds = [(e["kind"], e["step"]) for e in events]
    assert kinds == [
        ("message", 0), ("message", 1),
        ("agent_action", 2), ("environment_observation", 2),
        ("agent_action", 3), ("tool_call", 3), ("tool_result", 3),
        ("agent_action", 4),
    ]
    assert next_step == 5
    for event in events:
        EventIn.model_validate(event)  # every event is valid for ingest
        assert event["session_id"] == "ses_1" and event["agent_version"] == "calc@v2"
    assert events[2]["payload"] == {"text": '{"tool": calculator}'}
    assert events[3]["payload"]["observation"].startswith("Error: malformed JSON")
    assert events[4]["payload"] == {"text": '{"tool": "calculator", "arguments": {"expression": "2+3"}}',
                                    "tool": "calculator", "arguments": {"expression": "2+3"}}
    assert events[6]["payload"]["content"] == "5" and events[6]["payload"]["plugin"] == "toolbox"
    assert events[7]["payload"] == {"text": '{"answer": "5"}', "answer": "5"}
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    # A later turn continues the numbering and does not repeat the system prompt.
    later, _ = _events(agent, "ses_1", 1, next_step, user, None, [])
    assert [(e["kind"], e["step"]) for e in later] == [("message", 5)]


def test_load_tasks_names_what_is_wrong(tmp_path) -> None:
    from workbench.agents.rollouts import load_tasks

    with pytest.raises(ValidationFailed, match="split"):
        load_tasks("calculator", "dev")
    with pytest.raises(ValidationFailed, match="no scenario or family file"):
        load_tasks("no-such-family", scenarios_dir=tmp_path)
    tasks = load_tasks("calculator", "test", limit=3)
    assert len(tasks) == 3 and all(t.family == "calculator" and t.split == "test" for t in tasks)


def test_importing_the_runtime_is_light() -> None:
    code = (
        "import sys, workbench.runtime.agents, workbench.runtime.sessions, workbench.runtime.serving,"
        " workbench.runtime.monitoring, workbench.agents.rollouts, workbench.api.routers.runtime, workbench.cli_runtime;"
        "heavy = [m for m in ('torch', 'transformers', 'lancedb', 'presidio_analyzer', 'mcp') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
