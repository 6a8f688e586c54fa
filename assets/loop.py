"""The closed loop as software-defined assets, partitioned by scenario family.

rollout_events → trajectories / sft / preference / rl_prompts datasets (``assets/data.py``) →
label_tasks → reward_model → policy_checkpoint → eval_report (with the blocking ``eval_floor``
check) → promotion_candidate → deployment; baseline_eval feeds eval_report. Each asset is a thin
wrapper over one stage in :mod:`workbench.loop`; its output (ids and figures) goes through the IO
manager to the stages downstream, and its metadata is what the Dagster UI shows.

Automation: enough new events of a family start ``dataset_refresh`` (a sensor); a new policy
checkpoint makes ``eval_report`` materialize, and an eval that clears its floor makes
``promotion_candidate`` materialize (declarative automation). Deployment stays a deliberate step.
"""


import json
from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.resources import WorkbenchResource
from workbench import loop as stages

families = dg.StaticPartitionsDefinition(list(stages.LOOP_FAMILIES))


class LoopResource(dg.ConfigurableResource):
    """Sizes of the loop's stages and the tenant it runs for (full sizes and tenant ``demo`` by default)."""

    tenant: str = "demo"
    quick: bool = False
    overrides: dict[str, Any] = {}
    refresh_events: int = 200

    def context(self, workbench: WorkbenchResource, family: str) -> stages.LoopContext:
        """The library context of one partition."""
        make = stages.LoopConfig.quick if self.quick else stages.LoopConfig
        config = make(**(self.overrides | {"family": family, "tenant": self.tenant}))
        return stages.LoopContext.open(workbench.services(), config)


def run_tag(context: dg.AssetExecutionContext) -> str:
    """The tag that marks events written by this Dagster run."""
    return f"dagster-run:{context.run.run_id[:8]}"


def eval_metadata(figures: dict[str, Any]) -> dict[str, Any]:
    """What the UI shows for an eval report."""
    return {
        "success_rate": figures["success_rate"], "ci_95": f"{figures['ci_low']:.0%} – {figures['ci_high']:.0%}",
        "tasks": figures["tasks"], "cost_usd": figures.get("cost", 0.0), "report_id": figures["report_id"],
    }


@dg.asset(partitions_def=families, group_name="evaluation", kinds={"python"},
          description="The base model's success on the family's test split (zero-shot; few-shot for context).")
def baseline_eval(context: dg.AssetExecutionContext, workbench: WorkbenchResource, loop: LoopResource) -> dg.Output[dict]:
    figures = stages.baseline_eval(loop.context(workbench, context.partition_key))
    extra = {"few_shot_success_rate": figures["few_shot"]["success_rate"]} if "few_shot" in figures else {}
    return dg.Output(figures, metadata=eval_metadata(figures["zero_shot"]) | extra)


@dg.asset(partitions_def=families, group_name="agents", kinds={"python"},
          description="Agent episodes on the train split plus oracle demonstrations, ingested as events.")
def rollout_events(context: dg.AssetExecutionContext, workbench: WorkbenchResource, loop: LoopResource) -> dg.Output[dict]:
    figures = stages.rollouts(loop.context(workbench, context.partition_key), run_tag(context))
    return dg.Output(figures, metadata={k: figures[k] for k in ("episodes", "success_rate", "demonstrations", "negatives",
                                                          "agent_version", "tag")})


@dg.asset(partitions_def=families, group_name="labels", kinds={"python"},
          ins={"preference": dg.AssetIn("preference_dataset")},
          description="Preference pairs to label. A placeholder until labeling lands: the verifier's outcome is the label.")
def label_tasks(context: dg.AssetExecutionContext, workbench: WorkbenchResource, loop: LoopResource,
                preference: dict) -> dg.Output[dict]:
    figures = stages.label_tasks(loop.context(workbench, context.partition_key), preference)
    return dg.Output(figures, metadata=figures)


@dg.asset(partitions_def=families, group_name="training", kinds={"python"},
          ins={"preference": dg.AssetIn("preference_dataset"), "labels": dg.AssetIn("label_tasks")},
          description="A reward model trained on the labelled preference pairs.")
def reward_model(context: dg.AssetExecutionContext, workbench: WorkbenchResource, loop: LoopResource,
                 preference: dict, labels: dict) -> dg.Output[dict]:
    figures = stages.reward_model(loop.context(workbench, context.partition_key), preference, labels)
    return dg.Output(figures, metadata={k: v for k, v in figures.items() if v is not None})


@dg.asset(partitions_def=families, group_name="training", kinds={"python"},
          ins={"sft": dg.AssetIn("sft_dataset"), "prompts": dg.AssetIn("rl_prompts_dataset")},
          description="The policy: SFT on verified successes, then one RFT round on the RL prompts' tasks.")
def policy_checkpoint(context: dg.AssetExecutionContext, workbench: WorkbenchResource, loop: LoopResource,
                      sft: dict, prompts: dict) -> dg.Output[dict]:
    figures = stages.policy_checkpoint(loop.context(workbench, context.partition_key), sft, prompts, run_tag(context))
    return dg.Output(figures, metadata={k: v for k, v in figures.items() if v is not None})


@dg.asset(partitions_def=families, group_name="evaluation", kinds={"python"},
          ins={"policy": dg.AssetIn("policy_checkpoint"), "baseline": dg.AssetIn("baseline_eval"),
               "reward": dg.AssetIn("reward_model")},
          check_specs=[dg.AssetCheckSpec("eval_floor", asset="eval_report", blocking=True,
                                         description="Test success at least the floor (the baseline's, or higher).")],
          automation_condition=dg.AutomationCondition.eager(),
          description="The newest policy checkpoint on the test split, compared with the baseline.")
def eval_report(context: dg.AssetExecutionContext, workbench: WorkbenchResource, loop: LoopResource,
                policy: dict, baseline: dict, reward: dict) -> Iterator[Any]:
    figures = stages.eval_report(loop.context(workbench, context.partition_key), policy, baseline, reward)
    yield dg.Output(figures, metadata=eval_metadata(figures) | {
        "gain": figures["gain"], "p_value": figures["p_value"], "floor": figures["floor"],
        **({"reward_model_mean": figures["reward_model_mean"]} if "reward_model_mean" in figures else {}),
    })
    yield dg.AssetCheckResult(check_name="eval_floor", passed=stages.passes_floor(figures),
                              metadata={"success_rate": figures["success_rate"], "floor": figures["floor"]})


@dg.asset(partitions_def=families, group_name="serving", kinds={"python"},
          ins={"report": dg.AssetIn("eval_report")},
          automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
          description="The evaluated checkpoint marked staging: the candidate for production.")
def promotion_candidate(context: dg.AssetExecutionContext, workbench: WorkbenchResource, loop: LoopResource,
                        report: dict) -> dg.Output[dict]:
    figures = stages.promotion_candidate(loop.context(workbench, context.partition_key), report)
    return dg.Output(figures, metadata={"model_id": figures["model_id"], "checkpoint_id": figures["checkpoint_id"],
                                        "stage": figures["stage"]})


@dg.asset(partitions_def=families, group_name="serving", kinds={"python"},
          ins={"candidate": dg.AssetIn("promotion_candidate")},
          description="The candidate promoted to production, served, and called once through the sessions API.")
def deployment(context: dg.AssetExecutionContext, workbench: WorkbenchResource, loop: LoopResource,
               candidate: dict) -> dg.Output[dict]:
    figures = stages.deployment(loop.context(workbench, context.partition_key), candidate)
    return dg.Output(figures, metadata={k: figures[k] for k in ("deployment_id", "engine", "status", "agent_id", "reply")})


loop_assets = [baseline_eval, rollout_events, label_tasks, reward_model, policy_checkpoint, eval_report,
               promotion_candidate, deployment]


def refresh_sensor(job: dg.JobDefinition) -> dg.SensorDefinition:
    """A sensor that starts ``job`` for a family once ``refresh_events`` new events of it are in the lake."""

    @dg.sensor(name="dataset_refresh", job=job, minimum_interval_seconds=60,
               description="Enough new events of a family → rebuild its datasets.")
    def dataset_refresh(context: dg.SensorEvaluationContext, workbench: WorkbenchResource, loop: LoopResource):
        seen = json.loads(context.cursor) if context.cursor else {}
        counts = stages.family_event_counts(workbench.services(), loop.tenant)
        for family, count in counts.items():
            if count - seen.get(family, 0) >= loop.refresh_events:
                seen[family] = count
                yield dg.RunRequest(run_key=f"{family}:{count}", partition_key=family)
        context.update_cursor(json.dumps(seen))

    return dataset_refresh
