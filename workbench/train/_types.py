"""Value types of the training library: algorithms, callbacks' shapes and the result of a run.

Kept free of torch / transformers so that importing them (for type hints, API schemas, job
records) costs nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from workbench.errors import ValidationFailed

__all__ = [
    "Algorithm",
    "MetricsSink",
    "ProgressFn",
    "RoundStats",
    "StopFlag",
    "TrainingResult",
    "TrainingStatus",
    "SampleFn",
    "VerifyFn",
    "normalize_algorithm",
]


class Algorithm(StrEnum):
    """The training algorithms :func:`run_training` knows."""

    SFT = "sft"
    DPO = "dpo"
    GRPO = "grpo"
    PPO = "ppo"
    RFT = "rft"
    RM = "rm"


_ALIASES = {"reward_model": "rm", "reward": "rm"}


def normalize_algorithm(algorithm: str | Algorithm) -> str:
    """The canonical algorithm name (``reward_model`` is ``rm``), or ValidationFailed naming the known ones."""
    name = str(getattr(algorithm, "value", algorithm)).strip().lower()
    name = _ALIASES.get(name, name)
    if name not in Algorithm._value2member_map_:
        known = ", ".join(a.value for a in Algorithm)
        raise ValidationFailed("algorithm", f"unknown algorithm {algorithm!r}; known: {known}")
    return name


TrainingStatus = Literal["completed", "stopped"]

MetricsSink = Callable[[int, dict[str, float]], None]
"""Called with ``(global_step, metrics)`` at every logging step and evaluation."""

ProgressFn = Callable[[int, int], None]
"""Called with ``(step, max_steps)`` when training starts and after every optimizer step."""

StopFlag = threading.Event | Callable[[], bool]
"""Set the event (or return True) to stop: the run saves a resumable checkpoint and ends."""

VerifyFn = Callable[[Mapping[str, Any], str], float]
"""``verify(prompt_row, completion_text) -> score``; the row holds ``prompt`` and every extra column."""

SampleFn = Callable[..., list[list[str]]]
"""``sample(prompts, k) -> completions`` (``k`` texts per prompt, in prompt order).

Rejection sampling also passes ``model_dir=`` and ``adapter_dir=`` (the current policy) when the
callable accepts them, so it can sample from the model trained in the previous round.
"""


class RoundStats(BaseModel):
    """One round of rejection-sampling RFT."""

    round: int = Field(description="1-based round number.")
    prompts: int
    sampled: int = Field(description="Completions drawn (prompts x k).")
    accepted: int = Field(description="Completions the verifier accepted (after dedup and the per-prompt cap).")
    accept_rate: float = Field(description="Accepted before the cap / sampled.")
    mean_score: float | None = Field(None, description="Mean verifier score over every sampled completion.")
    prompts_solved: int = Field(0, description="Prompts with at least one accepted completion.")
    sft_steps: int = Field(0, description="Optimizer steps of this round's SFT (0 when nothing was accepted).")
    sft_loss: float | None = None
    sample_seconds: float = 0.0
    train_seconds: float = 0.0
    adapter_dir: Path | None = Field(None, description="The policy after this round (LoRA adapter).")
    model_dir: Path | None = Field(None, description="The full model after this round (full fine-tuning).")


class TrainingResult(BaseModel):
    """What a training run produced.

    ``final_dir`` holds what was saved at the end: a LoRA adapter (``adapter=True``; load it on
    ``base_model_dir``) or full weights; both come with the tokenizer. A stopped run saves a
    resumable ``checkpoint_dir`` (weights, optimizer, scheduler, trainer state) and no final model
    (rejection-sampling RFT keeps the last completed round as ``final_dir``).
    """

    algorithm: Algorithm
    status: TrainingStatus
    output_dir: Path
    final_dir: Path | None = None
    checkpoint_dir: Path | None = Field(None, description="Latest resumable checkpoint (always set when stopped).")
    adapter: bool = Field(description="True when final_dir / checkpoint_dir hold a LoRA adapter.")
    base_model_dir: Path = Field(description="The full model the adapter applies to (or that was fine-tuned).")
    global_step: int
    max_steps: int
    resumed_from: Path | None = None
    metrics: dict[str, float] = Field(default_factory=dict, description="Last value of every metric logged.")
    history: list[dict[str, Any]] = Field(default_factory=list, description="Every metrics_sink call: step + metrics.")
    rounds: list[RoundStats] | None = Field(None, description="Rejection-sampling RFT only: per-round statistics.")
    started_at: datetime
    finished_at: datetime
    timing: dict[str, float] = Field(
        default_factory=dict, description="Seconds: load (model/data), train, save, total (wall clock)."
    )
    cpu_seconds: float = Field(0.0, description="CPU time of this process during the run (all threads).")
    gpu_seconds: float = 0.0
    cost: float = Field(0.0, description="cpu_seconds x cpu price + gpu_seconds x gpu price.")
    peak_rss_mb: float | None = Field(None, description="Peak resident memory of this process so far (MiB).")
    wandb_run_id: str | None = None
    wandb_dir: Path | None = Field(None, description="The wandb run directory (offline: sync it with `wandb sync`).")
    wandb_mode: str = "disabled"
