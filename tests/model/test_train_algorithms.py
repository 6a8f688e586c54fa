"""Real training steps on the real base model for every algorithm: SFT, DPO, reward model, PPO,
GRPO (with an LLM-free reward and a registered one) and both RFT variants; stop and resume.

Every run is tiny (2 steps, batches of 2-4, sequences under 64 tokens, one torch thread) and
checks that a LoRA tensor changed, that metrics reached the sink, and that the wandb run was
written offline. The base model is converted once per session (see tests/train_fixtures.py).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from train_fixtures import (  # noqa: F401
    FAST,
    Recorder,
    preference_rows,
    prompt_rows,
    saved_lora_is_trained,
    sft_rows,
    train_base_model,
    weight_probe,
)

from workbench.train import RewardModelScorer, completion_text, run_training


def _length_reward(prompts, completions, **kwargs):  # noqa: ANN001, ANN003 - TRL's reward signature
    # Varies between completions, so GRPO's group advantages are non-zero and the policy moves.
    return [min(len(completion_text(c)), 40) / 40 for c in completions]


def _check_common(result, recorder: Recorder, probe) -> None:  # noqa: ANN001
    assert result.status == "completed"
    assert result.global_step == result.max_steps == 2
    assert probe.changed, f"{probe.name} did not change"
    assert result.adapter and saved_lora_is_trained(result.final_dir)
    assert (result.final_dir / "tokenizer_config.json").is_file()
    assert [s for s, _ in recorder.progress][-1] == 2
    steps = sorted({s for s, _ in recorder.metrics})
    assert steps[:2] == [1, 2]
    for name in ("learning_rate", "cpu_seconds", "cost"):
        assert recorder.values(name), f"{name} not reported"
    assert all(c >= 0 for c in recorder.values("cost")) and recorder.values("cpu_seconds")[-1] > 0
    assert result.wandb_mode == "offline" and result.wandb_run_id
    assert result.wandb_dir.is_dir() and result.wandb_dir.is_relative_to(result.output_dir / "wandb")
    assert list(result.wandb_dir.glob("*.wandb")), "no offline wandb log"
    assert json.loads((result.output_dir / "result.json").read_text())["status"] == "completed"


def test_sft_trains_assistant_turns_with_eval_metrics(train_base_model: Path, tmp_path: Path) -> None:
    recorder, probe = Recorder(), weight_probe()
    config = {**FAST, "per_device_train_batch_size": 2, "max_length": 64, "eval_strategy": "steps", "eval_steps": 2}
    result = run_training(
        "sft", config, sft_rows(), train_base_model, tmp_path / "sft", eval_dataset=sft_rows()[:2],
        metrics_sink=recorder.sink, progress=recorder.on_progress, callbacks=[probe],
    )  # fmt: skip
    _check_common(result, recorder, probe)
    assert recorder.values("loss") and recorder.values("tokens_per_s")
    assert recorder.values("eval/loss"), "eval metrics did not reach the sink"
    assert result.timing["train"] > 0 and result.cpu_seconds > 0 and result.cost > 0


def test_stop_saves_a_resumable_checkpoint_and_resume_continues(train_base_model: Path, tmp_path: Path) -> None:
    stop = threading.Event()
    first = Recorder()

    def progress(step: int, max_steps: int) -> None:
        first.on_progress(step, max_steps)
        if step >= 1:
            stop.set()  # as POST /train/jobs/{id}/stop would, from another thread

    config = {**FAST, "per_device_train_batch_size": 2, "max_length": 64}
    stopped = run_training("sft", config, sft_rows(), train_base_model, tmp_path / "a", progress=progress, stop=stop)
    assert stopped.status == "stopped" and stopped.global_step == 1 and stopped.final_dir is None
    checkpoint = stopped.checkpoint_dir
    assert checkpoint.name == "checkpoint-1"
    for name in ("trainer_state.json", "optimizer.pt", "scheduler.pt", "adapter_model.safetensors"):
        assert (checkpoint / name).is_file(), name

    second = Recorder()
    resumed = run_training(
        "sft", config, sft_rows(), train_base_model, tmp_path / "b", resume_from=checkpoint,
        metrics_sink=second.sink, progress=second.on_progress,
    )  # fmt: skip
    assert resumed.status == "completed" and resumed.resumed_from == checkpoint
    assert resumed.global_step == 2 and second.progress[0] == (1, 2)
    assert {s for s, _ in second.metrics} == {2}, "the resumed run re-did step 1"
    assert saved_lora_is_trained(resumed.final_dir)


def test_dpo(train_base_model: Path, tmp_path: Path) -> None:
    recorder, probe = Recorder(), weight_probe()
    config = {**FAST, "per_device_train_batch_size": 2, "max_length": 48}
    result = run_training("dpo", config, preference_rows(), train_base_model, tmp_path / "dpo",
                          metrics_sink=recorder.sink, progress=recorder.on_progress, callbacks=[probe])  # fmt: skip
    _check_common(result, recorder, probe)
    assert recorder.values("rewards/margins") and recorder.values("loss")


def test_reward_model_then_ppo_with_stop_and_resume(train_base_model: Path, tmp_path: Path) -> None:
    recorder, probe = Recorder(), weight_probe()
    config = {**FAST, "per_device_train_batch_size": 2, "max_length": 48}
    rm = run_training("rm", config, preference_rows(), train_base_model, tmp_path / "rm",
                      metrics_sink=recorder.sink, progress=recorder.on_progress, callbacks=[probe])  # fmt: skip
    _check_common(rm, recorder, probe)
    assert recorder.values("accuracy") and recorder.values("reward_mean")

    # The RM as a reward function: one finite scalar per (prompt, completion).
    scorer = RewardModelScorer(rm.final_dir)
    rows = preference_rows()[:2]
    scores = scorer([r["prompt"] for r in rows], [[{"role": "assistant", "content": "5"}]] * 2)
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)

    # PPO with that RM: stopped after one update, then resumed to the second.
    stop = threading.Event()
    recorder, probe = Recorder(), weight_probe()

    def progress(step: int, max_steps: int) -> None:
        recorder.on_progress(step, max_steps)
        if step >= 1:
            stop.set()

    ppo = {**FAST, "per_device_train_batch_size": 2, "response_length": 8, "reward_model_path": str(rm.final_dir)}
    stopped = run_training("ppo", ppo, prompt_rows(), train_base_model, tmp_path / "ppo-a", metrics_sink=recorder.sink,
                           progress=progress, stop=stop, callbacks=[probe])  # fmt: skip
    assert stopped.status == "stopped" and stopped.global_step == 1
    assert (stopped.checkpoint_dir / "value_model.safetensors").is_file()
    assert probe.changed
    assert recorder.values("kl") and recorder.values("reward_mean") and recorder.values("tokens_per_s")

    resumed_rec = Recorder()
    resumed = run_training("ppo", ppo, prompt_rows(), train_base_model, tmp_path / "ppo-b",
                           resume_from=stopped.checkpoint_dir, metrics_sink=resumed_rec.sink,
                           progress=resumed_rec.on_progress)  # fmt: skip
    assert resumed.status == "completed" and resumed.global_step == 2
    assert {s for s, _ in resumed_rec.metrics} == {2}
    assert saved_lora_is_trained(resumed.final_dir)
    assert json.loads((resumed.final_dir / "tokenizer_config.json").read_text()).get("pad_token") == "<|im_end|>"


def test_grpo_with_callable_and_registered_rewards(train_base_model: Path, tmp_path: Path) -> None:
    recorder, probe = Recorder(), weight_probe()
    config = {**FAST, "per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 8,
              "beta": 0.04, "reward_funcs": ["exact_answer"]}  # fmt: skip
    result = run_training("grpo", config, prompt_rows(), train_base_model, tmp_path / "grpo",
                          reward_funcs=[_length_reward], metrics_sink=recorder.sink, progress=recorder.on_progress,
                          callbacks=[probe])  # fmt: skip
    _check_common(result, recorder, probe)
    assert recorder.values("reward_mean") and recorder.values("reward_std") and recorder.values("kl")
    assert recorder.values("rewards/_length_reward/mean") and recorder.values("rewards/exact_answer/mean")


def test_rft_grpo_variant_rewards_come_from_the_verifier(train_base_model: Path, tmp_path: Path) -> None:
    seen_rows: list[dict] = []

    def verify(row: dict, text: str) -> float:
        seen_rows.append(row)
        return min(len(text), 40) / 40

    recorder, probe = Recorder(), weight_probe()
    config = {**FAST, "per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 8}
    result = run_training("rft", config, prompt_rows(), train_base_model, tmp_path / "rft", verifier=verify,
                          metrics_sink=recorder.sink, progress=recorder.on_progress, callbacks=[probe])  # fmt: skip
    _check_common(result, recorder, probe)
    assert recorder.values("rewards/verifier/mean")
    assert seen_rows and {"prompt", "answer", "scenario_id"} <= set(seen_rows[0])


def test_rft_rejection_sampling_rounds(train_base_model: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int, Path | None]] = []

    def sample(prompts: list, k: int, adapter_dir: Path | None = None) -> list[list[str]]:
        calls.append((len(prompts), k, adapter_dir))
        return [[json.dumps({"answer": str(v)}) for v in range(k)] for _ in prompts]

    def verify(row: dict, text: str) -> float:
        return 1.0 if json.loads(text)["answer"] == row["answer"] else 0.0

    recorder, probe = Recorder(), weight_probe()
    config = {**FAST, "variant": "rejection_sampling", "rounds": 2, "samples_per_prompt": 10, "max_steps": 1,
              "per_device_train_batch_size": 2, "max_length": 64}  # fmt: skip
    result = run_training("rft", config, prompt_rows(), train_base_model, tmp_path / "rs", sampler=sample,
                          verifier=verify, metrics_sink=recorder.sink, progress=recorder.on_progress,
                          callbacks=[probe])  # fmt: skip
    assert result.status == "completed" and result.global_step == 2 and len(result.rounds) == 2
    # answers 5, 9, 13, 9 against samples 0..9: three prompts solved, one completion kept each
    for stats in result.rounds:
        assert (stats.sampled, stats.accepted, stats.prompts_solved, stats.sft_steps) == (40, 3, 3, 1)
        assert stats.accept_rate == pytest.approx(3 / 40)
    # round 2 samples from round 1's adapter, and keeps training it
    assert calls[0][2] is None and calls[1][2] == result.rounds[0].adapter_dir
    assert result.final_dir == result.output_dir / "final" and saved_lora_is_trained(result.final_dir)
    assert probe.changed
    assert recorder.values("rft/accept_rate") == [pytest.approx(3 / 40)] * 2
