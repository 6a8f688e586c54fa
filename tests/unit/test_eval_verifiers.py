"""Verifiers: registry, rules, LLM judge (including unreadable replies), hybrids, pairwise bias control."""

import pytest

from workbench.agents import ScriptedEngine, ScriptedEngineConfig
from workbench.errors import ValidationFailed
from workbench.evals.verifiers import Attempt, make_verifier, pairwise_judgement, verifier_names


def _attempts(*answers, success=None):
    return [Attempt(task=f"t{i}", prompt="What is 6*7?", answer=a, outputs=[a or ""], env_success=success, env_score=None)
            for i, a in enumerate(answers)]


def test_registry_and_spec_errors():
    assert {"checker", "rules", "llm_judge", "reward_model", "hybrid"} <= set(verifier_names())
    with pytest.raises(ValidationFailed, match="unknown verifier 'vibes'"):
        make_verifier("vibes")
    with pytest.raises(ValidationFailed, match="rules"):
        make_verifier({"name": "rules", "rules": {"telepathy": 1}})


def test_checker_uses_the_environment_verdict():
    checker = make_verifier("checker")
    ok, unfinished = checker.judge(_attempts("42", success=True) + _attempts(None, success=None))
    assert ok.passed and ok.score == 1.0
    assert not unfinished.passed and "did not finish" in unfinished.rationale


def test_rules_over_the_answer():
    rules = make_verifier({"name": "rules", "rules": {"any": [{"equals": {"value": "42"}},
                                                              {"regex": {"pattern": "forty-two"}}]}})
    judged = rules.judge(_attempts("42", "forty-two", "41"))
    assert [j.passed for j in judged] == [True, True, False]


def test_llm_judge_scores_and_counts_unreadable_replies():
    engine = {"kind": "scripted", "replies": ["Score: 9", "I think it is fine", "Score: 2"]}
    judge = make_verifier({"name": "llm_judge", "engine": engine, "rubric": "Correct arithmetic.", "threshold": 0.5})
    good, unreadable, bad = judge.judge(_attempts("42", "42", "41"))
    assert good.passed and good.score == pytest.approx(0.9) and "Score: 9" in good.rationale
    assert unreadable.unreadable and not unreadable.passed and "unreadable" in unreadable.rationale
    assert not bad.passed and bad.score == pytest.approx(0.2)


def test_hybrid_weighted_and_gated():
    weighted = make_verifier({"name": "hybrid", "threshold": 0.6, "parts": [
        {"name": "checker", "weight": 3},
        {"name": "rules", "rules": {"regex": {"pattern": "^42$"}}, "weight": 1},
    ]})
    (j,) = weighted.judge(_attempts("42.0", success=True))
    assert j.score == pytest.approx(0.75) and j.passed
    gated = make_verifier({"name": "hybrid", "parts": ["checker"],
                           "gate": {"name": "rules", "rules": {"regex": {"pattern": "^\\d+$"}}}})
    (blocked,) = gated.judge(_attempts("42 (I used the calculator)", success=True))
    assert not blocked.passed and "gate rules failed" in blocked.rationale


def test_pairwise_judgement_cancels_position_bias():
    biased = ScriptedEngine(ScriptedEngineConfig(replies=["A", "A"]))  # always prefers the first reply
    verdict = pairwise_judgement(biased, "Correct arithmetic.", "6*7?", "42", "41")
    assert verdict["winner"] == "tie" and not verdict["consistent"]
    fair = ScriptedEngine(ScriptedEngineConfig(replies=["A", "B"]))  # prefers "42" in both orders
    assert pairwise_judgement(fair, "Correct arithmetic.", "6*7?", "42", "41")["winner"] == "a"
