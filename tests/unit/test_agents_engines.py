"""Engines without a model: the scripted engine, the registry, and the OpenAI / vLLM HTTP engines
against an in-process transport that answers the way those servers do."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from agents_fixtures import CALCULATOR

from workbench.agents import (
    ChatRequest,
    Completion,
    Engine,
    EngineConfig,
    EngineError,
    EngineTimeout,
    OpenAIEngine,
    OpenAIEngineConfig,
    SamplingParams,
    ScriptedEngine,
    ScriptedEngineConfig,
    Timing,
    TransformersEngineConfig,
    VLLMEngine,
    VLLMEngineConfig,
    engine_kinds,
    make_engine,
    parse_engine_config,
    register_engine,
)
from workbench.errors import ValidationFailed

USER = [{"role": "user", "content": "What is 2+3?"}]


def test_import_does_not_load_torch_or_transformers() -> None:
    code = "import sys, workbench.agents; print([m for m in ('torch', 'transformers', 'httpx') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- scripted engine


def test_scripted_engine_replays_in_order_across_calls() -> None:
    engine = ScriptedEngine.from_replies("one", "two", "three")
    assert [c.text for c in engine.generate([USER, USER])] == ["one", "two"]
    assert engine.chat(USER).text == "three"
    assert engine.replies_left == 0
    with pytest.raises(EngineError, match="ran out of replies"):
        engine.chat(USER)


def test_scripted_engine_cycles_and_uses_reply_fn() -> None:
    cycling = ScriptedEngine.from_replies("a", "b", cycle=True)
    assert [cycling.chat(USER).text for _ in range(5)] == ["a", "b", "a", "b", "a"]
    echo = ScriptedEngine(reply_fn=lambda request: request.messages[-1]["content"].upper())
    assert echo.chat([{"role": "user", "content": "hey"}]).text == "HEY"
    assert echo.requests[0].messages[-1]["content"] == "hey"


def test_scripted_completion_shape() -> None:
    engine = ScriptedEngine.from_replies("héllo")
    c = engine.chat(USER, tools=[CALCULATOR])
    assert c.text == "héllo"
    assert c.completion_token_ids == list("héllo".encode())
    assert c.logprobs == [0.0] * len(c.completion_token_ids)
    assert c.finish_reason == "stop"
    prompt = bytes(c.prompt_token_ids).decode()
    assert "# Tools" in prompt and prompt.endswith("<|im_start|>assistant\n")


def test_scripted_stop_strings_and_max_new_tokens() -> None:
    engine = ScriptedEngine.from_replies("abc STOP def", "abcdefgh", cycle=True)
    stopped = engine.chat(USER, sampling=SamplingParams(stop=["STOP", "c"]))
    assert stopped.text == "ab"
    assert stopped.stop_reason == "c"
    assert bytes(stopped.completion_token_ids) == b"abc"
    cut = engine.chat(USER, sampling=SamplingParams(max_new_tokens=3))
    assert (cut.text, cut.finish_reason, cut.num_completion_tokens) == ("abc", "length", 3)


def test_message_validation_names_the_field() -> None:
    engine = ScriptedEngine.from_replies("x", cycle=True)
    with pytest.raises(ValidationFailed, match="at least one message"):
        engine.chat([])
    with pytest.raises(ValidationFailed) as info:
        engine.generate([USER, [{"role": "robot", "content": "x"}]])
    assert info.value.field == "requests[1].messages[0].role"
    with pytest.raises(ValidationFailed, match="content"):
        engine.chat([{"role": "user"}])
    with pytest.raises(EngineTimeout):
        engine.chat(USER, timeout_s=0)


def test_sampling_params_validation() -> None:
    assert SamplingParams(stop="x").stop == ("x",)
    assert SamplingParams().greedy
    for bad in ({"temperature": -1}, {"top_p": 0}, {"max_new_tokens": 0}, {"stop": [""]}, {"beam": 2}):
        with pytest.raises(ValueError):
            SamplingParams(**bad)


# --------------------------------------------------------------------------- registry


def test_registry_builds_by_kind_only() -> None:
    assert {"openai", "scripted", "transformers", "vllm"} <= set(engine_kinds())
    engine = make_engine({"kind": "scripted", "replies": ["hi"]})
    assert isinstance(engine, ScriptedEngine)
    assert engine.chat(USER).text == "hi"
    cfg = parse_engine_config({"kind": "vllm", "model": "m"})
    assert isinstance(cfg, VLLMEngineConfig)
    assert cfg.base_url == "http://127.0.0.1:8000/v1"
    assert isinstance(parse_engine_config({"kind": "transformers", "model_path": "/x"}), TransformersEngineConfig)


def test_registry_errors_are_specific() -> None:
    with pytest.raises(ValidationFailed, match="needs a 'kind'"):
        make_engine({"replies": []})
    with pytest.raises(ValidationFailed, match="unknown engine kind 'gpt'"):
        make_engine({"kind": "gpt"})
    with pytest.raises(ValidationFailed) as info:
        make_engine({"kind": "openai", "base_url": "http://x/v1"})
    assert info.value.field == "model"
    with pytest.raises(ValidationFailed) as info:
        make_engine({"kind": "scripted", "replys": []})
    assert info.value.field == "replys"
    with pytest.raises(ValidationFailed, match="does not belong"):
        parse_engine_config(ScriptedEngineConfig.model_construct(kind="openai"))


def test_register_a_custom_engine() -> None:
    class EchoConfig(EngineConfig):
        kind: str = "test-echo"

    @register_engine("test-echo", EchoConfig)
    class Echo(Engine):
        def _generate(self, requests: list[ChatRequest], timeout_s: float | None) -> list[Completion]:
            return [
                Completion(text=r.messages[-1]["content"], finish_reason="stop", timing=Timing(total_s=0.0))
                for r in requests
            ]

    assert make_engine({"kind": "test-echo"}).chat(USER).text == "What is 2+3?"
    with pytest.raises(ValueError, match="already registered"):
        register_engine("test-echo", EchoConfig)(type("Other", (Echo,), {}))


# --------------------------------------------------------------------------- OpenAI-compatible


class FakeServer:
    """Answers like an OpenAI-compatible server (vLLM flavour when asked for token ids)."""

    def __init__(self, reply: str = '{"answer": "5"}', refuse_logprobs: bool = False, status: int = 200) -> None:
        self.reply = reply
        self.refuse_logprobs = refuse_logprobs
        self.status = status
        self.requests: list[tuple[str, dict, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.requests.append((request.url.path, body, dict(request.headers)))
        path = request.url.path
        if self.status != 200:
            return httpx.Response(self.status, text="model overloaded")
        if path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "base"}, {"id": "lora-a"}]})
        if path.endswith(("load_lora_adapter", "unload_lora_adapter")):
            return httpx.Response(200, text="ok")
        if self.refuse_logprobs and "logprobs" in body:
            return httpx.Response(400, json={"error": "logprobs are not supported"})
        tokens = [101, 102, 2]
        lps = [-0.5, -0.25, -0.125]
        choice: dict = {"index": 0, "finish_reason": "stop", "stop_reason": None}
        if path.endswith("/chat/completions"):
            choice["message"] = {"role": "assistant", "content": self.reply}
            if "logprobs" in body:
                choice["logprobs"] = {"content": [{"token": f"t{t}", "logprob": lp} for t, lp in zip(tokens, lps)]}
        else:
            choice["text"] = self.reply
            if "logprobs" in body:
                choice["logprobs"] = {"tokens": [f"t{t}" for t in tokens], "token_logprobs": lps}
        data: dict = {"model": body.get("model"), "choices": [choice]}
        if body.get("return_token_ids"):
            choice["token_ids"] = tokens
            data["prompt_token_ids"] = [1, 2, 3]
        return httpx.Response(200, json=data)


def client_for(server: FakeServer) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(server))


def test_openai_engine_request_and_response() -> None:
    server = FakeServer()
    config = OpenAIEngineConfig(base_url="https://api.example.com/v1/", model="gpt-x", api_key="sk-test")
    engine = OpenAIEngine(config, http_client=client_for(server))
    c = engine.chat(USER, tools=[CALCULATOR], sampling=SamplingParams(temperature=0.7, seed=5, stop=["\n\n"], max_new_tokens=9))
    path, body, headers = server.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["authorization"] == "Bearer sk-test"
    assert body["model"] == "gpt-x"
    assert (body["temperature"], body["seed"], body["stop"], body["max_tokens"]) == (0.7, 5, ["\n\n"], 9)
    assert body["logprobs"] is True
    assert "return_token_ids" not in body
    assert body["messages"][0]["role"] == "system" and "# Tools" in body["messages"][0]["content"]
    assert body["messages"][-1] == USER[0]
    assert c.text == '{"answer": "5"}'
    assert c.logprobs == [-0.5, -0.25, -0.125]
    assert c.completion_token_ids is None and c.prompt_token_ids is None  # a generic server cannot say
    assert c.finish_reason == "stop"


def test_openai_engine_batches_concurrently_with_per_request_seeds() -> None:
    server = FakeServer()
    engine = make_engine(
        {"kind": "openai", "base_url": "http://h/v1", "model": "m", "max_concurrency": 4},
        http_client=client_for(server),
    )
    out = engine.generate([USER] * 6, SamplingParams(seed=10))
    assert len(out) == 6
    assert sorted(body["seed"] for _, body, _ in server.requests) == list(range(10, 16))


def test_openai_engine_stops_asking_for_logprobs_when_refused() -> None:
    server = FakeServer(refuse_logprobs=True)
    engine = OpenAIEngine(OpenAIEngineConfig(base_url="http://h/v1", model="m"), http_client=client_for(server))
    assert engine.chat(USER).logprobs is None
    engine.chat(USER)
    assert ["logprobs" in body for _, body, _ in server.requests] == [True, False, False]


def test_openai_engine_errors() -> None:
    engine = OpenAIEngine(OpenAIEngineConfig(base_url="http://h/v1", model="m"), http_client=client_for(FakeServer(status=503)))
    with pytest.raises(EngineError, match="HTTP 503"):
        engine.chat(USER)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    timing_out = OpenAIEngine(
        OpenAIEngineConfig(base_url="http://h/v1", model="m"), http_client=httpx.Client(transport=httpx.MockTransport(slow))
    )
    with pytest.raises(EngineTimeout):
        timing_out.chat(USER)
    with pytest.raises(EngineError, match="tokenizer_path"):
        OpenAIEngine(OpenAIEngineConfig(base_url="http://h/v1", model="m", endpoint="completions"))


def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer()
    config = OpenAIEngineConfig(base_url="http://h/v1", model="m", api_key_env="WB_TEST_KEY")
    with pytest.raises(EngineError, match="WB_TEST_KEY"):
        OpenAIEngine(config, http_client=client_for(server))
    monkeypatch.setenv("WB_TEST_KEY", "from-env")
    OpenAIEngine(config, http_client=client_for(server)).chat(USER)
    assert server.requests[0][2]["authorization"] == "Bearer from-env"
    assert "from-env" not in repr(OpenAIEngineConfig(base_url="http://h/v1", model="m", api_key="from-env"))


def test_vllm_engine_gets_token_ids_and_switches_adapters() -> None:
    server = FakeServer()
    engine = VLLMEngine(VLLMEngineConfig(model="base"), http_client=client_for(server))
    c = engine.chat(USER)
    assert server.requests[0][1]["return_token_ids"] is True
    assert (c.prompt_token_ids, c.completion_token_ids, c.logprobs) == ([1, 2, 3], [101, 102, 2], [-0.5, -0.25, -0.125])
    assert engine.list_models() == ["base", "lora-a"]

    engine.load_lora_adapter("lora-a", "/adapters/a")
    path, body, _ = server.requests[-1]
    assert path == "/v1/load_lora_adapter"
    assert body == {"lora_name": "lora-a", "lora_path": "/adapters/a"}
    engine.use_adapter("lora-a")
    engine.chat(USER)
    assert server.requests[-1][1]["model"] == "lora-a"
    engine.unload_lora_adapter("lora-a")
    assert server.requests[-1][0] == "/v1/unload_lora_adapter"
    assert engine.adapter is None
    engine.chat(USER)
    assert server.requests[-1][1]["model"] == "base"


def test_vllm_engine_maps_finish_and_stop_reasons() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        choice = {"message": {"content": "abc"}, "finish_reason": "length", "stop_reason": None, "token_ids": [5, 6]}
        return httpx.Response(200, json={"choices": [choice], "prompt_token_ids": [1]})

    engine = VLLMEngine(VLLMEngineConfig(model="base"), http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    c = engine.chat(USER)
    assert (c.finish_reason, c.completion_token_ids, c.logprobs) == ("length", [5, 6], None)


def test_misaligned_logprobs_are_dropped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        choice = {
            "message": {"content": "abc"},
            "finish_reason": "stop",
            "token_ids": [5, 6, 7],
            "logprobs": {"content": [{"token": "a", "logprob": -1.0}]},
        }
        return httpx.Response(200, json={"choices": [choice]})

    engine = VLLMEngine(VLLMEngineConfig(model="base"), http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    c = engine.chat(USER)
    assert c.completion_token_ids == [5, 6, 7]
    assert c.logprobs is None
