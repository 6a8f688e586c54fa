"""Reward functions without a model: the registry, built-ins, verifiers and the LLM judge (RLAIF),
including judge replies that cannot be parsed."""

from __future__ import annotations

import json

import pytest

from workbench.agents import ScriptedEngine
from workbench.errors import ValidationFailed
from workbench.train import (
    JudgeReward,
    VerifierReward,
    completion_text,
    get_reward_function,
    llm_judge_reward,
    parse_judge_score,
    reward_function,
    reward_function_names,
)
from workbench.train._metrics import canonical_metrics


def prompt(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def reply(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


# --------------------------------------------------------------------------- judge parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Score: 7", 7.0),
        ("score=8.5", 8.5),
        ("**Score:** 9", 9.0),
        ("Rating: 4 out of 5", 8.0),  # rescaled to 0-10
        ("I'd give it 6/10.", 6.0),
        ('{"score": 3, "reason": "wrong"}', 3.0),
        ("  10 ", 10.0),
        ("The reply is correct and concise.\nScore: 10", 10.0),
        ("Score: 2/4", 5.0),
    ],
)
def test_judge_scores_are_read_in_many_shapes(text: str, expected: float) -> None:
    assert parse_judge_score(text, 0, 10) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Great answer!",
        "Score: 42",  # out of range: not guessed at
        "Score: -1",
        "Score: 3. Actually, Score: 9.",  # ambiguous
        "between 3/10 and 5/10",
        "Score: ten",
        None,
    ],
)
def test_unreadable_judge_replies_give_none(text: str | None) -> None:
    assert parse_judge_score(text, 0, 10) is None  # type: ignore[arg-type]


def test_judge_reward_normalizes_and_counts_parse_failures() -> None:
    engine = ScriptedEngine.from_replies("Score: 8", "no idea", '{"score": 3}', "Score: 42")
    judge = JudgeReward(engine, "Is the answer correct?", fallback_score=-1.0)
    logged: dict[str, float] = {}
    scores = judge(
        [prompt("2+2?")] * 4, [reply("4"), reply("5"), reply("4"), reply("four")],
        log_metric=lambda name, value: logged.__setitem__(name, value),
    )  # fmt: skip
    assert scores == [pytest.approx(0.8), -1.0, pytest.approx(0.3), -1.0]
    assert judge.stats == {"calls": 4, "parse_failures": 2, "engine_errors": 0}
    assert logged == {"llm_judge/parse_failures": 2.0}
    # the judge saw the rubric, the conversation and the reply
    shown = engine.requests[0].messages[-1]["content"]
    assert "Is the answer correct?" in shown and "user: 2+2?" in shown and "4" in shown


def test_judge_engine_failures_fall_back_and_are_counted() -> None:
    def broken(request):  # noqa: ANN001, ANN202
        raise RuntimeError("judge server down")

    judge = JudgeReward(ScriptedEngine(reply_fn=broken), "rubric", fallback_score=0.25)
    assert judge([prompt("q")] * 3, ["a", "b", "c"]) == [0.25, 0.25, 0.25]
    assert judge.stats["engine_errors"] == 3 and judge.stats["parse_failures"] == 0


def test_judge_batches_and_works_as_a_verifier() -> None:
    engine = ScriptedEngine.from_replies("Score: 10", cycle=True)
    judge = JudgeReward(engine, "rubric", batch_size=2, min_score=1, max_score=10, normalize=False)
    assert judge([prompt("q")] * 5, ["a"] * 5) == [10.0] * 5
    assert judge.verify({"prompt": prompt("q"), "answer": "x"}, "a") == 10.0


def test_judge_rejects_bad_setup() -> None:
    with pytest.raises(ValidationFailed) as err:
        JudgeReward(object(), "rubric")
    assert err.value.field == "engine"
    with pytest.raises(ValidationFailed) as err:
        JudgeReward(ScriptedEngine(), "  ")
    assert err.value.field == "rubric"


def test_llm_judge_factory_from_an_engine_config_mapping() -> None:
    judge = get_reward_function("llm_judge", engine={"kind": "scripted", "replies": ["Score: 5"]}, rubric="r")
    assert isinstance(judge, JudgeReward) and judge.__name__ == "llm_judge"
    assert judge([prompt("q")], ["a"]) == [0.5]
    assert isinstance(llm_judge_reward(ScriptedEngine(), "r"), JudgeReward)


# --------------------------------------------------------------------------- registry and built-ins


@reward_function("test_train_rewards.short")
def short_reply(prompts, completions, **kwargs):  # noqa: ANN001, ANN003, ANN201
    return [1.0 if len(completion_text(c)) < 5 else 0.0 for c in completions]


def test_registry_resolves_names_and_module_paths() -> None:
    assert "test_train_rewards.short" in reward_function_names()
    assert {"tool_call_format", "exact_answer", "llm_judge", "verifier", "reward_model"} <= set(reward_function_names())
    assert get_reward_function("test_train_rewards.short") is short_reply
    assert get_reward_function(f"{__name__}:short_reply") is short_reply
    assert get_reward_function(short_reply) is short_reply
    assert short_reply([prompt("q")] * 2, [reply("ok"), reply("far too long")]) == [1.0, 0.0]


@pytest.mark.parametrize("spec", ["no_such_reward", "no.such.module:fn", f"{__name__}:missing", ""])
def test_unknown_reward_functions_raise_validation_failed(spec: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        get_reward_function(spec)
    assert err.value.field == "reward_funcs"


def test_plain_functions_take_no_parameters_and_names_cannot_clash() -> None:
    with pytest.raises(ValidationFailed):
        get_reward_function("exact_answer", weight=2)
    with pytest.raises(ValueError, match="already registered"):
        reward_function("exact_answer")(lambda prompts, completions, **kw: [0.0] * len(completions))


def test_builtin_rewards() -> None:
    fmt = get_reward_function("tool_call_format")
    completions = [reply('{"tool": "calculator", "arguments": {"expression": "2+2"}}'), reply('{"answer": "4"}'),
                   reply("4"), reply('{"tool": ')]  # fmt: skip
    assert fmt([prompt("q")] * 4, completions) == [1.0, 1.0, 0.0, 0.0]

    exact = get_reward_function("exact_answer")
    answers = ["4", "4", "4.0", None]
    got = exact([prompt("q")] * 4, [reply('{"answer": "4"}'), reply("5"), "4", "4"], answer=answers)
    assert got == [1.0, 0.0, 1.0, None]


def test_verifier_reward_rebuilds_rows_and_survives_failing_checks() -> None:
    seen: list[dict] = []

    def verify(row: dict, text: str) -> float:
        seen.append(row)
        if text == "boom":
            raise KeyError("answer")
        return 1.0 if text == row["answer"] else 0.0

    reward = VerifierReward(verify, failure_score=-0.5)
    logged: dict[str, float] = {}
    scores = reward(
        [prompt("2+2?"), prompt("3+3?"), prompt("x")], [reply("4"), reply("5"), reply("boom")],
        answer=["4", "6", "1"], scenario_id=["a", "b", "c"], trainer_state=object(),
        log_metric=lambda name, value: logged.__setitem__(name, value),
    )  # fmt: skip
    assert scores == [1.0, 0.0, -0.5]
    assert seen[1] == {"prompt": prompt("3+3?"), "answer": "6", "scenario_id": "b"}
    assert reward.errors == 1 and "KeyError" in reward.last_error and logged == {"verifier/errors": 1.0}
    with pytest.raises(ValidationFailed):
        VerifierReward("not callable")  # type: ignore[arg-type]


def test_canonical_metric_names() -> None:
    grpo = canonical_metrics({"loss": 0.1, "reward": 0.5, "reward_std": 0.2, "kl": 0.01, "learning_rate": 1e-5})
    assert (grpo["reward_mean"], grpo["reward_std"], grpo["kl"]) == (0.5, 0.2, 0.01)
    ppo = canonical_metrics({"loss/policy_avg": 0.3, "objective/kl": 0.02, "objective/scores": 1.5, "lr": 3e-6})
    assert (ppo["loss"], ppo["kl"], ppo["reward_mean"], ppo["learning_rate"]) == (0.3, 0.02, 1.5, 3e-6)
    assert canonical_metrics({"eval_loss": 1.0})["eval/loss"] == 1.0
    assert json.dumps(canonical_metrics({}))  == "{}"
