"""DPO: TRL's DPOTrainer on conversational preference rows ``{prompt, chosen, rejected}``.

The reference model is the starting model: with a fresh LoRA adapter TRL gets it by disabling
the adapter; when the run starts from an adapter (say, an SFT result) or fine-tunes every weight
from one, a frozen merged copy is loaded, so the reference is the SFT model, not the raw base.
"""

from __future__ import annotations

from typing import Any

from workbench.train._job import Job, Outcome, datasets_from, drive
from workbench.train._models import load_policy, load_tokenizer, lora_config

__all__ = ["run"]


def build_trainer(job: Job) -> Any:
    """A DPOTrainer for ``job``."""
    from trl import DPOTrainer

    config = job.config
    tokenizer = load_tokenizer(job.start)
    model = load_policy(job.start, keep_adapter_trainable=config.use_lora)
    ref_model = None
    if job.start.adapter_dir is not None:
        ref_model = load_policy(job.start, keep_adapter_trainable=False)
        ref_model.requires_grad_(False)
        ref_model.eval()
    peft_config = lora_config(config) if config.use_lora and job.start.adapter_dir is None else None
    return DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=config,
        train_dataset=datasets_from(job.rows),
        eval_dataset=datasets_from(job.eval_rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def run(job: Job) -> Outcome:
    """Train and save."""
    return drive(job, build_trainer(job))
