"""The loop's automation: enough new events → dataset refresh; a new checkpoint → eval; a passing eval
→ promotion candidate (and a failing one does not)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.dagster


def _oracle_episodes(services, tenant: str, count: int, offset: int = 0) -> None:
    import workbench.envs as envs
    from workbench.agents.rollouts import load_tasks
    from workbench.client import EmbeddedClient

    tenant_id = EmbeddedClient(services, tenant).tenant_id
    for i, scenario in enumerate(load_tasks("calculator", "train", limit=count), start=offset):
        envs.run_episode(scenario, "oracle", seed=i, sink=lambda evs: services.ingestor.ingest(tenant_id, evs))


def test_new_events_start_a_dataset_refresh(settings, services):
    import dagster as dg

    from assets.definitions import defs
    from assets.loop import LoopResource
    from assets.resources import WorkbenchResource

    sensor = defs.get_sensor_def("dataset_refresh")
    resources = {"workbench": WorkbenchResource(home=str(settings.home)),
                 "loop": LoopResource(tenant="sensing", refresh_events=10)}
    with dg.instance_for_test() as instance:
        def tick(cursor):
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                         definitions=defs) as context:
                result = sensor.evaluate_tick(context)
            return [r.partition_key for r in result.run_requests or []], result.cursor

        assert tick(None)[0] == []  # the tenant has no events yet
        _oracle_episodes(services, "sensing", 2)  # a few events per episode: at least 10 in all
        requested, cursor = tick(None)
        assert requested == ["calculator"]
        assert tick(cursor)[0] == []  # nothing new since the refresh it asked for
        _oracle_episodes(services, "sensing", 3, offset=2)
        assert tick(cursor)[0] == ["calculator"]


def test_checkpoint_triggers_eval_and_only_a_passing_eval_a_candidate():
    import dagster as dg

    from assets.definitions import defs

    def materialized(instance, *names):
        for name in names:
            instance.report_runless_asset_event(dg.AssetMaterialization(name, partition="calculator"))

    def floor_check(instance, passed: bool):
        from dagster._core.definitions.asset_checks.asset_check_evaluation import (
            AssetCheckEvaluationTargetMaterializationData as Target,
        )

        report = instance.fetch_materializations(dg.AssetKey("eval_report"), limit=1).records[0]
        instance.report_runless_asset_event(dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("eval_report"), check_name="eval_floor", passed=passed, blocking=True,
            partition="calculator",
            target_materialization_data=Target(storage_id=report.storage_id, run_id=report.run_id,
                                               timestamp=report.timestamp)))

    def requested(instance, cursor):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        return (set(result.get_requested_partitions(dg.AssetKey("eval_report"))),
                set(result.get_requested_partitions(dg.AssetKey("promotion_candidate"))), result.cursor)

    with dg.instance_for_test() as instance:
        materialized(instance, "baseline_eval", "reward_model")
        evals, _, cursor = requested(instance, None)
        assert evals == set()  # no checkpoint yet
        materialized(instance, "policy_checkpoint")
        evals, _, cursor = requested(instance, cursor)
        assert evals == {"calculator"}

    for passed in (False, True):  # a fresh instance each: one floor check per partition and (runless) run
        with dg.instance_for_test() as instance:
            materialized(instance, "baseline_eval", "reward_model", "policy_checkpoint")
            _, _, cursor = requested(instance, None)
            materialized(instance, "eval_report")
            floor_check(instance, passed=passed)
            _, candidates, _ = requested(instance, cursor)
            assert candidates == ({"calculator"} if passed else set())  # under the floor: not a candidate
