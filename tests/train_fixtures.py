"""Shared fixtures and helpers for the training tests (tests/model/test_train_*, tests/unit/test_train_*).

Test modules import what they use from here; pytest picks up fixtures imported into a module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# Keep every training run in the tests on one thread: on a shared 2-core machine two torch
# threads were measured 4-8x slower than one (OpenMP threads spinning against other processes).
FAST = {"num_threads": 1, "save_strategy": "no", "max_steps": 2}


def message(role: str, content: str | None, **extra: Any) -> dict[str, Any]:
    """A message with every field the Data Factory writes (null when unused)."""
    return {"role": role, "content": content, "name": None, "tool_call_id": None, "tool_calls": None} | extra


def calculator_chat(a: int, b: int) -> dict[str, Any]:
    """An SFT row as the Data Factory writes it: a tool call (JSON-string arguments), its result, the answer."""
    call = {"id": "c1", "type": "function",
            "function": {"name": "calculator", "arguments": json.dumps({"expression": f"{a}+{b}"})}}  # fmt: skip
    return {
        "messages": [
            message("user", f"What is {a}+{b}?"),
            message("assistant", "", tool_calls=[call]),
            message("tool", str(a + b), name="calculator", tool_call_id="c1"),
            message("assistant", json.dumps({"answer": str(a + b)})),
        ],
        "run_id": f"run-{a}-{b}",
        "scenario_id": "calc",
        "success": True,
        "reward": 1.0,
    }


PAIRS = [(2, 3), (4, 5), (6, 7), (1, 8)]


def sft_rows() -> list[dict[str, Any]]:
    """Four chat rows."""
    return [calculator_chat(a, b) for a, b in PAIRS]


def preference_rows() -> list[dict[str, Any]]:
    """Four preference rows (the right answer is chosen)."""
    return [
        {"prompt": [message("user", f"What is {a}+{b}?")], "chosen": [message("assistant", str(a + b))],
         "rejected": [message("assistant", "I do not know.")], "scenario_id": "calc"}
        for a, b in PAIRS
    ]  # fmt: skip


def prompt_rows() -> list[dict[str, Any]]:
    """Four RL prompt rows with extra columns (answer, scenario_id) for reward functions."""
    return [
        {"prompt": [message("user", f"What is {a}+{b}? Reply with the number.")], "answer": str(a + b),
         "scenario_id": f"calc-{i}"}
        for i, (a, b) in enumerate(PAIRS)
    ]  # fmt: skip


@pytest.fixture(scope="session")
def train_base_model(base_model_dir: Path) -> Path:
    """The session's converted base model (see tests/conftest.py)."""
    return base_model_dir


class Recorder:
    """Collects metrics_sink and progress calls."""

    def __init__(self) -> None:
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.progress: list[tuple[int, int]] = []

    def sink(self, step: int, metrics: dict[str, float]) -> None:
        self.metrics.append((step, metrics))

    def on_progress(self, step: int, max_steps: int) -> None:
        self.progress.append((step, max_steps))

    def values(self, name: str) -> list[float]:
        """Every reported value of one metric."""
        return [m[name] for _, m in self.metrics if name in m]


def weight_probe() -> Any:
    """A TrainerCallback that copies one trainable LoRA tensor when training starts and after each step."""
    from transformers import TrainerCallback

    class WeightProbe(TrainerCallback):
        def __init__(self) -> None:
            self.name: str | None = None
            self.before = None
            self.after = None

        def _tensor(self, model: Any) -> Any:
            params = dict(model.named_parameters())
            if self.name is None:
                self.name = next((n for n, p in params.items() if p.requires_grad and "lora_B" in n), None)
            if self.name not in params:
                raise AssertionError(f"no trainable LoRA tensor {self.name!r} in {type(model).__name__}: {list(params)[:3]}")
            return params[self.name].detach().clone()

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            self.before = self._tensor(model)

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            self.after = self._tensor(model)  # also covers runs that stop (PPO ends by raising after the save)

        def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            self.after = self._tensor(model)

        @property
        def changed(self) -> bool:
            assert self.before is not None and self.after is not None, "the probe did not run"
            return not bool((self.before == self.after).all())

    return WeightProbe()


def saved_lora_is_trained(adapter_dir: Path) -> bool:
    """True when a saved adapter's lora_B tensors are not all zero (peft initializes them to zero)."""
    from safetensors.torch import load_file

    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    lora_b = [t for name, t in tensors.items() if "lora_B" in name]
    assert lora_b, f"no lora_B tensors in {adapter_dir}"
    return any(bool(t.abs().sum() > 0) for t in lora_b)
