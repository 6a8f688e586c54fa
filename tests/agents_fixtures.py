"""Shared helpers and fixtures for the agents tests (tests/unit and tests/model).

Test modules import what they use from here; pytest picks up fixtures imported into a module.
"""

from __future__ import annotations

import ast
import json
import operator
from pathlib import Path

import pytest

from workbench.agents import ToolCall, ToolExample, ToolSpec

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate an arithmetic expression.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
    examples=[
        ToolExample(question="What is 2+3?", arguments={"expression": "2+3"}, result="5", answer="5"),
        ToolExample(question="What is 7*6?", arguments={"expression": "7*6"}, result="42", answer="42"),
        ToolExample(question="How much is 10 minus 4?", arguments={"expression": "10-4"}, result="6", answer="6"),
    ],
)

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
}


def evaluate(expression: str) -> float | int:
    """Arithmetic only (numbers, + - * / **, parentheses); anything else raises ValueError."""

    def walk(node: ast.AST) -> float | int:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))
        raise ValueError(f"not arithmetic: {ast.dump(node)[:60]}")

    return walk(ast.parse(expression, mode="eval"))


def calculator(call: ToolCall) -> str:
    """The calculator tool: a ToolFn for run_agent_loop."""
    value = evaluate(str(call.arguments["expression"]))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


@pytest.fixture(scope="session")
def transformers_engine(base_model_dir: Path):
    """One in-process engine on the base model, shared by the session's model tests."""
    from workbench.agents import TransformersEngine, TransformersEngineConfig

    engine = TransformersEngine(TransformersEngineConfig(model_path=base_model_dir))
    yield engine
    engine.close()


def write_lora_adapter(path: Path, base_model: Path, rank: int = 8, seed: int = 0, scale: float = 0.2) -> Path:
    """A PEFT-format LoRA adapter (q_proj, v_proj of every layer) with random weights, written
    without peft: enough for a server to load it and for its outputs to differ from the base."""
    import torch
    from safetensors.torch import save_file

    config = json.loads((base_model / "config.json").read_text())
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    kv_out = config["num_key_value_heads"] * config.get("head_dim", hidden // config["num_attention_heads"])
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for i in range(layers):
        for module, out_features in (("q_proj", hidden), ("v_proj", kv_out)):
            prefix = f"base_model.model.model.layers.{i}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, hidden, generator=generator) * scale
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(out_features, rank, generator=generator) * scale
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / "adapter_model.safetensors"))
    adapter_config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank, "lora_dropout": 0.0,
        "target_modules": ["q_proj", "v_proj"], "bias": "none", "fan_in_fan_out": False,
        "base_model_name_or_path": str(base_model), "modules_to_save": None,
    }  # fmt: skip
    (path / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    return path
