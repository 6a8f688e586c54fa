"""GRPO (and the GRPO variant of RFT): TRL's GRPOTrainer with workbench reward functions.

Rewards, in order: the verifier (RFT only), the callables passed to :func:`run_training`, the
names in ``config.reward_funcs`` and the reward model at ``config.reward_model_path``.
``reward_weights`` (a TRL field) weighs them in that order.
"""

from __future__ import annotations

from typing import Any

from workbench.errors import ValidationFailed
from workbench.train._job import Job, Outcome, datasets_from, drive
from workbench.train._models import load_policy, load_tokenizer, lora_config
from workbench.train._rewards import RewardModelScorer, VerifierReward, get_reward_function

__all__ = ["count_rewards", "run"]


def count_rewards(job: Job) -> int:
    """How many reward functions the run will use (checked against reward_weights up front)."""
    config = job.config
    return (
        (job.verifier is not None) + len(job.reward_funcs) + len(config.reward_funcs)
        + (config.reward_model_path is not None)
    )  # fmt: skip


def reward_functions(job: Job) -> list[Any]:
    """The reward callables of ``job`` (builds the reward model scorer, if any)."""
    config = job.config
    funcs: list[Any] = []
    if job.verifier is not None:
        funcs.append(job.verifier if isinstance(job.verifier, VerifierReward) else VerifierReward(job.verifier))
    funcs.extend(get_reward_function(f) for f in job.reward_funcs)
    funcs.extend(get_reward_function(name) for name in config.reward_funcs)
    if config.reward_model_path is not None:
        funcs.append(RewardModelScorer(config.reward_model_path, max_length=config.max_completion_length + 1024))
    if not funcs:
        raise ValidationFailed("reward_funcs", f"{job.algorithm} needs at least one reward function")
    return funcs


def build_trainer(job: Job) -> Any:
    """A GRPOTrainer for ``job``."""
    from trl import GRPOTrainer

    config = job.config
    tokenizer = load_tokenizer(job.start, padding_side="left")
    model = load_policy(job.start, keep_adapter_trainable=config.use_lora)
    peft_config = lora_config(config) if config.use_lora and job.start.adapter_dir is None else None
    return GRPOTrainer(
        model=model,
        reward_funcs=reward_functions(job),
        args=config,
        train_dataset=datasets_from(job.rows),
        eval_dataset=datasets_from(job.eval_rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def run(job: Job) -> Outcome:
    """Train and save."""
    return drive(job, build_trainer(job))
