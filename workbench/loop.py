"""The closed loop on one machine (``bench/loop.py``, ``make demo``).

base model → baseline eval on the test split → rollouts on the train split (few-shot) plus oracle
demonstrations → SFT dataset → SFT job → one round of RFT (sample K per train task with the SFT
model, keep verified successes, SFT on them) → eval again → promotion (gated by the report) →
deployment → one call through the sessions API. Every stage goes through the same library
functions the REST API and Dagster use, so the runs, datasets, jobs and reports are all in the
control plane (and the training runs in the Dagster UI) afterwards.

Evals show the model the tool descriptions but no worked examples (zero-shot), before and
after: the loop is judged on what the trained policy does with the prompt production uses.
The few-shot base figure is reported next to it for context.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# Worked examples per family (keyed by tool name), shown to the base model for rollouts and for the
# few-shot context eval; families without any are rolled out zero-shot.
FEW_SHOT = {"calculator": {"calculator": [
    {"question": "What is 2 plus 3?", "arguments": {"expression": "2 + 3"}, "result": "5", "answer": "5"},
    {"question": "Tom has 7 boxes with 6 pens in each. How many pens?", "arguments": {"expression": "7 * 6"},
     "result": "42", "answer": "42"},
    {"question": "What is 10 minus 4?", "arguments": {"expression": "10 - 4"}, "result": "6", "answer": "6"},
]}}
QUESTIONS = {"calculator": "A box holds 6 pens. How many pens are in 7 boxes?"}


class LoopConfig(BaseModel):
    """Sizes of each stage; ``quick()`` is the CI-sized variant."""

    family: str = "calculator"
    tenant: str = "demo"
    test_tasks: int | None = Field(None, description="Test tasks evaluated (None: the whole split).")
    context_tasks: int = Field(20, description="Test tasks of the few-shot base eval (context only).")
    train_tasks: int = 32
    demonstrations: int = 96
    sft_steps: int = 30
    rft_tasks: int = 24
    rft_samples: int = 4
    rft_steps: int = 12
    learning_rate: float = 3e-4
    max_length: int = Field(2048, description="Longest training row in tokens (api/browser conversations are long).")
    max_new_tokens: int = 64
    batch_size: int = 8
    num_threads: int | None = None

    @classmethod
    def quick(cls, **overrides: Any) -> LoopConfig:
        """A few minutes on 2 cores: enough to see every stage work, too small to learn much."""
        return cls(**({"test_tasks": 12, "context_tasks": 12, "train_tasks": 8, "demonstrations": 32, "sft_steps": 6, "rft_tasks": 6,
                       "rft_samples": 2, "rft_steps": 3} | overrides))


@dataclass
class LoopResult:
    """What the loop did: figures per stage, the reports and the promoted checkpoint."""

    stages: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint_id: str | None = None
    reply: str | None = None


def _wait_for_job(services, tenant_id: str, job_id: str, progress: Progress, label: str) -> Any:
    from workbench.train import jobs

    task = progress.add_task(label, total=None)
    while True:
        info = jobs.get_job(services, tenant_id, job_id)
        step, total = info.progress.get("step", 0), info.progress.get("max_steps") or None
        progress.update(task, completed=step, total=total)
        if info.status in ("succeeded", "failed", "stopped", "interrupted"):
            progress.remove_task(task)
            if info.status != "succeeded":
                raise RuntimeError(f"training job {job_id} ended {info.status}: {info.result.get('error')}")
            return info
        time.sleep(1.0)


def run_loop(services, config: LoopConfig | None = None, console: Console | None = None) -> LoopResult:
    """Run every stage once; prints progress and a summary table, returns the figures."""
    import workbench.envs as envs
    from workbench.agents import SamplingParams, ToolExample
    from workbench.agents.rollouts import load_tasks, run_rollouts
    from workbench.client import EmbeddedClient
    from workbench.data.datasets import create_dataset
    from workbench.evals.runner import compare_reports, run_eval
    from workbench.runtime import serving
    from workbench.train import jobs, registry

    config = config or LoopConfig()
    console = console or Console()
    tenant_id = EmbeddedClient(services, config.tenant).tenant_id
    tag = f"loop-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    result = LoopResult()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    shots = FEW_SHOT.get(config.family, {})
    examples = {k: [ToolExample.model_validate(x) for x in v] for k, v in shots.items()}
    hyper = {"learning_rate": config.learning_rate, "logging_steps": 1, "max_length": config.max_length}
    if config.num_threads:
        hyper["num_threads"] = config.num_threads

    def stage(name: str, started: float, **figures: Any) -> None:
        cpu = figures.pop("cpu_seconds", None)
        result.stages.append({"stage": name, "seconds": round(time.perf_counter() - started, 1), **figures,
                              **({"cpu_seconds": cpu} if cpu is not None else {})})
        console.print(f"[green]✓[/] {name} ({result.stages[-1]['seconds']} s)")

    def evaluate(name: str, model: dict[str, Any], few_shot: bool = False) -> dict[str, Any]:
        limit = config.context_tasks if few_shot else config.test_tasks
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"eval {name}", total=None)
            report = run_eval(services, tenant_id, {
                "model": model, "scenarios": {"family": config.family, "split": "test", "limit": limit},
                "max_new_tokens": config.max_new_tokens, "batch_size": config.batch_size, "max_steps": 4,
                "tool_examples": shots if few_shot else {},
            }, progress=lambda done, total: progress.update(task, completed=done, total=total))
        result.reports[name] = report
        return report

    console.rule("[bold]The loop")
    started = time.perf_counter()
    base_model, base_ckpt = serving.ensure_base_model(services, tenant_id)
    stage("base model", started)

    started = time.perf_counter()
    baseline = evaluate("base (zero-shot)", {"ref": base_model.id})
    stage("baseline eval", started, success=baseline["summary"]["success_rate"])
    few_shot = None
    if shots:
        started = time.perf_counter()
        few_shot = evaluate("base (few-shot)", {"ref": base_model.id}, few_shot=True)
        stage("baseline eval, few-shot (context)", started, success=few_shot["summary"]["success_rate"])

    started = time.perf_counter()
    engine = serving.engine_for(services, serving.resolve_model(services, tenant_id, {"ref": base_model.id})).engine
    sink = lambda events: services.ingestor.ingest(tenant_id, events)  # noqa: E731
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("rollouts (train split, base model)", total=None)
        rollout = run_rollouts(
            engine, load_tasks(config.family, "train", limit=config.train_tasks), agent_version=base_ckpt.id,
            tags=[tag, "rollout"], sink=sink, sampling=SamplingParams(max_new_tokens=config.max_new_tokens),
            batch_size=config.batch_size, tool_examples=examples, max_steps=4,
            progress=lambda d, t: progress.update(task, completed=d, total=t),
        )
    demos = load_tasks(config.family, "train", limit=config.demonstrations)
    for i, scenario in enumerate(demos):
        envs.run_episode(scenario, "oracle", seed=i, sink=sink, agent_version="oracle", tags=[tag, "oracle"])
    stage("rollouts + oracle demonstrations", started, success=rollout.success_rate)

    started = time.perf_counter()
    sft_data = create_dataset(services, tenant_id, {"name": f"{config.family}-sft", "kind": "sft",
                                                    "filters": {"tags": [tag], "success": True}}, creator="loop")
    stage("dataset (verified successes)", started, rows=sft_data.rows)

    started = time.perf_counter()
    with Progress(*columns, console=console, transient=True) as progress:
        job = jobs.submit(services, tenant_id, {
            "algorithm": "sft", "dataset_ref": sft_data.id, "model_base": base_model.id,
            "model_name": f"{config.family}-policy", "hyperparams": hyper | {"max_steps": config.sft_steps},
        })
        sft_job = _wait_for_job(services, tenant_id, job.id, progress, "SFT")
    stage("SFT", started, cost=sft_job.result.get("cost"), loss=sft_job.latest_metrics.get("loss"))

    started = time.perf_counter()
    sft_ckpt = sft_job.result["checkpoint_id"]
    policy_ref = {"ref": sft_job.result["model_id"], "checkpoint": sft_ckpt}
    sft_engine = serving.engine_for(services, serving.resolve_model(services, tenant_id, policy_ref)).engine
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"RFT sampling ({config.rft_samples} per task)", total=None)
        sampled = run_rollouts(
            sft_engine, load_tasks(config.family, "train", limit=config.rft_tasks), attempts=config.rft_samples,
            agent_version=sft_ckpt, tags=[tag, "rft"], sink=sink, max_steps=4, batch_size=config.batch_size,
            sampling=SamplingParams(temperature=0.8, max_new_tokens=config.max_new_tokens, seed=7),
            progress=lambda d, t: progress.update(task, completed=d, total=t),
        )
    accepted = sum(e.success for e in sampled.episodes)
    if accepted:
        rft_data = create_dataset(services, tenant_id, {"name": f"{config.family}-rft", "kind": "sft",
                                                        "filters": {"tags": ["rft", tag], "success": True}}, creator="loop")
        with Progress(*columns, console=console, transient=True) as progress:
            job = jobs.submit(services, tenant_id, {
                "algorithm": "sft", "dataset_ref": rft_data.id, "model_base": sft_job.result["model_id"],
                "model_checkpoint": sft_ckpt, "model_name": f"{config.family}-policy",
                "hyperparams": hyper | {"max_steps": config.rft_steps},
            })
            rft_job = _wait_for_job(services, tenant_id, job.id, progress, "RFT (SFT on verified samples)")
        final_ckpt, cost = rft_job.result["checkpoint_id"], rft_job.result.get("cost")
    else:
        final_ckpt, cost = sft_ckpt, 0.0
    stage("RFT round", started, accepted=f"{accepted}/{len(sampled.episodes)}", cost=cost)

    started = time.perf_counter()
    final_ref = {"ref": sft_job.result["model_id"], "checkpoint": final_ckpt}
    final = evaluate("trained (zero-shot)", final_ref)
    comparison = compare_reports(services, tenant_id, baseline["id"], final["id"])
    stage("final eval", started, success=final["summary"]["success_rate"])

    started = time.perf_counter()
    registry.promote(services, tenant_id, sft_job.result["model_id"], final_ckpt, "production", actor="loop")
    deployment = serving.deploy(services, tenant_id, {"model": sft_job.result["model_id"], "wait": True})
    from workbench.runtime.agents import create_agent
    from workbench.runtime.sessions import create_session, step_session

    agent = create_agent(services, tenant_id, {
        "name": f"{config.family}-agent", "model": {"ref": sft_job.result["model_id"]},
        "plugins": [_toolbox_pin(services, tenant_id)], "generation": {"max_new_tokens": config.max_new_tokens},
    })
    session = create_session(services, tenant_id, agent.id)
    question = QUESTIONS.get(config.family) or load_tasks(config.family, "test", limit=1)[0].instructions
    reply = step_session(services, tenant_id, agent.id, session.session_id, question)
    result.checkpoint_id, result.reply = final_ckpt, reply.reply
    stage("promote + deploy + call", started, serving=f"{deployment.engine} ({deployment.status})")

    _print_summary(console, result, baseline, few_shot, final, comparison)
    return result


def _toolbox_pin(services, tenant_id: str) -> dict[str, Any]:
    """The shipped toolbox MCP server as a plugin (registered once), pinned with its read scope."""
    import sys

    from workbench.errors import NotFoundError
    from workbench.runtime.plugins import get_plugin, register_plugin

    try:
        plugin = get_plugin(services, tenant_id, "toolbox", "1.0.0")
    except NotFoundError:
        plugin = register_plugin(services, tenant_id, {
            "name": "toolbox", "version": "1.0.0",
            "transport": {"command": [sys.executable, "-m", "workbench.runtime.mcp_servers.toolbox"]},
            "scopes": {"read": ["calculator", "kv_get", "kv_list"], "write": ["kv_set"]},
        })
    return {"name": plugin.name, "version": plugin.version, "scopes": ["read"]}


def _print_summary(console: Console, result: LoopResult, baseline, few_shot, final, comparison) -> None:
    table = Table(title="Success on the test split (95 % Wilson interval)")
    for column in ("model", "prompt", "success", "95 % CI", "tasks"):
        table.add_column(column)
    rows = [("base", baseline, "zero-shot"), ("base", few_shot, "few-shot (context, subset)"), ("trained", final, "zero-shot")]
    for name, report, prompt in (row for row in rows if row[1] is not None):
        s = report["summary"]
        table.add_row(name, prompt, f"{s['success_rate']:.0%}", f"{s['ci_low']:.0%} – {s['ci_high']:.0%}", str(s["tasks"]))
    console.print(table)
    gain = final["summary"]["success_rate"] - baseline["summary"]["success_rate"]
    console.print(f"gain over the base model (same prompt): {gain * 100:+.0f} points; "
                  f"McNemar p = {comparison['pass_fail']['p_value']:.3g}")
    stages = Table(title="Stages")
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    stages.add_column("figures")
    for row in result.stages:
        figures = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("stage", "seconds") and v is not None)
        stages.add_row(row["stage"], f"{row['seconds']:.1f}", figures)
    console.print(stages)
    console.print(f"deployed agent answered: {result.reply!r}")
    console.print("Training runs are in the Dagster UI (make up → http://127.0.0.1:3000, Runs).")
