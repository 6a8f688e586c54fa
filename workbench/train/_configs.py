"""One typed config per algorithm, each a subclass of TRL's own config dataclass.

Subclassing (not wrapping) keeps every TRL / ``TrainingArguments`` field available under its own
name, so the same class serves Python kwargs, YAML / JSON hyperparameters (:func:`make_config`) and
``HfArgumentParser`` CLI flags. What the workbench adds lives in one mixin:

* defaults that run on 2 CPU cores with no network (``use_cpu``, no mixed precision, no
  activation checkpointing, no dataloader workers or pinned memory, logging every step, HF
  integrations off: tracking goes through the workbench callback, see ``wandb_mode``);
* LoRA options (r=16 on all linear layers by default; ``use_lora=False`` fine-tunes every weight);
* tracking and cost options (wandb mode/project, prices per CPU- and GPU-second);
* validation that raises :class:`~workbench.errors.ValidationFailed` naming the field, at
  construction time, before any model is loaded.

This module imports TRL (and with it torch); ``workbench.train`` loads it on first use.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trl import DPOConfig, GRPOConfig, RewardConfig, SFTConfig

with warnings.catch_warnings():
    # trl.experimental warns on import; PPO lives there in trl 1.12 (and nowhere in later releases).
    warnings.simplefilter("ignore")
    from trl.experimental.ppo import PPOConfig

from workbench.errors import ValidationFailed
from workbench.train._types import normalize_algorithm

__all__ = [
    "CONFIG_CLASSES",
    "DPOTrainConfig",
    "GRPOTrainConfig",
    "PPOTrainConfig",
    "RFTTrainConfig",
    "RejectionSamplingConfig",
    "RewardModelConfig",
    "SFTTrainConfig",
    "TrainConfig",
    "make_config",
]

WANDB_MODES = ("offline", "online", "disabled")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _field_in_message(message: str, names: set[str]) -> str:
    """The first config field a TRL / transformers error message mentions (they rarely say which)."""
    for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", message):
        if word in names:
            return word
    return "config"


@dataclass
class _WorkbenchOptions:
    """Fields and defaults shared by every workbench training config (mixed in before TRL's class)."""

    # -- CPU-friendly overrides of TrainingArguments defaults ------------------------------------
    use_cpu: bool = field(default=True, metadata=_help("Train on CPU even if an accelerator is present."))
    bf16: bool | None = field(default=False, metadata=_help("bfloat16 mixed precision (off: 2-core CPU default)."))
    fp16: bool = field(default=False, metadata=_help("float16 mixed precision (GPU only)."))
    # Both None so that transformers resolves them to False without its deprecation warning, while an explicit
    # gradient_checkpointing=True still takes effect.
    gradient_checkpointing: bool | None = field(default=None, metadata=_help("Alias of activation_checkpointing."))
    activation_checkpointing: bool | None = field(default=None, metadata=_help("Recompute activations (saves memory)."))
    dataloader_num_workers: int = 0
    dataloader_pin_memory: bool = False
    report_to: None | str | list[str] = field(
        default="none",
        metadata=_help("HF reporting integrations; wandb is driven by wandb_mode through the workbench callback."),
    )
    logging_steps: float = field(default=1, metadata=_help("Log (and report metrics) every N optimizer steps."))
    disable_tqdm: bool | None = field(default=True, metadata=_help("Progress goes to the progress callback instead."))
    num_train_epochs: float = 1.0
    save_strategy: str = field(default="steps", metadata=_help("Periodic resumable checkpoints: no | steps | epoch."))
    save_steps: float = 100
    save_total_limit: int | None = 2

    num_threads: int | None = field(
        default=None,
        metadata=_help("torch intra-op threads for the run (process-wide, restored after); None keeps torch's "
                       "choice. On a busy 2-core machine 1 thread is several times faster than 2."),
    )

    # -- LoRA ------------------------------------------------------------------------------------
    use_lora: bool = field(default=True, metadata=_help("Train a LoRA adapter; False fine-tunes every weight."))
    lora_r: int = field(default=16, metadata=_help("LoRA rank."))
    lora_alpha: int = field(default=32, metadata=_help("LoRA scaling numerator (scale = alpha / r)."))
    lora_dropout: float = 0.05
    lora_target_modules: str = field(
        default="all-linear", metadata=_help("'all-linear' or comma-separated module names (q_proj,v_proj).")
    )

    # -- tracking and cost -----------------------------------------------------------------------
    wandb_mode: str = field(default="offline", metadata=_help("offline (default) | online | disabled."))
    wandb_project: str = "workbench"
    wandb_entity: str | None = None
    cpu_price_per_second: float = field(
        default=1.4e-5, metadata=_help("Price of one CPU-second (about $0.05 per vCPU-hour) for the cost metric.")
    )
    gpu_price_per_second: float = field(
        default=1.0e-3, metadata=_help("Price of one GPU-second (about $3.60 per GPU-hour) for the cost metric.")
    )

    # -- validation --------------------------------------------------------------------------------

    def __post_init__(self) -> None:
        self._validate_common()
        self._validate_algorithm()
        names = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        try:
            super().__post_init__()  # type: ignore[misc]
        except ValidationFailed:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            message = str(exc).strip("'\"")
            raise ValidationFailed(_field_in_message(message, names), message) from exc

    def _number(
        self,
        name: str,
        *,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        integer: bool = False,
        optional: bool = False,
    ) -> None:
        value = getattr(self, name)
        if value is None and optional:
            return
        if not _is_number(value) or (integer and not float(value).is_integer()):
            kind = "an integer" if integer else "a finite number"
            raise ValidationFailed(name, f"must be {kind}, not {value!r}")
        bounds = [(gt, lambda v, b: v > b, ">"), (ge, lambda v, b: v >= b, ">="),
                  (lt, lambda v, b: v < b, "<"), (le, lambda v, b: v <= b, "<=")]  # fmt: skip
        for bound, ok, sign in bounds:
            if bound is not None and not ok(value, bound):
                raise ValidationFailed(name, f"must be {sign} {bound}, not {value!r}")

    def _validate_common(self) -> None:
        self._number("learning_rate", gt=0, lt=1)
        self._number("num_train_epochs", gt=0)
        self._number("max_steps", integer=True)
        if self.max_steps != -1 and self.max_steps < 1:  # type: ignore[attr-defined]
            raise ValidationFailed("max_steps", f"must be >= 1 (or -1 to train for num_train_epochs), not {self.max_steps}")  # type: ignore[attr-defined]
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            self._number(name, ge=1, integer=True)
        self._number("weight_decay", ge=0)
        self._number("max_grad_norm", ge=0, optional=True)
        self._number("warmup_steps", ge=0)
        self._number("logging_steps", gt=0)
        self._number("save_steps", gt=0)
        self._number("seed", ge=0, integer=True)
        self._number("num_threads", ge=1, le=1024, integer=True, optional=True)
        self._number("lora_r", ge=1, le=1024, integer=True)
        self._number("lora_alpha", gt=0)
        self._number("lora_dropout", ge=0, lt=1)
        self._number("cpu_price_per_second", ge=0)
        self._number("gpu_price_per_second", ge=0)
        if not isinstance(self.lora_target_modules, str) or not self.lora_target_modules.strip():
            raise ValidationFailed("lora_target_modules", "must be 'all-linear' or comma-separated module names")
        if self.wandb_mode not in WANDB_MODES:
            raise ValidationFailed("wandb_mode", f"must be one of {', '.join(WANDB_MODES)}, not {self.wandb_mode!r}")
        reports = [self.report_to] if isinstance(self.report_to, str) else list(self.report_to or [])
        if "wandb" in reports or "all" in reports:
            raise ValidationFailed(
                "report_to", "wandb is driven by wandb_mode (offline/online/disabled); leave it out of report_to"
            )
        if self.use_cpu and self.fp16:
            raise ValidationFailed("fp16", "float16 mixed precision needs a GPU; set use_cpu=False or fp16=False")

    def _validate_algorithm(self) -> None:
        """Checks specific to one algorithm (overridden by the subclasses)."""

    def _validate_max_length(self, name: str = "max_length") -> None:
        self._number(name, ge=16, integer=True, optional=True)

    def peft_target_modules(self) -> str | list[str]:
        """``lora_target_modules`` in the form peft expects."""
        text = self.lora_target_modules.strip()
        return text if text == "all-linear" else [m.strip() for m in text.split(",") if m.strip()]


def _check_reward_specs(cfg: Any, name: str = "reward_funcs") -> None:
    specs = getattr(cfg, name)
    if specs is None:
        setattr(cfg, name, [])
        return
    if isinstance(specs, str):
        specs = [specs]
        setattr(cfg, name, specs)
    from workbench.train._rewards import get_reward_function

    for i, spec in enumerate(specs):
        if not isinstance(spec, str) or not spec.strip():
            raise ValidationFailed(f"{name}[{i}]", "must be a registered reward function name or 'module:function'")
        try:
            get_reward_function(spec)
        except ValidationFailed as exc:
            raise ValidationFailed(f"{name}[{i}]", exc.reason) from exc


def _check_path(cfg: Any, name: str, *, reward_model: bool = False) -> None:
    value = getattr(cfg, name)
    if value is None:
        return
    from workbench.train._models import check_reward_model, resolve_start

    if reward_model:
        check_reward_model(value, name)
    else:
        resolve_start(value, name)


@dataclass
class SFTTrainConfig(_WorkbenchOptions, SFTConfig):
    """Supervised fine-tuning on chat rows (``messages``), loss on assistant turns only."""

    learning_rate: float = 2e-4
    per_device_train_batch_size: int = 4
    max_length: int | None = field(default=512, metadata=_help("Longer conversations are truncated."))
    assistant_only_loss: bool = field(default=True, metadata=_help("Loss on assistant turns only."))

    def _validate_algorithm(self) -> None:
        self._validate_max_length()


@dataclass
class DPOTrainConfig(_WorkbenchOptions, DPOConfig):
    """Direct preference optimization on ``{prompt, chosen, rejected}`` conversations."""

    learning_rate: float = 5e-5
    per_device_train_batch_size: int = 2
    max_length: int | None = 512

    def _validate_algorithm(self) -> None:
        self._validate_max_length()
        self._number("beta", gt=0)


@dataclass
class GRPOTrainConfig(_WorkbenchOptions, GRPOConfig):
    """Group relative policy optimization with registered reward functions.

    ``per_device_train_batch_size`` counts completions (``num_generations`` per prompt), so it
    must be a multiple of ``num_generations``.
    """

    learning_rate: float = 5e-5
    per_device_train_batch_size: int = 4
    num_generations: int | None = 4
    max_completion_length: int | None = 64
    reward_funcs: list[str] = field(
        default_factory=list,
        metadata=_help("Registered reward function names or 'module:function' (added to callables passed in)."),
    )
    reward_model_path: str | None = field(
        default=None, metadata=_help("A reward model checkpoint (see the rm algorithm) used as one more reward.")
    )

    def _validate_algorithm(self) -> None:
        self._number("num_generations", ge=2, integer=True)
        self._number("max_completion_length", ge=1, integer=True)
        self._number("temperature", gt=0)
        self._number("beta", ge=0)
        self._number("num_iterations", ge=1, integer=True)
        per_step = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if self.generation_batch_size is None and self.steps_per_generation is None and per_step % self.num_generations:
            raise ValidationFailed(
                "per_device_train_batch_size",
                f"per_device_train_batch_size x gradient_accumulation_steps ({per_step}) must be a multiple of "
                f"num_generations ({self.num_generations}): it counts completions, not prompts",
            )
        _check_reward_specs(self)
        _check_path(self, "reward_model_path", reward_model=True)


@dataclass
class RFTTrainConfig(GRPOTrainConfig):
    """Reinforcement fine-tuning, GRPO variant: the reward is a verifier's score.

    The verifier callable is passed to :func:`run_training` (``verifier=``); ``reward_funcs``
    and ``reward_model_path`` add more rewards next to it (combine with ``reward_weights``).
    """

    variant: str = field(default="grpo", metadata=_help("Always 'grpo' here; see RejectionSamplingConfig."))

    def _validate_algorithm(self) -> None:
        if self.variant != "grpo":
            raise ValidationFailed("variant", "RFTTrainConfig is the 'grpo' variant; use RejectionSamplingConfig")
        super()._validate_algorithm()


@dataclass
class RejectionSamplingConfig(SFTTrainConfig):
    """Reinforcement fine-tuning, rejection-sampling variant.

    For ``rounds`` rounds: sample ``samples_per_prompt`` completions per prompt from the current
    policy, keep those whose verifier score is at least ``accept_threshold`` (distinct texts, at
    most ``max_accepted_per_prompt`` per prompt) and run SFT on them with this config's SFT
    settings (``max_steps`` / ``num_train_epochs`` apply per round). With LoRA, every round keeps
    training the same adapter, so the result is one adapter on the base model.
    """

    variant: str = field(default="rejection_sampling", metadata=_help("Always 'rejection_sampling' here."))
    rounds: int = field(default=1, metadata=_help("Sample / filter / SFT rounds."))
    samples_per_prompt: int = field(default=4, metadata=_help("Completions sampled per prompt each round (K)."))
    accept_threshold: float = field(default=1.0, metadata=_help("A completion is kept if its score is >= this."))
    max_accepted_per_prompt: int | None = field(default=2, metadata=_help("Cap per prompt, so easy prompts don't dominate."))

    def _validate_algorithm(self) -> None:
        if self.variant != "rejection_sampling":
            raise ValidationFailed("variant", "RejectionSamplingConfig is the 'rejection_sampling' variant")
        super()._validate_algorithm()
        self._number("rounds", ge=1, le=1000, integer=True)
        self._number("samples_per_prompt", ge=1, le=1024, integer=True)
        self._number("accept_threshold")
        self._number("max_accepted_per_prompt", ge=1, integer=True, optional=True)


@dataclass
class PPOTrainConfig(_WorkbenchOptions, PPOConfig):
    """PPO with a policy, a value model and a reward model (trl 1.12 ``trl.experimental.ppo``).

    ``reward_model_path`` is a sequence-classification checkpoint (for example what the ``rm``
    algorithm saves, adapter or full); the value model starts from ``value_model_path`` (default:
    the reward model, as TRL's own recipe does). When ``max_steps`` is set it fixes the number of
    PPO updates (``total_episodes = max_steps x batch``); otherwise ``num_train_epochs`` does.
    """

    learning_rate: float = 5e-5
    per_device_train_batch_size: int = 2
    num_ppo_epochs: int = 1
    num_mini_batches: int = 1
    response_length: int = 32
    max_prompt_length: int = field(default=512, metadata=_help("Longer prompts keep their last tokens."))
    stop_token: str | None = "eos"
    local_rollout_forward_batch_size: int = 8
    num_sample_generations: int = field(default=0, metadata=_help("Sample tables during training (needs eval data)."))
    missing_eos_penalty: float | None = 1.0
    reward_model_path: str | None = field(default=None, metadata=_help("Reward model checkpoint (required)."))
    sft_model_path: str | None = field(default=None, metadata=_help("Unused: the policy is run_training's model."))
    value_model_path: str | None = field(default=None, metadata=_help("Value model init; default: the reward model."))

    def _validate_algorithm(self) -> None:
        self._number("response_length", ge=1, le=4096, integer=True)
        self._number("max_prompt_length", ge=8, integer=True)
        self._number("num_ppo_epochs", ge=1, integer=True)
        self._number("num_mini_batches", ge=1, integer=True)
        self._number("kl_coef", ge=0)
        self._number("temperature", gt=0)
        self._number("missing_eos_penalty", ge=0, optional=True)
        self._number("total_episodes", ge=1, integer=True, optional=True)
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if batch % self.num_mini_batches:
            raise ValidationFailed(
                "num_mini_batches", f"the batch ({batch} episodes) must split evenly into {self.num_mini_batches}"
            )
        if self.whiten_rewards and batch // self.num_mini_batches < 8:
            raise ValidationFailed("whiten_rewards", "needs at least 8 episodes per mini-batch")
        if self.stop_token not in (None, "eos"):
            raise ValidationFailed("stop_token", "must be 'eos' or null")
        _check_path(self, "reward_model_path", reward_model=True)
        _check_path(self, "value_model_path")


@dataclass
class RewardModelConfig(_WorkbenchOptions, RewardConfig):
    """Reward model training (Bradley-Terry) on ``{prompt, chosen, rejected}`` conversations."""

    learning_rate: float = 1e-4
    per_device_train_batch_size: int = 4
    max_length: int | None = 512

    def _validate_algorithm(self) -> None:
        self._validate_max_length()
        self._number("center_rewards_coefficient", ge=0, optional=True)


TrainConfig = (
    SFTTrainConfig | DPOTrainConfig | GRPOTrainConfig | RFTTrainConfig | RejectionSamplingConfig
    | PPOTrainConfig | RewardModelConfig
)  # fmt: skip

CONFIG_CLASSES: dict[str, type] = {
    "sft": SFTTrainConfig,
    "dpo": DPOTrainConfig,
    "grpo": GRPOTrainConfig,
    "ppo": PPOTrainConfig,
    "rft": RFTTrainConfig,
    "rm": RewardModelConfig,
}
_RFT_VARIANTS = {"grpo": RFTTrainConfig, "rejection_sampling": RejectionSamplingConfig}


def _config_class(algorithm: str, hyperparams: Mapping[str, Any]) -> type:
    if algorithm == "rft":
        variant = hyperparams.get("variant", "grpo")
        if variant not in _RFT_VARIANTS:
            raise ValidationFailed("variant", f"must be one of {', '.join(_RFT_VARIANTS)}, not {variant!r}")
        return _RFT_VARIANTS[variant]
    return CONFIG_CLASSES[algorithm]


def expected_config_classes(algorithm: str) -> tuple[type, ...]:
    """The config classes that fit ``algorithm``."""
    return tuple(_RFT_VARIANTS.values()) if algorithm == "rft" else (CONFIG_CLASSES[algorithm],)


def make_config(algorithm: str, hyperparams: Mapping[str, Any] | TrainConfig | None = None, **overrides: Any) -> TrainConfig:
    """The typed config of ``algorithm`` from a hyperparameter mapping (YAML, JSON, REST) or a config.

    Unknown keys and bad values raise :class:`ValidationFailed` naming the field. A config object
    is checked to belong to the algorithm and returned as is (``overrides`` are not allowed then).
    For ``rft``, ``variant`` chooses ``grpo`` (default) or ``rejection_sampling``.
    """
    algorithm = normalize_algorithm(algorithm)
    if hyperparams is not None and not isinstance(hyperparams, Mapping):
        expected = expected_config_classes(algorithm)
        if not isinstance(hyperparams, expected):
            names = " or ".join(c.__name__ for c in expected)
            raise ValidationFailed("config", f"{algorithm} needs a {names}, not {type(hyperparams).__name__}")
        if overrides:
            raise ValidationFailed("config", "pass overrides in a mapping, not next to a config object")
        return hyperparams
    values = {**dict(hyperparams or {}), **overrides}
    cls = _config_class(algorithm, values)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in values:
        if not isinstance(key, str) or key not in known:
            raise ValidationFailed(str(key), f"unknown hyperparameter for {algorithm} ({cls.__name__})")
    try:
        return cls(**values)
    except TypeError as exc:  # a value the dataclass machinery itself refused
        raise ValidationFailed("config", str(exc)) from exc
