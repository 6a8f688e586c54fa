"""The Dagster code location loads, and its data assets (with their checks) materialize against a temporary instance."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.dagster

TINY = {"test_tasks": 2, "context_tasks": 0, "train_tasks": 2, "demonstrations": 6, "negatives": 2, "max_new_tokens": 32}


def test_definitions_load():
    from assets.definitions import defs

    repo = defs.get_repository_def()
    graph = repo.asset_graph
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    loop = {"rollout_events", "trajectories_dataset", "sft_dataset", "preference_dataset", "rl_prompts_dataset",
            "label_tasks", "reward_model", "policy_checkpoint", "baseline_eval", "eval_report", "promotion_candidate",
            "deployment"}
    assert loop | {"events"} <= keys
    for name in loop:  # one partition per scenario family
        assert graph.get(dg_key(name)).partitions_def.get_partition_keys() == ["calculator", "inventory", "forms"]
    checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}
    assert {"sft_dataset:pii_free", "sft_dataset:schema_valid", "sft_dataset:dedup_rate", "eval_report:eval_floor"} <= checks
    assert defs.get_schedule_def("lake_maintenance").cron_schedule == "0 * * * *"
    assert defs.get_sensor_def("dataset_refresh").job_name == "dataset_refresh_job"
    assert {"closed_loop", "dataset_refresh_job", "train_job"} <= {job.name for job in repo.get_all_jobs()}


def dg_key(name: str):
    from dagster import AssetKey

    return AssetKey(name)


def test_data_group_materializes_with_checks(settings, services, models_dir):
    import dagster as dg

    from assets.data import dataset_assets, events
    from assets.loop import LoopResource, rollout_events
    from assets.resources import WorkbenchResource

    (settings.home / "models").symlink_to(models_dir.resolve())
    resources = {"workbench": WorkbenchResource(home=str(settings.home)),
                 "loop": LoopResource(tenant="dagster-test", quick=True, overrides=TINY)}
    with dg.instance_for_test() as instance:
        result = dg.materialize([rollout_events, *dataset_assets, events], instance=instance, resources=resources,
                                selection=["rollout_events", "trajectories_dataset", "sft_dataset", "preference_dataset",
                                           "rl_prompts_dataset"],
                                partition_key="calculator")
        assert result.success
        mats = {m.asset_key.to_user_string(): m.materialization for m in result.get_asset_materialization_events()}
        assert mats["rollout_events"].metadata["episodes"].value == 2
        # 2 rollouts + 6 oracle demonstrations + 2 random-policy negatives, one trajectory each
        assert mats["trajectories_dataset"].metadata["rows"].value == 10
        assert mats["preference_dataset"].metadata["rows"].value >= 2  # oracle vs random on the same task
        assert mats["sft_dataset"].metadata["rows"].value >= 6  # every oracle demonstration succeeds
        checks = {(c.asset_key.to_user_string(), c.check_name): c.passed for c in result.get_asset_check_evaluations()}
        assert len(checks) == 12 and all(checks.values()), checks
        maintenance = dg.materialize([events], instance=instance, resources=resources)
        lake = maintenance.get_asset_materialization_events()[0].materialization.metadata
        assert lake["rows"].value > 0
