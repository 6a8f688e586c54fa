"""Loading models for training: full checkpoints and LoRA adapters, policies, reward and value models.

A training run starts from a *model reference*: a full checkpoint directory (``config.json``)
or a LoRA adapter directory (``adapter_config.json`` naming its base). With LoRA, a run that
starts from an adapter keeps training that same adapter, so a chain of runs (SFT → RFT → GRPO)
ends as one adapter on the original base model — what the engines (``adapter_path``) and vLLM
(LoRA modules) load. Everything is read with ``local_files_only``; nothing touches a hub.

Only :func:`resolve_start` is cheap (file checks); the loaders import torch / transformers / peft.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ValidationFailed

__all__ = ["StartModel", "check_reward_model", "load_reward_model", "resolve_start"]


@dataclass(frozen=True)
class StartModel:
    """Where a run starts: a full model, plus optionally a LoRA adapter on it."""

    base_dir: Path
    adapter_dir: Path | None = None

    @property
    def tokenizer_dir(self) -> Path:
        """The adapter's copy of the tokenizer when it has one (it is saved with every checkpoint)."""
        if self.adapter_dir is not None and (self.adapter_dir / "tokenizer_config.json").is_file():
            return self.adapter_dir
        return self.base_dir


def resolve_start(path: str | Path | None, field: str = "base_model_dir") -> StartModel:
    """Check that ``path`` is a full model or a LoRA adapter whose base is on disk (no loading)."""
    if path is None:
        raise ValidationFailed(field, "required: a model directory (config.json) or a LoRA adapter directory")
    path = Path(path).expanduser()
    if (path / "adapter_config.json").is_file():
        try:
            adapter = json.loads((path / "adapter_config.json").read_text())
        except ValueError as exc:
            raise ValidationFailed(field, f"{path}/adapter_config.json is not valid JSON") from exc
        base = adapter.get("base_model_name_or_path")
        if not base or not (Path(base) / "config.json").is_file():
            raise ValidationFailed(field, f"the adapter at {path} names base model {base!r}, which is not on disk")
        if (Path(base) / "adapter_config.json").is_file():
            raise ValidationFailed(field, f"the adapter at {path} is on another adapter ({base}); merge that one first")
        return StartModel(Path(base).resolve(), path.resolve())
    if (path / "config.json").is_file():
        return StartModel(path.resolve())
    raise ValidationFailed(field, f"no model at {path} (neither config.json nor adapter_config.json)")


def check_reward_model(path: str | Path, field: str = "reward_model_path") -> StartModel:
    """Check (without loading) that ``path`` is a reward model: a SEQ_CLS adapter or a sequence classifier."""
    start = resolve_start(path, field)
    if start.adapter_dir is not None:
        task = json.loads((start.adapter_dir / "adapter_config.json").read_text()).get("task_type")
        if task != "SEQ_CLS":
            raise ValidationFailed(field, f"{path} is a {task} adapter, not a reward model (SEQ_CLS)")
        return start
    architectures = json.loads((start.base_dir / "config.json").read_text()).get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        raise ValidationFailed(field, f"{path} is not a reward model (architectures: {architectures})")
    return start


def load_tokenizer(start: StartModel, *, padding_side: str = "right") -> Any:
    """The tokenizer of ``start``, with a pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(start.tokenizer_dir), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def _causal_lm(path: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=True)


def load_policy(start: StartModel, *, keep_adapter_trainable: bool) -> Any:
    """The causal LM of ``start``.

    With an adapter: a trainable ``PeftModel`` when ``keep_adapter_trainable`` (LoRA runs continue
    it), else the adapter merged into the weights (full fine-tuning, or a frozen reference).
    """
    model = _causal_lm(start.base_dir)
    if start.adapter_dir is None:
        return model
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(model, str(start.adapter_dir), is_trainable=keep_adapter_trainable)
    return peft_model if keep_adapter_trainable else peft_model.merge_and_unload()


def lora_config(cfg: Any, task_type: str = "CAUSAL_LM") -> Any:
    """peft's LoraConfig from a workbench training config's LoRA fields."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.peft_target_modules(),
        bias="none",
        task_type=task_type,
    )


def merged_model_dir(start: StartModel, work_dir: Path) -> Path:
    """A full checkpoint of ``start``: its base when there is no adapter, else base + adapter merged
    and saved once under ``work_dir`` (sequence-classification heads need full weights to start from)."""
    if start.adapter_dir is None:
        return start.base_dir
    target = work_dir / "start-merged"
    if not (target / "config.json").is_file():
        model = load_policy(start, keep_adapter_trainable=False)
        model.save_pretrained(str(target))
        load_tokenizer(start).save_pretrained(str(target))
    return target


def load_sequence_classifier(path: Path, pad_token_id: int | None) -> Any:
    """A one-label sequence classifier (reward or value model) from a full checkpoint."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    # A causal-LM checkpoint has no score head: transformers warns that it is newly initialized (expected).
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=1, dtype=torch.float32, local_files_only=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    return model


def load_reward_model(path: str | Path, field: str = "reward_model_path") -> tuple[Any, Any]:
    """A reward model and its tokenizer from a full checkpoint or a LoRA adapter (merged on load)."""
    start = check_reward_model(path, field)
    tokenizer = load_tokenizer(start)
    model = load_sequence_classifier(start.base_dir, tokenizer.pad_token_id)
    if start.adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(start.adapter_dir)).merge_and_unload()
    if getattr(model.config, "num_labels", None) != 1:
        raise ValidationFailed(field, f"{path} is not a reward model (num_labels must be 1)")
    model.eval()
    return model, tokenizer
