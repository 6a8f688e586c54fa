"""The agent loop driven by the scripted engine: answers, tool calls, errors, limits, batching."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from agents_fixtures import CALCULATOR, calculator

from workbench.agents import (
    AgentEpisode,
    ChatRequest,
    EngineError,
    SamplingParams,
    ScriptedEngine,
    ToolCall,
    ToolResult,
    run_agent_loop,
    run_agent_loops,
)

QUESTION = [{"role": "user", "content": "What is 17*23?"}]
CALL = '{"tool": "calculator", "arguments": {"expression": "17*23"}}'


def test_call_then_answer() -> None:
    engine = ScriptedEngine.from_replies(CALL, '{"answer": "391"}')
    t = run_agent_loop(engine, QUESTION, [CALCULATOR], calculator)
    assert (t.end_reason, t.answer, t.steps, t.parse_errors) == ("answer", "391", 2, 0)
    assert [m["role"] for m in t.messages] == ["user", "assistant", "tool", "assistant"]
    call_message, tool_message = t.messages[1], t.messages[2]
    assert call_message["content"] == CALL
    assert call_message["tool_calls"][0]["function"]["name"] == "calculator"
    assert tool_message == {"role": "tool", "tool_call_id": "call_0_0", "name": "calculator", "content": "391"}
    assert t.tool_calls == [ToolCall(id="call_0_0", name="calculator", arguments={"expression": "17*23"})]
    assert t.turns[0].tool_results[0].content == "391"
    # Every assistant turn keeps what training needs.
    for turn in t.turns:
        assert t.messages[turn.message_index]["role"] == "assistant"
        assert len(turn.completion.logprobs) == len(turn.completion.completion_token_ids) > 0
        assert turn.completion.prompt_token_ids
    # The second prompt showed the model its call and the tool's result.
    second = engine.requests[1].messages
    assert second[-2]["content"] == CALL and second[-1]["content"] == "391"
    assert engine.requests[1].tools == [CALCULATOR]


def test_plain_text_is_a_final_answer() -> None:
    t = run_agent_loop(ScriptedEngine.from_replies("It is 391."), QUESTION, [CALCULATOR], calculator)
    assert (t.end_reason, t.answer, t.steps) == ("answer", "It is 391.", 1)


def test_parse_error_is_shown_to_the_model_and_the_loop_goes_on() -> None:
    engine = ScriptedEngine.from_replies('{"tool": "calculator", "arguments": {"expression": "17*23}', CALL, '{"answer": "391"}')
    t = run_agent_loop(engine, QUESTION, [CALCULATOR], calculator)
    assert t.end_reason == "answer"
    assert t.parse_errors == 1
    observation = t.messages[2]
    assert observation["role"] == "tool" and observation["content"].startswith("Error: malformed JSON")
    assert '{"answer": "..."}' in observation["content"]


def test_unknown_tool_is_a_parse_error_observation() -> None:
    engine = ScriptedEngine.from_replies('{"tool": "rm", "arguments": {}}', '{"answer": "no"}')
    t = run_agent_loop(engine, QUESTION, [CALCULATOR], calculator)
    assert "unknown tool 'rm'" in t.messages[2]["content"]
    assert t.tool_calls == []


def test_failing_tool_becomes_an_error_result() -> None:
    engine = ScriptedEngine.from_replies('{"tool": "calculator", "arguments": {"expression": "__import__(1)"}}', '{"answer": "?"}')
    t = run_agent_loop(engine, QUESTION, [CALCULATOR], calculator)
    result = t.turns[0].tool_results[0]
    assert result.is_error and result.content.startswith("ValueError")
    assert t.messages[2]["content"].startswith("Error: ValueError")
    assert t.end_reason == "answer"


def test_tool_result_types() -> None:
    returns = iter([ToolResult(call_id="x", name="y", content="structured", is_error=False), {"a": [1, 2]}, 7])
    engine = ScriptedEngine.from_replies(CALL, CALL, CALL, '{"answer": "done"}')
    t = run_agent_loop(engine, QUESTION, [CALCULATOR], lambda call: next(returns))
    contents = [m["content"] for m in t.messages if m["role"] == "tool"]
    assert contents == ["structured", '{"a": [1, 2]}', "7"]
    assert t.turns[0].tool_results[0].call_id == "call_0_0"  # ids are the loop's, whatever the tool said


def test_async_tools_are_awaited() -> None:
    async def slow_calculator(call: ToolCall) -> str:
        await asyncio.sleep(0.01)
        return calculator(call)

    engine = ScriptedEngine.from_replies(CALL, '{"answer": "391"}')
    t = run_agent_loop(engine, QUESTION, [CALCULATOR], slow_calculator)
    assert t.messages[2]["content"] == "391"


def test_max_steps() -> None:
    engine = ScriptedEngine.from_replies(CALL, cycle=True)
    t = run_agent_loop(engine, QUESTION, [CALCULATOR], calculator, max_steps=3)
    assert (t.end_reason, t.steps, t.answer) == ("max_steps", 3, None)
    assert len(t.tool_calls) == 3
    with pytest.raises(ValueError):
        run_agent_loop(engine, QUESTION, [CALCULATOR], calculator, max_steps=0)


def test_timeout_ends_a_hung_tool_without_waiting_for_it() -> None:
    release = threading.Event()

    def hung(call: ToolCall) -> str:
        release.wait(10)
        return "late"

    engine = ScriptedEngine.from_replies(CALL, cycle=True)
    started = time.perf_counter()
    t = run_agent_loop(engine, QUESTION, [CALCULATOR], hung, max_steps=5, timeout_s=0.3)
    took = time.perf_counter() - started
    release.set()
    assert t.end_reason == "timeout"
    assert took < 3.0
    assert t.turns[0].tool_results[0].is_error
    assert "timed out" in t.turns[0].tool_results[0].content


def test_tool_timeout_is_separate_from_the_episode_timeout() -> None:
    release = threading.Event()

    def hung(call: ToolCall) -> str:
        release.wait(10)
        return "late"

    engine = ScriptedEngine.from_replies(CALL, '{"answer": "gave up"}')
    t = run_agent_loop(engine, QUESTION, [CALCULATOR], hung, timeout_s=30, tool_timeout_s=0.1)
    release.set()
    assert t.end_reason == "answer"
    assert "timed out" in t.messages[2]["content"]


def test_engine_error_ends_the_episode() -> None:
    t = run_agent_loop(ScriptedEngine.from_replies(CALL), QUESTION, [CALCULATOR], calculator)
    assert t.end_reason == "engine_error"
    assert "ran out of replies" in (t.error or "")
    assert t.steps == 1


def test_many_episodes_step_in_lockstep_batches() -> None:
    batch_sizes: list[int] = []

    def reply(request: ChatRequest) -> str:
        question = request.messages[0]["content"]
        if request.messages[-1]["role"] == "tool":
            return '{"answer": "%s"}' % request.messages[-1]["content"]
        if "direct" in question:
            return '{"answer": "direct"}'
        expression = question.split()[-1].rstrip("?")
        return '{"tool": "calculator", "arguments": {"expression": "%s"}}' % expression

    class CountingEngine(ScriptedEngine):
        def _generate(self, requests, timeout_s):  # noqa: ANN001, ANN202
            batch_sizes.append(len(requests))
            return super()._generate(requests, timeout_s)

    engine = CountingEngine(reply_fn=reply)
    episodes = [
        AgentEpisode(messages=[{"role": "user", "content": "What is 2*21?"}], tools=[CALCULATOR], call_tool=calculator),
        AgentEpisode(messages=[{"role": "user", "content": "answer direct"}], tools=[CALCULATOR], call_tool=calculator),
        AgentEpisode(
            messages=[{"role": "user", "content": "What is 10-1?"}],
            tools=[CALCULATOR],
            call_tool=calculator,
            sampling=SamplingParams(max_new_tokens=300),
        ),
    ]
    transcripts = run_agent_loops(engine, episodes, max_steps=4)
    assert [t.answer for t in transcripts] == ["42", "direct", "9"]
    assert [t.steps for t in transcripts] == [2, 1, 2]
    assert batch_sizes == [3, 2]  # one engine call per step, finished episodes drop out
    assert engine.requests[2].sampling.max_new_tokens == 300


def test_default_sampling_reaches_the_engine() -> None:
    engine = ScriptedEngine.from_replies('{"answer": "x"}')
    run_agent_loop(engine, QUESTION, [], calculator, sampling=SamplingParams(max_new_tokens=7, temperature=0.5))
    assert engine.requests[0].sampling == SamplingParams(max_new_tokens=7, temperature=0.5)


def test_engine_errors_do_not_leak_from_batched_loops() -> None:
    class Broken(ScriptedEngine):
        def _generate(self, requests, timeout_s):  # noqa: ANN001, ANN202
            raise EngineError("server down")

    t = run_agent_loops(Broken(), [AgentEpisode(QUESTION, [CALCULATOR], calculator)] * 2)
    assert [x.end_reason for x in t] == ["engine_error", "engine_error"]
