"""RFT: reinforcement fine-tuning with verifier rewards, in two variants.

* ``grpo`` (:class:`RFTTrainConfig`): GRPO whose first reward is ``verify(prompt_row, text)``;
  it runs through :mod:`workbench.train._grpo`.
* ``rejection_sampling`` (:class:`RejectionSamplingConfig`): for N rounds, sample K completions
  per prompt from the current policy (the caller's ``sample`` callable), keep those the verifier
  accepts, and SFT on them with the SFT runner; per-round statistics come back in the result.
  With LoRA every round continues the same adapter (one adapter on the base at the end).
"""

from __future__ import annotations

import copy
import inspect
import shutil
import time
from collections.abc import Callable
from typing import Any

from workbench.errors import ValidationFailed
from workbench.train import _grpo, _sft
from workbench.train._job import Job, Outcome, drive
from workbench.train._rewards import VerifierReward
from workbench.train._types import RoundStats

__all__ = ["run"]


def _call_sampler(sample: Callable[..., Any], prompts: list[Any], k: int, **optional: Any) -> Any:
    """``sample(prompts, k)``, plus the keyword arguments its signature accepts (model_dir, adapter_dir)."""
    try:
        params = inspect.signature(sample).parameters
    except (TypeError, ValueError):
        return sample(prompts, k)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return sample(prompts, k, **optional)
    return sample(prompts, k, **{key: v for key, v in optional.items() if key in params})


def _check_samples(samples: Any, prompts: int) -> list[list[str]]:
    if not isinstance(samples, list) or len(samples) != prompts:
        got = len(samples) if isinstance(samples, list) else type(samples).__name__
        raise ValidationFailed("sampler", f"must return one list of completions per prompt ({prompts}), got {got}")
    for i, group in enumerate(samples):
        if not isinstance(group, list) or not all(isinstance(t, str) for t in group):
            raise ValidationFailed("sampler", f"completions for prompt {i} must be a list of strings")
    return samples


def _train_loss(trainer: Any) -> float | None:
    for entry in reversed(trainer.state.log_history):
        if "train_loss" in entry:
            return float(entry["train_loss"])
    return None


def run(job: Job) -> Outcome:
    """Run the variant that ``job.config`` describes."""
    if getattr(job.config, "variant", "grpo") == "grpo":
        return _grpo.run(job)
    return _rejection_sampling(job)


def _rejection_sampling(job: Job) -> Outcome:
    cfg = job.config
    assert job.sampler is not None and job.verifier is not None  # checked by run_training
    verifier = job.verifier if isinstance(job.verifier, VerifierReward) else VerifierReward(job.verifier)
    prompts = [row["prompt"] for row in job.rows]
    per_round = cfg.max_steps if cfg.max_steps > 0 else None
    total = cfg.rounds * per_round if per_round else None
    current = job.start
    rounds: list[RoundStats] = []
    status, final_dir, checkpoint, steps = "completed", None, None, 0

    for number in range(1, cfg.rounds + 1):
        if job.tracker.stop_requested():
            status = "stopped"
            break
        started = time.perf_counter()
        samples = _check_samples(
            _call_sampler(job.sampler, prompts, cfg.samples_per_prompt, model_dir=current.base_dir,
                          adapter_dir=current.adapter_dir),
            len(prompts),
        )  # fmt: skip
        sft_rows, scores, passed, solved = [], [], 0, 0
        for row, group in zip(job.rows, samples, strict=True):
            kept: dict[str, float] = {}
            for text in group:
                score = verifier.score(row, text)
                scores.append(score)
                if score >= cfg.accept_threshold and text.strip():
                    passed += 1
                    kept[text] = max(score, kept.get(text, score))
            best = sorted(kept, key=kept.__getitem__, reverse=True)[: cfg.max_accepted_per_prompt or None]
            solved += bool(best)
            sft_rows += [{"messages": [*row["prompt"], {"role": "assistant", "content": text}]} for text in best]
        stats = RoundStats(
            round=number, prompts=len(prompts), sampled=len(scores), accepted=len(sft_rows),
            accept_rate=passed / len(scores) if scores else 0.0,
            mean_score=sum(scores) / len(scores) if scores else None, prompts_solved=solved,
            sample_seconds=time.perf_counter() - started,
        )  # fmt: skip
        if sft_rows:
            round_dir = job.output_dir / f"round-{number}"
            round_cfg = copy.deepcopy(cfg)
            round_cfg.output_dir = str(round_dir / "checkpoints")
            started = time.perf_counter()
            trainer = _sft.build_trainer(job, config=round_cfg, rows=sft_rows, start=current)
            outcome = drive(job, trainer, step_offset=steps, total_steps=total, final_dir=round_dir / "final")
            stats.train_seconds = time.perf_counter() - started
            stats.sft_steps = trainer.state.global_step
            stats.sft_loss = _train_loss(trainer)
            steps = outcome.global_step
            if outcome.status == "stopped":
                status, checkpoint = "stopped", outcome.checkpoint_dir
                rounds.append(stats)
                break
            current = _sft.final_start(outcome, current)
            final_dir = outcome.final_dir
            stats.adapter_dir, stats.model_dir = current.adapter_dir, current.base_dir
        job.tracker.emit(steps, {
            "rft/round": number, "rft/accept_rate": stats.accept_rate, "rft/accepted": stats.accepted,
            "rft/prompts_solved": solved, **({"rft/mean_score": stats.mean_score} if scores else {}),
            "rft/verifier_errors": verifier.errors,
        })  # fmt: skip
        rounds.append(stats)

    if final_dir is not None:
        # The last trained round is the run's result: move it to the usual place.
        if job.final_dir.exists():
            shutil.rmtree(job.final_dir)
        shutil.move(str(final_dir), str(job.final_dir))
        for stats in rounds:
            if stats.adapter_dir == final_dir:
                stats.adapter_dir = job.final_dir
            if stats.model_dir == final_dir:
                stats.model_dir = job.final_dir
        final_dir = job.final_dir
    # A stopped run keeps the last completed round as its final model (and the interrupted round's checkpoint).
    return Outcome(status, steps, total or steps, final_dir, checkpoint, cfg.use_lora, rounds=rounds)
