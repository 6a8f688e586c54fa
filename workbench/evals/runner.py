"""Eval runs: an agent or model attempts a scenario split; verifiers and safety checks score it.

The report holds per-attempt outcomes (pass/fail, score per verifier, safety outcome) and the
aggregates a promotion decision needs: success rate with a 95 % Wilson interval, pass@k, mean
score, safety violations and compute cost. Two reports on the same tasks can be compared with
paired tests (McNemar on pass/fail, a sign-flip permutation test on scores).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workbench.errors import ValidationFailed
from workbench.evals.reports import complete_report, create_report, get_report
from workbench.evals.stats import mcnemar_exact, paired_permutation, pass_at_k, wilson_interval
from workbench.evals.verifiers import Attempt, make_verifier

if TYPE_CHECKING:
    from workbench.services import Services


class SuiteRef(BaseModel):
    """Which tasks: a family's split, or one scenario stored in the tenant (POST /scenarios)."""

    model_config = ConfigDict(extra="forbid")

    family: str | None = Field(None, min_length=1, description="A family in scenarios/ (e.g. calculator) or a file.")
    scenario: str | None = Field(None, min_length=1, description="A stored scenario id or name (its own split counts).")
    split: Literal["train", "test"] = "test"
    limit: int | None = Field(None, ge=1, description="Only the first N tasks.")

    @model_validator(mode="after")
    def _one_source(self) -> SuiteRef:
        if (self.family is None) == (self.scenario is None):
            raise ValueError("give exactly one of family or scenario")
        return self

    @property
    def name(self) -> str:
        """The suite name reports are grouped by."""
        return self.family or self.scenario or ""


def _tasks(services: Services, tenant_id: str, suite: SuiteRef, limit: int | None) -> list[Any]:
    if suite.scenario is not None:
        from workbench.envs.service import get_scenario, parse_stored

        return [parse_stored(get_scenario(services, tenant_id, suite.scenario))]
    from workbench.agents.rollouts import load_tasks

    return load_tasks(suite.family, suite.split, limit=limit, scenarios_dir=services.settings.scenarios_dir)


class SafetyConfig(BaseModel):
    """Safety checks applied to every attempt."""

    model_config = ConfigDict(extra="forbid")

    pii: bool = Field(True, description="Flag personal data in the agent's outputs that the task did not contain.")
    forbidden: list[str] = Field(default_factory=list, description="Regexes no output may match.")


class EvalRequest(BaseModel):
    """What to evaluate, on which tasks, how many times, judged by which verifiers."""

    model_config = ConfigDict(extra="forbid")

    model: dict[str, Any] | None = Field(None, description="{ref, checkpoint?, adapter?} in the model registry.")
    agent: str | None = Field(None, description="An agent id (its engine, prompt and generation settings).")
    engine: dict[str, Any] | None = Field(None, description="An explicit engine config (e.g. openai or scripted).")
    scenarios: SuiteRef
    attempts: int = Field(1, ge=1, le=32, description="Attempts per task and seed (pass@k uses all of them).")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=16)
    verifiers: list[Any] = Field(default_factory=lambda: ["checker"], min_length=1,
                                 description="Verifier names or specs; the first decides pass/fail.")
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    temperature: float | None = Field(None, ge=0, le=2, description="Default: 0 for one attempt, 0.7 for several.")
    max_new_tokens: int = Field(96, ge=1, le=4096)
    max_steps: int = Field(6, ge=1, le=64)
    batch_size: int = Field(8, ge=1, le=256)
    system_prompt: str | None = None
    serving: Literal["vllm", "transformers"] | None = Field(
        None, description="Which managed engine serves a `model` subject (default: the deployment's serving_engine). "
                          "On CPU, vLLM serves LoRA adapters several times slower than in-process transformers.")
    tool_examples: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, description="Worked examples per tool shown to the model (few-shot); none by default."
    )

    @model_validator(mode="after")
    def _one_subject(self) -> EvalRequest:
        given = [name for name in ("model", "agent", "engine") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of model, agent or engine")
        for spec in self.verifiers:
            make_verifier(spec)  # fail before any compute is spent
        for pattern in self.safety.forbidden:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"safety.forbidden: {pattern!r} is not a regex ({exc})") from None
        return self


def _subject(services: Services, tenant_id: str, request: EvalRequest) -> str:
    """What the report is about: a checkpoint id, an agent id, or an explicit engine kind."""
    from workbench.runtime import serving

    if request.engine is not None:
        return f"engine:{request.engine.get('kind')}"
    if request.agent is not None:
        from workbench.runtime.agents import get_agent

        return get_agent(services, tenant_id, request.agent).id
    return serving.resolve_model(services, tenant_id, request.model).checkpoint_id


def _engine(services: Services, tenant_id: str, request: EvalRequest) -> tuple[Any, dict[str, Any]]:
    """The engine to evaluate, and facts about how it is served."""
    from workbench.runtime import serving

    if request.engine is not None:
        from workbench.agents import make_engine

        return make_engine(request.engine), {"kind": request.engine.get("kind")}
    if request.agent is not None:
        from workbench.runtime.agents import get_agent

        handle, _ = serving.engine_for_agent(services, tenant_id, get_agent(services, tenant_id, request.agent))
    else:
        handle = serving.engine_for(services, serving.resolve_model(services, tenant_id, request.model), kind=request.serving)
    return handle.engine, {"kind": handle.kind, "note": handle.note}


def _pii_leaks(services: Services, prompt: str, outputs: list[str]) -> dict[str, int]:
    """Entity types found in the outputs beyond what the task itself contained."""
    redactor = services.redactor
    (_, in_prompt), *found = redactor.redact_texts([prompt, *outputs])
    leaks: dict[str, int] = defaultdict(int)
    for _, counts in found:
        for entity, n in counts.items():
            if n > in_prompt.get(entity, 0):
                leaks[entity] += n - in_prompt.get(entity, 0)
    return dict(leaks)


def start_eval(services: Services, tenant_id: str, request: EvalRequest | dict[str, Any]) -> str:
    """Validate the request (422 before any compute), open a ``running`` report; returns its id."""
    request = request if isinstance(request, EvalRequest) else EvalRequest.model_validate(request)
    tasks = _tasks(services, tenant_id, request.scenarios, 1)
    split = tasks[0].split if request.scenarios.scenario is not None else request.scenarios.split
    return create_report(services, tenant_id, subject=_subject(services, tenant_id, request),
                         suite=request.scenarios.name, split=split, request=request.model_dump(mode="json"))


def execute_eval(services: Services, tenant_id: str, report_id: str,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run an opened eval and close its report (``failed`` with the reason if anything breaks)."""
    opened = get_report(services, tenant_id, report_id, with_results=False)
    try:
        summary, rows = _attempt_all(services, tenant_id, EvalRequest.model_validate(opened["request"]),
                                     opened["subject"], progress)
    except Exception as exc:
        complete_report(services, tenant_id, report_id, summary={"error": f"{type(exc).__name__}: {exc}"}, results=[],
                        status="failed")
        raise
    complete_report(services, tenant_id, report_id, summary=summary, results=rows)
    return get_report(services, tenant_id, report_id)


def run_eval(services: Services, tenant_id: str, request: EvalRequest | dict[str, Any],
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Start and execute an eval in this thread; returns the finished report."""
    return execute_eval(services, tenant_id, start_eval(services, tenant_id, request), progress)


def _attempt_all(services: Services, tenant_id: str, request: EvalRequest, subject: str,
                 progress: Callable[[int, int], None] | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from workbench.agents import SamplingParams, ToolExample
    from workbench.agents.rollouts import run_rollouts

    tasks = _tasks(services, tenant_id, request.scenarios, request.scenarios.limit)
    verifiers = [make_verifier(spec) for spec in request.verifiers]
    forbidden = [re.compile(p) for p in request.safety.forbidden]
    engine, engine_facts = _engine(services, tenant_id, request)
    temperature = request.temperature if request.temperature is not None else (0.0 if request.attempts == 1 else 0.7)
    sampling = SamplingParams(temperature=temperature, max_new_tokens=request.max_new_tokens)
    ingestor = services.ingestor
    cpu_before, started = time.process_time(), time.perf_counter()
    total = len(tasks) * request.attempts * len(request.seeds)
    by_name = {t.name: t for t in tasks}
    rows: list[dict[str, Any]] = []
    for seed in request.seeds:
        done_before = len(rows)
        report = run_rollouts(
            engine, tasks, attempts=request.attempts, agent_version=subject, tags=["eval", request.scenarios.name],
            sink=lambda events: ingestor.ingest(tenant_id, events), system_prompt=request.system_prompt,
            sampling=sampling.model_copy(update={"seed": seed}), max_steps=request.max_steps,
            batch_size=request.batch_size, seed=seed,
            tool_examples={name: [ToolExample.model_validate(x) for x in shots] for name, shots in request.tool_examples.items()},
            progress=(lambda d, _t, base=done_before: progress(base + d, total)) if progress else None,
        )
        attempts = [
            Attempt(task=e.task, prompt=by_name[e.task].instructions, answer=e.answer, outputs=e.outputs,
                    env_success=e.success if e.status != "running" else None, env_score=e.score)
            for e in report.episodes
        ]
        judged = [v.judge(attempts) for v in verifiers]
        for i, (episode, attempt) in enumerate(zip(report.episodes, attempts)):
            pii = _pii_leaks(services, attempt.prompt, attempt.outputs) if request.safety.pii else {}
            hits = [p.pattern for p in forbidden if any(p.search(o) for o in attempt.outputs)]
            safety = {"pii": pii, "forbidden": hits, "out_of_scope_calls": episode.out_of_scope_calls,
                      "violation": bool(pii or hits or episode.out_of_scope_calls)}
            primary = judged[0][i]
            rows.append({
                "task": episode.task, "seed": seed, "attempt": episode.attempt, "run_id": episode.run_id,
                "passed": primary.passed, "score": primary.score, "rationale": primary.rationale,
                "scores": {v.name: j[i].score for v, j in zip(verifiers, judged)},
                "unreadable": any(j[i].unreadable for j in judged), "status": episode.status, "reason": episode.reason,
                "answer": episode.answer, "steps": episode.steps, "safety": safety,
            })
    summary = summarize(rows, request.attempts * len(request.seeds))
    cpu_seconds = time.process_time() - cpu_before
    summary |= {"cpu_seconds": round(cpu_seconds, 2), "elapsed_s": round(time.perf_counter() - started, 2),
                "cost": round(cpu_seconds * services.settings.cpu_price_per_second, 6), "engine": engine_facts}
    return summary, rows


def summarize(rows: list[dict[str, Any]], attempts_per_task: int) -> dict[str, Any]:
    """Aggregates of per-attempt rows: success rate + Wilson CI, pass@k, mean score, safety."""
    if not rows:
        raise ValidationFailed("scenarios", "the suite has no tasks")
    passed = sum(r["passed"] for r in rows)
    ci = wilson_interval(passed, len(rows))
    per_task: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        per_task[r["task"]].append(r["passed"])
    ks = sorted({1, attempts_per_task} | ({5} if attempts_per_task >= 5 else set()))
    pass_k = {f"pass@{k}": round(sum(pass_at_k(len(v), sum(v), k) for v in per_task.values()) / len(per_task), 4)
              for k in ks if k <= min(len(v) for v in per_task.values())}
    return {
        "tasks": len(per_task), "attempts": len(rows), "passed": passed,
        "success_rate": round(ci.estimate, 4), "ci_low": round(ci.low, 4), "ci_high": round(ci.high, 4),
        **pass_k,
        "mean_score": round(sum(r["score"] for r in rows) / len(rows), 4),
        "safety_violations": sum(r["safety"]["violation"] for r in rows),
        "pii_leaks": sum(bool(r["safety"]["pii"]) for r in rows),
        "out_of_scope_calls": sum(r["safety"]["out_of_scope_calls"] for r in rows),
        "unreadable_judgements": sum(r["unreadable"] for r in rows),
    }


def compare_reports(services: Services, tenant_id: str, baseline_id: str, candidate_id: str) -> dict[str, Any]:
    """Paired comparison of two reports on the same attempts (task, seed, attempt)."""
    base = get_report(services, tenant_id, baseline_id)
    cand = get_report(services, tenant_id, candidate_id)
    key = lambda r: (r["task"], r["seed"], r["attempt"])  # noqa: E731
    b_rows, c_rows = {key(r): r for r in base["results"]}, {key(r): r for r in cand["results"]}
    shared = sorted(set(b_rows) & set(c_rows))
    if not shared:
        raise ValidationFailed("candidate", "the two reports share no (task, seed, attempt); run them on the same suite")
    passes = mcnemar_exact([b_rows[k]["passed"] for k in shared], [c_rows[k]["passed"] for k in shared])
    scores = paired_permutation([b_rows[k]["score"] for k in shared], [c_rows[k]["score"] for k in shared])
    return {
        "baseline": baseline_id, "candidate": candidate_id, "paired_attempts": len(shared),
        "success_rate": {"baseline": base["summary"]["success_rate"], "candidate": cand["summary"]["success_rate"]},
        "pass_fail": passes.__dict__, "score": scores.__dict__,
        "significant_at_0.05": passes.p_value < 0.05,
    }
