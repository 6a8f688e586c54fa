"""What every algorithm runner gets (:class:`Job`) and the common way to drive a TRL trainer.

The algorithm modules (``_sft``, ``_dpo``, ...) build a trainer from a :class:`Job`;
:func:`drive` trains it with the tracking callback, handles stop (a resumable checkpoint, status
``stopped``) and resume, and saves the final model (adapter or full weights, with the tokenizer).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from workbench.train._models import StartModel
from workbench.train._tracking import RunTracker, StopAfterSave
from workbench.train._types import TrainingStatus

__all__ = ["Job", "Outcome", "drive", "latest_checkpoint"]


@dataclasses.dataclass
class Job:
    """One validated training request, ready to run."""

    algorithm: str
    config: Any  # the algorithm's workbench config (already copied; output_dir set)
    rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]] | None
    start: StartModel
    output_dir: Path
    tracker: RunTracker
    resume_from: Path | None = None
    reward_funcs: Sequence[Callable[..., Any]] = ()
    verifier: Callable[..., float] | None = None
    sampler: Callable[..., Any] | None = None
    callbacks: Sequence[Any] = ()
    timing: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def checkpoints_dir(self) -> Path:
        """Where the trainer writes its resumable ``checkpoint-N`` folders."""
        return self.output_dir / "checkpoints"

    @property
    def final_dir(self) -> Path:
        """Where the final model goes."""
        return self.output_dir / "final"


@dataclasses.dataclass
class Outcome:
    """What an algorithm runner reports back to :func:`run_training`."""

    status: TrainingStatus
    global_step: int
    max_steps: int
    final_dir: Path | None
    checkpoint_dir: Path | None
    adapter: bool
    rounds: list[Any] | None = None


def latest_checkpoint(directory: Path) -> Path | None:
    """The complete ``checkpoint-N`` folder with the largest N, if any.

    The trainer writes ``trainer_state.json`` last, so a folder without it was cut off mid-save
    (a killed process) and cannot be resumed from.
    """
    found = [p for p in directory.glob("checkpoint-*")
             if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def datasets_from(rows: list[dict[str, Any]] | None) -> Any:
    """A ``datasets.Dataset`` from validated rows (None stays None)."""
    if rows is None:
        return None
    from datasets import Dataset

    return Dataset.from_list(rows)


def _quiet_printer(trainer: Any) -> None:
    # With disable_tqdm the Trainer prints every log dict; the tracker reports them instead.
    from transformers.trainer_callback import PrinterCallback

    if trainer.args.disable_tqdm:
        trainer.remove_callback(PrinterCallback)


def is_peft(model: Any) -> bool:
    """Whether ``model`` is a peft model (a LoRA adapter is being trained)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def drive(job: Job, trainer: Any, *, step_offset: int = 0, total_steps: int | None = None,
          final_dir: Path | None = None) -> Outcome:  # fmt: skip
    """Train ``trainer`` to the end or to a stop; save the final model when it completes."""
    callback = job.tracker.callback(step_offset=step_offset, total_steps=total_steps)
    trainer.add_callback(callback)
    for extra in job.callbacks:
        trainer.add_callback(extra)
    _quiet_printer(trainer)

    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(job.resume_from) if job.resume_from else None)
    job.timing["train"] = job.timing.get("train", 0.0) + time.perf_counter() - started
    adapter = is_peft(trainer.model)
    global_step = step_offset + trainer.state.global_step
    max_steps = total_steps if total_steps is not None else step_offset + trainer.state.max_steps
    checkpoints = Path(trainer.args.output_dir)
    if callback.stopped:
        checkpoint = checkpoints / f"checkpoint-{trainer.state.global_step}"
        return Outcome("stopped", global_step, max_steps, None, checkpoint, adapter)

    started = time.perf_counter()
    target = final_dir or job.final_dir
    trainer.save_model(str(target))
    trainer.processing_class.save_pretrained(str(target))
    job.timing["save"] = job.timing.get("save", 0.0) + time.perf_counter() - started
    return Outcome("completed", global_step, max_steps, target, latest_checkpoint(checkpoints), adapter)


def drive_raising(job: Job, trainer: Any, train: Callable[[], Any]) -> bool:
    """Run ``train()`` for trainers that stop by raising :class:`StopAfterSave`; True if stopped."""
    started = time.perf_counter()
    try:
        train()
        return False
    except StopAfterSave:
        return True
    finally:
        job.timing["train"] = job.timing.get("train", 0.0) + time.perf_counter() - started
