"""Reward models: TRL's RewardTrainer (Bradley-Terry) on preference rows → a sequence classifier.

With LoRA the saved checkpoint is a ``SEQ_CLS`` adapter whose score head is saved in full
(``modules_to_save``); :func:`workbench.train.load_reward_model` merges it on load, so either
form serves as a PPO reward model or, through :class:`RewardModelScorer`, as a reward function or
verifier for GRPO / RFT.
"""

from __future__ import annotations

from typing import Any

from workbench.train._job import Job, Outcome, datasets_from, drive
from workbench.train._models import load_sequence_classifier, load_tokenizer, lora_config, merged_model_dir

__all__ = ["run"]


def build_trainer(job: Job) -> Any:
    """A RewardTrainer for ``job``."""
    from transformers import set_seed
    from trl import RewardTrainer

    config = job.config
    tokenizer = load_tokenizer(job.start)
    set_seed(config.seed)  # the score head is initialized randomly
    # The score head goes on full weights: an adapter start is merged into a temporary checkpoint first.
    model = load_sequence_classifier(merged_model_dir(job.start, job.output_dir), tokenizer.pad_token_id)
    return RewardTrainer(
        model=model,
        args=config,
        train_dataset=datasets_from(job.rows),
        eval_dataset=datasets_from(job.eval_rows),
        processing_class=tokenizer,
        peft_config=lora_config(config, task_type="SEQ_CLS") if config.use_lora else None,
    )


def run(job: Job) -> Outcome:
    """Train and save."""
    return drive(job, build_trainer(job))
