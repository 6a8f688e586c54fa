"""Dataset files load in pandas and with Hugging Face ``datasets``; SFT rows render with a chat template."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from workbench.client import EmbeddedClient
from workbench.data.synthetic import synthetic_events

pytestmark = pytest.mark.integration


@pytest.fixture
def client(services):
    wb = EmbeddedClient(services, "loaders")
    results = wb.events.log(synthetic_events(30, seed=3))
    assert all(r.status.value == "accepted" for r in results)
    return wb


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
@pytest.mark.parametrize("kind", ["sft", "preference", "rl_prompts", "trajectories"])
def test_every_kind_and_format_loads(client, services, kind, fmt):
    from datasets import load_dataset

    dataset = client.datasets.create(f"{kind}-{fmt}", kind, {"tags": ["demo"]}, fmt)
    frame = dataset.to_pandas()
    assert len(frame) == dataset.info.rows > 0
    path = services.artifacts.uri(f"datasets/{client.tenant_id}/{dataset.id}/data.{fmt}")
    hf = load_dataset("parquet" if fmt == "parquet" else "json", data_files=path, split="train")
    assert hf.num_rows == dataset.info.rows
    expected = {"sft": "messages", "preference": "chosen", "rl_prompts": "prompt", "trajectories": "steps"}[kind]
    assert expected in hf.column_names
    if fmt == "parquet":
        assert isinstance(pd.read_parquet(path), pd.DataFrame)


def test_sft_rows_render_through_a_chat_template(client, services):
    """What SFTTrainer does with a conversational row: apply the tokenizer's chat template."""
    from datasets import load_dataset
    from jinja2 import Template

    dataset = client.datasets.create("sft-template", "sft", {"success": True})
    path = services.artifacts.uri(f"datasets/{client.tenant_id}/{dataset.id}/data.parquet")
    row = load_dataset("parquet", data_files=path, split="train")[0]
    template = Template(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
        "{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name }}({{ c.function.arguments }}){% endfor %}{% endif %}"
        "<|im_end|>\n{% endfor %}"
    )
    text = template.render(messages=row["messages"])
    assert "<|im_start|>assistant" in text and "calculator(" in text
    assert re.search(r"<[A-Z_]+>", text), "the user turn keeps its PII placeholder"
