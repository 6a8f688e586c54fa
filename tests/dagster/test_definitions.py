"""The Dagster code location loads and its data assets materialize against a temporary instance."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.dagster


def test_definitions_load():
    from assets.definitions import defs

    repo = defs.get_repository_def()
    keys = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    assert {"events", "sft_dataset", "preference_dataset", "rl_prompts_dataset", "trajectories_dataset"} <= keys
    assert defs.get_schedule_def("lake_maintenance").cron_schedule == "0 * * * *"


def test_events_then_datasets_materialize(settings, services):
    import dagster as dg

    from assets.data import dataset_assets, events
    from assets.resources import WorkbenchResource
    from workbench.client import EmbeddedClient
    from workbench.data.synthetic import synthetic_events

    EmbeddedClient(services, "default").events.log(synthetic_events(10, seed=1))
    resource = WorkbenchResource(home=str(settings.home))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [events, *dataset_assets],
            instance=instance,
            resources={"workbench": resource},
            selection=["events", "sft_dataset", "trajectories_dataset"],
        )
        assert result.success
        mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
        assert mats["events"].materialization.metadata["rows"].value == 60
        assert mats["trajectories_dataset"].materialization.metadata["rows"].value == 10
