"""Tracking for one training run: metrics to the caller's sink and to wandb, cost, progress and stop.

:class:`RunTracker` spans a whole run (several trainers for rejection-sampling RFT): it owns the
wandb run (offline by default, under ``output_dir/wandb``), the compute-cost clock and the
history. :meth:`RunTracker.callback` gives the ``TrainerCallback`` that feeds it from one trainer.

Metric names: TRL's own names pass through unchanged, and each report also carries the
canonical ones dashboards read, where the algorithm has them: ``loss``, ``kl``,
``reward_mean``, ``reward_std``, ``learning_rate``, ``tokens_per_s``, ``eval/<name>``,
``cpu_seconds``, ``gpu_seconds`` and ``cost``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from workbench.train._metrics import canonical_metrics, is_number
from workbench.train._types import MetricsSink, ProgressFn, StopFlag

__all__ = ["RunTracker", "StopAfterSave"]

class StopAfterSave(Exception):
    """Raised from ``on_save`` for trainers whose loop ignores ``should_training_stop`` (PPO)."""


def _stop_requested(stop: StopFlag | None) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


class RunTracker:
    """Metrics, wandb, cost, progress and the stop flag for one run."""

    def __init__(
        self,
        *,
        algorithm: str,
        config: Any,
        output_dir: Path,
        metrics_sink: MetricsSink | None = None,
        progress: ProgressFn | None = None,
        stop: StopFlag | None = None,
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.algorithm = algorithm
        self.config = config
        self.output_dir = output_dir
        self.metrics_sink = metrics_sink
        self.progress_fn = progress
        self.stop = stop
        self.run_config = dict(run_config or {})
        self.history: list[dict[str, Any]] = []
        self.last: dict[str, float] = {}
        self.wandb_run: Any = None
        self.wandb_dir: Path | None = None
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()
        self._uses_gpu = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the clocks and the wandb run (unless ``wandb_mode == 'disabled'``)."""
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()
        try:
            import torch

            self._uses_gpu = bool(torch.cuda.is_available() and not self.config.use_cpu)
        except ImportError:
            self._uses_gpu = False
        if self.config.wandb_mode == "disabled":
            return
        import wandb

        root = self.output_dir / "wandb"
        root.mkdir(parents=True, exist_ok=True)
        # Everything goes through init arguments (not WANDB_* env vars): several runs may share a process.
        settings = wandb.Settings(
            mode=self.config.wandb_mode, console="off", silent=True, disable_git=True, save_code=False,
            x_disable_stats=True,
        )  # fmt: skip
        self.wandb_run = wandb.init(
            project=self.config.wandb_project,
            entity=self.config.wandb_entity,
            name=self.config.run_name or None,
            dir=str(self.output_dir),
            config={"algorithm": self.algorithm, **self.run_config, **_plain_config(self.config)},
            job_type=f"train-{self.algorithm}",
            settings=settings,
            reinit="create_new",
        )
        self.wandb_dir = Path(self.wandb_run.settings.sync_dir)

    def finish(self, status: str) -> None:
        """Close the wandb run (exit code 0 for completed and stopped runs)."""
        if self.wandb_run is not None:
            self.wandb_run.summary["status"] = status
            self.wandb_run.finish()

    @property
    def wandb_run_id(self) -> str | None:
        """The wandb run id, when wandb is on."""
        return self.wandb_run.id if self.wandb_run is not None else None

    # -- reporting ---------------------------------------------------------------------------------

    def compute(self) -> dict[str, float]:
        """CPU / GPU seconds of the run so far and their cost."""
        cpu = time.process_time() - self._cpu0
        gpu = time.perf_counter() - self._wall0 if self._uses_gpu else 0.0
        cost = cpu * self.config.cpu_price_per_second + gpu * self.config.gpu_price_per_second
        return {"cpu_seconds": cpu, "gpu_seconds": gpu, "cost": cost}

    def emit(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Send one report (plus cost figures) to the sink, wandb and the history."""
        report = {k: float(v) for k, v in metrics.items() if is_number(v)}
        report.update(self.compute())
        self.last.update(report)
        self.history.append({"step": step, **report})
        if self.wandb_run is not None:
            self.wandb_run.log(report, step=step)
        if self.metrics_sink is not None:
            self.metrics_sink(step, dict(report))

    def progress(self, step: int, max_steps: int) -> None:
        """Report progress to the caller."""
        if self.progress_fn is not None:
            self.progress_fn(int(step), int(max_steps))

    def stop_requested(self) -> bool:
        """Whether the caller asked the run to stop."""
        return _stop_requested(self.stop)

    def callback(self, *, step_offset: int = 0, total_steps: int | None = None,
                 raise_after_save: bool = False) -> _TrackerCallback:  # fmt: skip
        """A TrainerCallback feeding this tracker (steps shifted by ``step_offset``)."""
        return _TrackerCallback(self, step_offset=step_offset, total_steps=total_steps, raise_after_save=raise_after_save)


def _plain_config(config: Any) -> dict[str, Any]:
    out = {}
    for key, value in config.to_dict().items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
            out[key] = list(value)
    return out


class _TrackerCallback(TrainerCallback):
    """Feeds a :class:`RunTracker` from one trainer; checks the stop flag after every step."""

    def __init__(self, tracker: RunTracker, *, step_offset: int, total_steps: int | None, raise_after_save: bool) -> None:
        self.tracker = tracker
        self.step_offset = step_offset
        self.total_steps = total_steps
        self.raise_after_save = raise_after_save
        self.stopped = False
        self.max_steps = 0
        self.global_step = 0
        self._t_last = time.perf_counter()
        self._tokens_last: float | None = 0.0

    def _max(self, state: Any) -> int:
        return self.total_steps if self.total_steps is not None else self.step_offset + int(state.max_steps or 0)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._t_last = time.perf_counter()
        # A resumed trainer may restore a cumulative token counter: skip the first rate rather than overstate it.
        self._tokens_last = 0.0 if state.global_step == 0 else None
        self.max_steps = self._max(state)
        self.global_step = self.step_offset + state.global_step
        self.tracker.progress(self.global_step, self.max_steps)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.global_step = self.step_offset + state.global_step
        self.tracker.progress(self.global_step, self._max(state))
        if not self.stopped and self.tracker.stop_requested():
            self.stopped = True
            control.should_save = True  # a resumable checkpoint: weights, optimizer, scheduler, state
            control.should_training_stop = True
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.stopped and self.raise_after_save:
            raise StopAfterSave

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs:
            return
        metrics = canonical_metrics(logs)
        now = time.perf_counter()
        tokens = logs.get("num_tokens")
        is_train_log = not any(k.startswith("eval_") for k in logs) and "train_runtime" not in logs
        if is_train_log and is_number(tokens):
            if self._tokens_last is not None and now > self._t_last and tokens >= self._tokens_last:
                metrics["tokens_per_s"] = (tokens - self._tokens_last) / (now - self._t_last)
            self._tokens_last = float(tokens)
            self._t_last = now
        self.tracker.emit(self.step_offset + state.global_step, metrics)

