"""`make demo QUICK=1` — the main job as a user types it — on a fresh home, then what the Dagster UI would show."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOOP_ASSETS = ("rollout_events", "trajectories_dataset", "sft_dataset", "preference_dataset", "rl_prompts_dataset",
               "label_tasks", "reward_model", "policy_checkpoint", "baseline_eval", "eval_report",
               "promotion_candidate", "deployment")


def test_make_demo_quick(tmp_path, models_dir):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for model in models_dir.iterdir():  # the session's converted base model; pull-base finds it there
        (home / "models" / model.name).symlink_to(model.resolve())
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    done = subprocess.run(["make", "demo", "QUICK=1"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    for expected in ("Ingest agent events", "Success on the test split", "deployed agent", "Dagster UI"):
        assert expected in out, out[-4000:]

    from dagster import AssetKey, DagsterInstance

    instance = DagsterInstance.from_config(str(home / "dagster"))
    try:
        for name in LOOP_ASSETS:  # every asset of the loop has a calculator materialization in the home's instance
            event = instance.get_latest_materialization_event(AssetKey(name))
            assert event is not None and event.asset_materialization.partition == "calculator", name
        report = instance.get_latest_materialization_event(AssetKey("eval_report")).asset_materialization.metadata
        assert 0.0 <= report["success_rate"].value <= 1.0 and "ci_95" in report
        reply = instance.get_latest_materialization_event(AssetKey("deployment")).asset_materialization.metadata["reply"]
        assert reply.value.strip()
    finally:
        instance.dispose()
