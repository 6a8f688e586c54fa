"""Algorithm Factory: training with TRL + PEFT — SFT, DPO, GRPO, PPO, RFT and reward models.

* :func:`run_training` is the one entry point: it validates the request (typed config, dataset
  rows, model files, extra inputs) before loading anything, trains with tracking (metrics sink,
  wandb offline by default, compute cost, progress), stops on request with a resumable
  checkpoint, resumes from one, and saves the final LoRA adapter or full weights
  (:class:`TrainingResult`). :func:`validate_training` runs the checks alone (for HTTP 422).
* One config per algorithm, each a subclass of TRL's config with 2-CPU-core defaults and LoRA
  options: :class:`SFTTrainConfig`, :class:`DPOTrainConfig`, :class:`GRPOTrainConfig`,
  :class:`PPOTrainConfig`, :class:`RFTTrainConfig` / :class:`RejectionSamplingConfig` (the two
  RFT variants) and :class:`RewardModelConfig`; :func:`make_config` builds one from a mapping.
* Reward functions are registered by name (:func:`reward_function`) and resolved from YAML names
  or ``module:function`` (:func:`get_reward_function`); :func:`llm_judge_reward` (RLAIF),
  :class:`VerifierReward` and :class:`RewardModelScorer` (a trained RM) are reward functions too.

Importing this package does not import torch, transformers or TRL: the config classes load on
first access, the trainers when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.train._data import DATASET_KINDS, load_rows, validate_dataset
from workbench.train._models import load_reward_model
from workbench.train._rewards import (
    JudgeReward,
    RewardFn,
    RewardModelScorer,
    VerifierReward,
    completion_text,
    get_reward_function,
    llm_judge_reward,
    parse_judge_score,
    reward_function,
    reward_function_names,
)
from workbench.train._run import run_training, validate_training
from workbench.train._types import (
    Algorithm,
    MetricsSink,
    ProgressFn,
    RoundStats,
    SampleFn,
    StopFlag,
    TrainingResult,
    TrainingStatus,
    VerifyFn,
    normalize_algorithm,
)

if TYPE_CHECKING:
    from workbench.train._configs import (
        DPOTrainConfig,
        GRPOTrainConfig,
        PPOTrainConfig,
        RejectionSamplingConfig,
        RewardModelConfig,
        RFTTrainConfig,
        SFTTrainConfig,
        TrainConfig,
        make_config,
    )

# Names that live in modules importing TRL (and torch): loaded on first attribute access.
_LAZY = {
    "DPOTrainConfig", "GRPOTrainConfig", "PPOTrainConfig", "RFTTrainConfig", "RejectionSamplingConfig",
    "RewardModelConfig", "SFTTrainConfig", "TrainConfig", "make_config",
}  # fmt: skip

__all__ = [
    "DATASET_KINDS",
    "Algorithm",
    "DPOTrainConfig",
    "GRPOTrainConfig",
    "JudgeReward",
    "MetricsSink",
    "PPOTrainConfig",
    "ProgressFn",
    "RFTTrainConfig",
    "RejectionSamplingConfig",
    "RewardFn",
    "RewardModelConfig",
    "RewardModelScorer",
    "RoundStats",
    "SFTTrainConfig",
    "SampleFn",
    "StopFlag",
    "TrainConfig",
    "TrainingResult",
    "TrainingStatus",
    "VerifierReward",
    "VerifyFn",
    "completion_text",
    "get_reward_function",
    "llm_judge_reward",
    "load_reward_model",
    "load_rows",
    "make_config",
    "normalize_algorithm",
    "parse_judge_score",
    "reward_function",
    "reward_function_names",
    "run_training",
    "validate_dataset",
    "validate_training",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from workbench.train import _configs

        value = getattr(_configs, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
