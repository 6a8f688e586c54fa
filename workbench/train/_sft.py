"""SFT: TRL's SFTTrainer on chat rows, loss on assistant turns only (``assistant_only_loss``).

The base model's chat template carries ``{% generation %}`` markers, which is what TRL needs to
mask everything but the assistant's turns (including each turn's ``<|im_end|>``, so the model
learns to stop).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.train._job import Job, Outcome, datasets_from, drive
from workbench.train._models import StartModel, load_policy, load_tokenizer, lora_config

__all__ = ["build_trainer", "run"]


def build_trainer(job: Job, *, config: Any = None, rows: list[dict[str, Any]] | None = None,
                  start: StartModel | None = None, eval_rows: list[dict[str, Any]] | None = None) -> Any:  # fmt: skip
    """An SFTTrainer for ``job`` (or for one round of rejection sampling, with its own rows / start)."""
    from trl import SFTTrainer

    config = config or job.config
    start = start or job.start
    tokenizer = load_tokenizer(start)
    model = load_policy(start, keep_adapter_trainable=config.use_lora)
    # A run that starts from an adapter continues it; otherwise LoRA starts fresh (or none: full fine-tuning).
    peft_config = lora_config(config) if config.use_lora and start.adapter_dir is None else None
    return SFTTrainer(
        model=model,
        args=config,
        train_dataset=datasets_from(rows if rows is not None else job.rows),
        eval_dataset=datasets_from(eval_rows if rows is not None else job.eval_rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def run(job: Job) -> Outcome:
    """Train and save."""
    return drive(job, build_trainer(job))


def final_start(outcome: Outcome, start: StartModel) -> StartModel:
    """The model reference after a completed SFT run that started from ``start``."""
    assert outcome.final_dir is not None
    if outcome.adapter:
        return StartModel(start.base_dir, Path(outcome.final_dir))
    return StartModel(Path(outcome.final_dir))
