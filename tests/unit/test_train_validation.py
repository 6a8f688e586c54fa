"""Everything run_training refuses before it loads a model: bad hyperparameters, datasets of the
wrong kind, missing inputs, bad paths. Plus configs from mappings, dataset files and the light import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from train_fixtures import message, preference_rows, prompt_rows, sft_rows

from workbench.errors import ValidationFailed
from workbench.train import make_config, run_training, validate_dataset, validate_training


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    """A directory that passes the file checks; loading it would fail (and must never happen)."""
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return path


@pytest.fixture(autouse=True)
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.train import _models

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a model was loaded before validation finished")

    for name in ("load_policy", "load_sequence_classifier", "load_tokenizer", "merged_model_dir"):
        monkeypatch.setattr(_models, name, refuse)


def failure(**kwargs) -> ValidationFailed:  # noqa: ANN003
    with pytest.raises(ValidationFailed) as err:
        run_training(**kwargs)
    return err.value


# --------------------------------------------------------------------------- hyperparameters


@pytest.mark.parametrize(
    ("algorithm", "hyperparams", "field"),
    [
        ("sft", {"learning_rate": -1e-4}, "learning_rate"),
        ("sft", {"learning_rate": "fast"}, "learning_rate"),
        ("sft", {"max_steps": 0}, "max_steps"),
        ("sft", {"per_device_train_batch_size": 0}, "per_device_train_batch_size"),
        ("sft", {"lora_r": 0}, "lora_r"),
        ("sft", {"lora_dropout": 1.5}, "lora_dropout"),
        ("sft", {"max_length": 4}, "max_length"),
        ("sft", {"no_such_knob": 1}, "no_such_knob"),
        ("sft", {"report_to": ["wandb"]}, "report_to"),
        ("sft", {"wandb_mode": "sometimes"}, "wandb_mode"),
        ("sft", {"fp16": True}, "fp16"),
        ("sft", {"logging_steps": 2.5}, "logging_steps"),
        ("dpo", {"beta": 0}, "beta"),
        ("grpo", {"num_generations": 1}, "num_generations"),
        ("grpo", {"per_device_train_batch_size": 6, "num_generations": 4}, "per_device_train_batch_size"),
        ("grpo", {"reward_funcs": ["not_registered"]}, "reward_funcs[0]"),
        ("ppo", {"num_mini_batches": 3}, "num_mini_batches"),
        ("ppo", {"reward_model_path": "/nowhere"}, "reward_model_path"),
        ("ppo", {"stop_token": "<eos>"}, "stop_token"),
        ("rm", {"cpu_price_per_second": -1}, "cpu_price_per_second"),
        ("rft", {"variant": "best_of_n"}, "variant"),
        ("rft", {"variant": "rejection_sampling", "rounds": 0}, "rounds"),
    ],
)
def test_bad_hyperparameters_name_the_field(algorithm: str, hyperparams: dict, field: str, fake_model: Path,
                                            tmp_path: Path) -> None:  # fmt: skip
    rows = {"sft": sft_rows(), "dpo": preference_rows(), "rm": preference_rows()}.get(algorithm, prompt_rows())
    err = failure(algorithm=algorithm, config=hyperparams, dataset=rows, base_model_dir=fake_model,
                  output_dir=tmp_path / "out")  # fmt: skip
    assert err.field == field, err
    assert err.to_dict()["field"] == field
    assert not (tmp_path / "out").exists(), "nothing is written for a refused request"


def test_unknown_algorithm(fake_model: Path, tmp_path: Path) -> None:
    err = failure(algorithm="rlhf", dataset=sft_rows(), base_model_dir=fake_model, output_dir=tmp_path)
    assert err.field == "algorithm" and "sft" in err.reason


def test_config_objects_must_match_the_algorithm() -> None:
    config = make_config("sft", {"max_steps": 3})
    assert make_config("sft", config) is config
    with pytest.raises(ValidationFailed) as err:
        make_config("dpo", config)
    assert err.value.field == "config"


def test_make_config_builds_typed_configs_with_cpu_defaults() -> None:
    from trl import GRPOConfig, SFTConfig

    from workbench.train import GRPOTrainConfig, RejectionSamplingConfig

    sft = make_config("sft", {"learning_rate": 1e-4})
    assert isinstance(sft, SFTConfig) and sft.learning_rate == 1e-4
    assert (sft.use_cpu, sft.bf16, sft.fp16, sft.gradient_checkpointing) == (True, False, False, False)
    assert (sft.dataloader_num_workers, sft.dataloader_pin_memory, sft.report_to) == (0, False, [])
    assert sft.assistant_only_loss and sft.use_lora and sft.lora_r == 16 and sft.lora_target_modules == "all-linear"
    assert sft.wandb_mode == "offline"
    grpo = make_config("grpo", reward_funcs="tool_call_format")
    assert isinstance(grpo, GRPOTrainConfig) and isinstance(grpo, GRPOConfig) and grpo.reward_funcs == ["tool_call_format"]
    rs = make_config("rft", {"variant": "rejection_sampling", "rounds": 3})
    assert isinstance(rs, RejectionSamplingConfig) and isinstance(rs, SFTConfig) and rs.rounds == 3
    assert make_config("reward_model").__class__.__name__ == "RewardModelConfig"
    full = make_config("sft", {"use_lora": False, "gradient_checkpointing": True})
    assert not full.use_lora and full.gradient_checkpointing


# --------------------------------------------------------------------------- datasets


@pytest.mark.parametrize(
    ("algorithm", "rows", "field", "hint"),
    [
        ("dpo", sft_rows(), "dataset[0].prompt", "sft dataset"),
        ("rm", prompt_rows(), "dataset[0].chosen", "rl_prompts"),
        ("sft", preference_rows(), "dataset[0].messages", "preference dataset"),
        ("sft", prompt_rows(), "dataset[0].messages", "rl_prompts"),
        ("grpo", sft_rows(), "dataset[0].prompt", "sft dataset"),
        ("grpo", preference_rows(), "dataset[0]", "preference dataset"),
        ("ppo", [{"steps": []}], "dataset[0].prompt", "trajectories"),
    ],
)
def test_datasets_of_the_wrong_kind_are_refused(algorithm: str, rows: list, field: str, hint: str, fake_model: Path,
                                                tmp_path: Path) -> None:  # fmt: skip
    config = {"reward_model_path": None} if algorithm == "ppo" else None
    err = failure(algorithm=algorithm, config=config, dataset=rows, base_model_dir=fake_model, output_dir=tmp_path)
    assert err.field == field and hint in err.reason


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([message("user", "hi")], "dataset[0].messages"),  # nothing to learn
        ([message("robot", "hi"), message("assistant", "yo")], "dataset[0].messages[0].role"),
        ([message("user", 42), message("assistant", "yo")], "dataset[0].messages[0].content"),
        ([message("user", "hi"), message("assistant", "", tool_calls=[{"function": {"name": "calc", "arguments": "{oops"}}])],
         "dataset[0].messages[1].tool_calls[0].function.arguments"),
        ([message("user", "hi"), message("assistant", "", tool_calls=[{"function": {"arguments": "{}"}}])],
         "dataset[0].messages[1].tool_calls[0].function.name"),
        ("hello", "dataset[0].messages"),
    ],
)
def test_bad_messages_name_the_row_and_field(messages, field: str) -> None:  # noqa: ANN001
    with pytest.raises(ValidationFailed) as err:
        validate_dataset("sft", [{"messages": messages}])
    assert err.value.field == field


def test_prompts_must_not_end_with_the_assistant_turn() -> None:
    rows = [{"prompt": [message("user", "q"), message("assistant", "a")]}]
    with pytest.raises(ValidationFailed) as err:
        validate_dataset("grpo", rows)
    assert err.value.field == "dataset[0].prompt[1].role"


def test_mixed_column_types_are_refused_by_name() -> None:
    rows = [{**prompt_rows()[0], "answer": "5"}, {**prompt_rows()[1], "answer": {"value": 9}}]
    with pytest.raises(ValidationFailed) as err:
        validate_dataset("grpo", rows)
    assert err.value.field == "dataset.answer"


def test_empty_and_missing_datasets(tmp_path: Path) -> None:
    for source, reason in (([], "is empty"), (tmp_path / "none.jsonl", "no dataset file"), (42, "must be")):
        with pytest.raises(ValidationFailed) as err:
            validate_dataset("sft", source)
        assert err.value.field == "dataset" and reason in err.value.reason


def test_rows_are_normalized_through_the_tool_protocol() -> None:
    row = validate_dataset("sft", sft_rows()[:1])[0]
    assert list(row) == ["messages"]
    assert all(set(m) == {"role", "content"} for m in row["messages"])
    call = json.loads(row["messages"][1]["content"])  # the structured tool call became the taught JSON text
    assert call == {"tool": "calculator", "arguments": {"expression": "2+3"}}
    assert row["messages"][2] == {"role": "tool", "content": "5"}
    rl = validate_dataset("grpo", prompt_rows()[:1])[0]
    assert rl["answer"] == "5" and rl["scenario_id"] == "calc-0"


def test_dataset_files_jsonl_and_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from workbench.data.conversion import SCHEMAS

    rows = sft_rows()
    jsonl = tmp_path / "sft.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows))
    parquet = tmp_path / "sft.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS["sft"]), parquet)
    assert validate_dataset("sft", jsonl) == validate_dataset("sft", parquet) == validate_dataset("sft", rows)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json")
    with pytest.raises(ValidationFailed) as err:
        validate_dataset("sft", bad)
    assert "cannot read" in err.value.reason
    with pytest.raises(ValidationFailed):
        validate_dataset("sft", tmp_path / "rows.csv")


# --------------------------------------------------------------------------- inputs per algorithm


def test_inputs_each_algorithm_needs(fake_model: Path, tmp_path: Path) -> None:
    def field(**kwargs) -> str:  # noqa: ANN003
        return failure(base_model_dir=fake_model, output_dir=tmp_path / "out", **kwargs).field

    assert field(algorithm="grpo", dataset=prompt_rows()) == "reward_funcs"
    assert field(algorithm="ppo", dataset=prompt_rows()) == "reward_model_path"
    assert field(algorithm="rft", dataset=prompt_rows()) == "verifier"
    rs = {"variant": "rejection_sampling"}
    assert field(algorithm="rft", config=rs, dataset=prompt_rows(), verifier=lambda r, t: 1.0) == "sampler"
    assert field(algorithm="rft", config=rs, dataset=prompt_rows(), verifier=lambda r, t: 1.0,
                 sampler=lambda p, k: [], resume_from=tmp_path) == "resume_from"  # fmt: skip
    assert field(algorithm="sft", dataset=sft_rows(), reward_funcs=["exact_answer"]) == "reward_funcs"
    assert field(algorithm="sft", dataset=sft_rows(), verifier=lambda r, t: 1.0) == "verifier"
    assert field(algorithm="grpo", dataset=prompt_rows(), reward_funcs=["nope"]) == "reward_funcs[0]"
    assert field(algorithm="grpo", config={"reward_weights": [1.0, 2.0]}, dataset=prompt_rows(),
                 reward_funcs=["exact_answer"]) == "reward_weights"  # fmt: skip
    assert field(algorithm="sft", dataset=sft_rows(), resume_from=tmp_path) == "resume_from"
    assert field(algorithm="sft", dataset=None) == "dataset"
    assert field(algorithm="sft", dataset=sft_rows(), eval_dataset=preference_rows()) == "eval_dataset[0].messages"
    assert failure(algorithm="sft", dataset=sft_rows(), base_model_dir=tmp_path / "nothing",
                   output_dir=tmp_path).field == "base_model_dir"  # fmt: skip
    assert failure(algorithm="sft", dataset=sft_rows(), base_model_dir=fake_model).field == "output_dir"


def test_adapter_start_needs_its_base_on_disk(tmp_path: Path, fake_model: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/gone"}))
    with pytest.raises(ValidationFailed) as err:
        validate_training("sft", None, sft_rows(), adapter)
    assert err.value.field == "base_model_dir" and "/gone" in err.value.reason
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(fake_model)}))
    algorithm, config, rows, eval_rows = validate_training("sft", None, sft_rows(), adapter)
    assert (algorithm, len(rows), eval_rows) == ("sft", 4, None)


def test_importing_workbench_train_is_light() -> None:
    code = (
        "import sys, workbench.train as t; t.reward_function; t.run_training;"
        "print(','.join(m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets', 'wandb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
