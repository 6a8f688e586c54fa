"""PPO: policy + value model + reward model through ``trl.experimental.ppo.PPOTrainer`` (trl 1.12).

Why this implementation: TRL removed PPOTrainer in 1.13; 1.12.x is the last release that has
it and it runs with transformers 5.x. Its loop is not the ``Trainer`` loop, so three things the
other algorithms get from ``Trainer`` are added by a small subclass here:

* stop: the loop ignores ``should_training_stop``; the tracking callback raises after the
  resumable checkpoint is written, and the run ends with status ``stopped``;
* resume: policy (adapter or weights), value model, optimizer, scheduler and the step / episode
  counters are restored from a checkpoint, and the loop runs the remaining updates (prompts are
  drawn afresh, as PPO samples them anyway);
* tokens: the number of prompt and generated tokens is logged as ``num_tokens`` for tokens/s.

PPO reads padding by token id (``input_ids != pad``), so the pad token must never occur inside
a prompt. SmolLM2's pad token is its ``<|im_end|>``, which closes every chat turn; PPO uses the
tokenizer's unknown token (``<|endoftext|>``) as pad instead, for the policy, value and reward
models alike.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

from workbench.errors import ValidationFailed
from workbench.train._job import Job, Outcome, drive_raising, is_peft, latest_checkpoint
from workbench.train._models import (
    check_reward_model,
    load_policy,
    load_reward_model,
    load_sequence_classifier,
    load_tokenizer,
    lora_config,
    merged_model_dir,
    resolve_start,
)

__all__ = ["run"]

VALUE_WEIGHTS = "value_model.safetensors"


def _pad_token(tokenizer: Any) -> None:
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    candidate = tokenizer.unk_token
    if candidate is None or tokenizer.unk_token_id == tokenizer.eos_token_id:
        raise ValidationFailed("base_model_dir", "PPO needs a pad token distinct from EOS; the tokenizer has none")
    tokenizer.pad_token = candidate


def _dataset(rows: list[dict[str, Any]], tokenizer: Any, max_prompt_length: int) -> Any:
    from datasets import Dataset

    ids = []
    for row in rows:
        tokens = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True)
        if hasattr(tokens, "keys"):  # transformers 5 may return a BatchEncoding
            tokens = tokens["input_ids"]
        ids.append(list(tokens)[-max_prompt_length:])  # keep the end: the question and the generation prompt
    return Dataset.from_dict({"input_ids": ids})


def _value_model(job: Job, pad_token_id: int) -> Any:
    config = job.config
    path = config.value_model_path or config.reward_model_path
    try:
        check_reward_model(path, "value_model_path")
    except ValidationFailed:
        # Not a reward model: a causal LM (or adapter) whose backbone gets a fresh value head.
        start = resolve_start(path, "value_model_path")
        return load_sequence_classifier(merged_model_dir(start, job.output_dir), pad_token_id)
    model, _ = load_reward_model(path, "value_model_path")
    model.config.pad_token_id = pad_token_id
    return model


def _trainer_class() -> type:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl.experimental.ppo import PPOTrainer
    from transformers import TrainerCallback

    class _Resume(TrainerCallback):
        """Puts the restored counters back after PPOTrainer.train() zeroes them."""

        def __init__(self, step: int, episode: int, max_steps: int) -> None:
            self.step, self.episode, self.max_steps = step, episode, max_steps

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            state.global_step, state.episode, state.max_steps = self.step, self.episode, self.max_steps

    class WorkbenchPPOTrainer(PPOTrainer):
        """PPOTrainer with value-model checkpoints, resume and token counting."""

        num_tokens = 0

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            super()._save_checkpoint(model, trial)
            from safetensors.torch import save_model

            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            value = self.accelerator.unwrap_model(self.model).value_model
            save_model(value, str(folder / VALUE_WEIGHTS))

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "episode" in logs:  # a training log (not the final summary)
                logs["num_tokens"] = float(self.num_tokens)
            super().log(logs, start_time)

        def resume(self, checkpoint: Path) -> None:
            """Restore weights, optimizer, scheduler and counters from ``checkpoint``."""
            import torch
            from safetensors.torch import load_file, load_model

            state = json.loads((checkpoint / "trainer_state.json").read_text())
            wrapper = self.accelerator.unwrap_model(self.model)
            if is_peft(wrapper.policy):
                from peft import set_peft_model_state_dict

                set_peft_model_state_dict(wrapper.policy, load_file(str(checkpoint / "adapter_model.safetensors")))
            else:
                load_model(wrapper.policy, str(checkpoint / "model.safetensors"), strict=False)
            load_model(wrapper.value_model, str(checkpoint / VALUE_WEIGHTS))
            self.optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
            self.lr_scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
            done = int(state["global_step"])
            total = int(self.args.num_total_batches)
            if done >= total:
                raise ValidationFailed("resume_from", f"the checkpoint is at step {done} of {total}: nothing left")
            self.args.num_total_batches = total - done  # the loop runs the remaining updates
            self.add_callback(_Resume(done, int(state.get("episode", done * self.args.batch_size)), total))

    return WorkbenchPPOTrainer


class _CountingLoader:
    """Wraps PPO's dataloader and counts the tokens of each update (prompts + the response budget)
    as batches are handed to the loop (the collator runs ahead of it, prefetching)."""

    def __init__(self, loader: Any, trainer: Any, pad_id: int, response_length: int) -> None:
        self.loader, self.trainer, self.pad_id, self.response_length = loader, trainer, pad_id, response_length

    def __iter__(self) -> Any:
        for batch in self.loader:
            ids = batch["input_ids"]
            self.trainer.num_tokens += int((ids != self.pad_id).sum()) + self.response_length * int(ids.shape[0])
            yield batch

    def __len__(self) -> int:
        return len(self.loader)


def build_trainer(job: Job) -> Any:
    """A (workbench) PPOTrainer for ``job``."""
    from transformers import DataCollatorWithPadding

    config = job.config
    tokenizer = load_tokenizer(job.start, padding_side="left")
    _pad_token(tokenizer)
    policy = load_policy(job.start, keep_adapter_trainable=config.use_lora)
    policy.config.pad_token_id = tokenizer.pad_token_id
    policy.generation_config.pad_token_id = tokenizer.pad_token_id
    reward_model, _ = load_reward_model(config.reward_model_path)
    reward_model.config.pad_token_id = tokenizer.pad_token_id
    value_model = _value_model(job, tokenizer.pad_token_id)
    if config.max_steps and config.max_steps > 0:
        # PPO counts episodes, not steps: max_steps updates of one batch each.
        config.total_episodes = config.max_steps * config.per_device_train_batch_size * config.gradient_accumulation_steps
    train = _dataset(job.rows, tokenizer, config.max_prompt_length)
    evaluation = _dataset(job.eval_rows or job.rows[:1], tokenizer, config.max_prompt_length)
    peft_config = lora_config(config) if config.use_lora and job.start.adapter_dir is None else None
    trainer = _trainer_class()(
        args=config,
        processing_class=tokenizer,
        model=policy,
        ref_model=None,
        reward_model=reward_model,
        train_dataset=train,
        value_model=value_model,
        data_collator=DataCollatorWithPadding(tokenizer),
        eval_dataset=evaluation,
        peft_config=peft_config,
    )
    trainer.dataloader = _CountingLoader(trainer.dataloader, trainer, tokenizer.pad_token_id, config.response_length)
    return trainer


def run(job: Job) -> Outcome:
    """Train (or resume) and save the policy."""
    from transformers.trainer_callback import PrinterCallback

    trainer = build_trainer(job)
    if job.resume_from is not None:
        trainer.resume(job.resume_from)
    callback = job.tracker.callback(raise_after_save=True)
    trainer.add_callback(callback)
    for extra in job.callbacks:
        trainer.add_callback(extra)
    trainer.remove_callback(PrinterCallback)
    stopped = drive_raising(job, trainer, trainer.train)
    adapter = is_peft(trainer.accelerator.unwrap_model(trainer.model).policy)
    step, max_steps = trainer.state.global_step, int(trainer.state.max_steps)
    checkpoints = Path(trainer.args.output_dir)
    if stopped:
        return Outcome("stopped", step, max_steps, None, checkpoints / f"checkpoint-{step}", adapter)
    started = time.perf_counter()
    trainer.save_model(str(job.final_dir))  # the policy only (adapter or full weights)
    tokenizer = trainer.processing_class
    tokenizer.pad_token = tokenizer.eos_token  # save the tokenizer as it was: PPO's pad choice is internal
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(str(job.final_dir))
    job.timing["save"] = time.perf_counter() - started
    return Outcome("completed", step, max_steps, job.final_dir, latest_checkpoint(checkpoints), adapter)
