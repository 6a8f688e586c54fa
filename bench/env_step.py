"""Environment step latency, in-process: p50/p99 per step without agent time, next to baselines.

    python bench/env_step.py            # everything (needs /usr/bin/chromium for the browser rows)
    python bench/env_step.py --quick    # fewer repetitions
    python bench/env_step.py --only text,sandbox

Each measurement is one function returning :class:`Row`s; the actions are precomputed, so the
figures are environment time only. Baselines are measured in the same run: a bare in-process
call of the same tool or checker function, and for the HTTP rows a GET /healthz round trip to
the same server. Targets (issue 3): text/api p50 < 5 ms and p99 < 50 ms in-process, p50 < 20 ms
over HTTP; browser p50 < 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import workbench.envs as envs  # noqa: E402
from workbench.envs.families import calculator, inventory  # noqa: E402

SCENARIOS = ROOT / "scenarios"


@dataclass
class Row:
    """One line of the table."""

    section: str
    name: str
    samples: list[float]  # milliseconds
    baseline: str = ""
    baseline_ms: float | None = None
    target: str = ""

    def p(self, q: float) -> float:
        data = sorted(self.samples)
        return data[min(len(data) - 1, int(q * len(data)))]


def _timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _long(scenario: envs.Scenario, steps: int) -> envs.Scenario:
    """The scenario with room for ``steps`` tool calls in one run."""
    limits = scenario.limits.model_copy(update={"max_steps": steps + 5, "max_tool_calls": steps + 5,
                                                "run_timeout_s": 3600, "cpu_s": 600})
    return scenario.model_copy(update={"limits": limits, "check_on": "answer"}).with_base_dir(scenario.base_dir)


def _step_samples(scenario: envs.Scenario, actions: list[dict], warmup: int = 5) -> list[float]:
    env = envs.make(scenario)
    env.reset()
    samples = []
    for i, action in enumerate(actions):
        start = time.perf_counter()
        env.step(action)
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1000)
    env.close()
    return samples


# ----------------------------------------------------------------------------- measurements


def measure_text(n: int) -> list[Row]:
    """calculator: a tool step (the tool runs in the sandbox) and the final answer (Python checker)."""
    task = envs.get_family("calculator").generate("test", count=1)[0]
    scenario = _long(task, n)
    expression = task.metadata["expression"]
    samples = _step_samples(scenario, [{"tool": "calculator", "arguments": {"expression": expression}}] * n)
    bare = _timed(lambda: calculator.calculator(None, expression), n)
    answers = []
    for i in range(max(20, n // 20)):
        env = envs.make(task)
        env.reset()
        env.step({"tool": "calculator", "arguments": {"expression": expression}})
        start = time.perf_counter()
        env.step({"answer": task.metadata["expected"]})
        answers.append((time.perf_counter() - start) * 1000)
        env.close()
    return [
        Row("in-process", "text: tool step (sandboxed tool)", samples, "bare calculator() call",
            statistics.median(bare), "p50 < 5, p99 < 50"),
        Row("in-process", "text: answer step (sandboxed checker)", answers, "", None, "p50 < 5, p99 < 50"),
    ]


def measure_api(n: int) -> list[Row]:
    """inventory: stateful tool steps (state goes to the sandbox and back) and a YAML-rule answer."""
    task = next(t for t in envs.get_family("inventory").generate("test", count=20) if "Restock" in t.instructions)
    scenario = _long(task, n)
    sku = sorted(task.initial_state["items"])[0]
    actions = [{"tool": "restock", "arguments": {"sku": sku, "qty": 1}} if i % 2 else
               {"tool": "list_items", "arguments": {}} for i in range(n)]
    samples = _step_samples(scenario, actions)

    class Ctx:
        state = {"items": {k: dict(v) for k, v in task.initial_state["items"].items()}}

    bare = _timed(lambda: inventory.restock(Ctx, sku, 1), n)
    answers = []
    for _ in range(max(20, n // 20)):
        env = envs.make(task)
        env.reset()
        start = time.perf_counter()
        env.step({"answer": "done"})
        answers.append((time.perf_counter() - start) * 1000)
        env.close()
    return [
        Row("in-process", "api: tool step (sandboxed, stateful)", samples, "bare restock() call",
            statistics.median(bare), "p50 < 5, p99 < 50"),
        Row("in-process", "api: answer step (YAML rules)", answers, "", None, "p50 < 5, p99 < 50"),
    ]


def measure_sandbox(n: int) -> list[Row]:
    """One checker call through the sandbox worker vs the same function called directly."""
    from workbench.envs.families.calculator import numeric_answer

    class Ctx:
        answer = "The answer is 42"

    bare = _timed(lambda: numeric_answer(Ctx, expected=42), n)
    ref = "workbench.envs.families.calculator:numeric_answer"
    with envs.Sandbox() as sandbox:
        sandbox.ping()
        calls = _timed(lambda: sandbox.call("checker", ref, ctx={"answer": "The answer is 42"},
                                            kwargs={"expected": 42}), n)
    starts = []
    for _ in range(max(10, n // 50)):
        with envs.Sandbox() as sandbox:
            start = time.perf_counter()
            sandbox.ping()
            starts.append((time.perf_counter() - start) * 1000)
    return [
        Row("sandbox", "checker call in the run's worker", calls, "bare numeric_answer() call",
            statistics.median(bare), "overhead per call"),
        Row("sandbox", "worker start (forkserver) + first call", starts, "", None, "once per run"),
    ]


def measure_reset(n: int) -> list[Row]:
    """reset() of a text scenario (includes forking the run's sandbox worker)."""
    task = envs.get_family("calculator").generate("test", count=1)[0]
    samples = []
    for _ in range(max(20, n // 20)):
        env = envs.make(task)
        start = time.perf_counter()
        env.reset()
        samples.append((time.perf_counter() - start) * 1000)
        env.close()
    return [Row("in-process", "text: reset", samples, "", None, "")]


def measure_browser(n: int) -> list[Row]:
    """forms: fill and select steps in Chromium (action, settle, DOM text snapshot, checker)."""
    import os

    if not os.path.exists("/usr/bin/chromium"):
        return []
    task = next(t for t in envs.load_family(SCENARIOS / "forms.yaml").generate("test", count=20) if "signup" in t.tags)
    scenario = _long(task, n)
    actions = []
    for i in range(n):
        if i % 3 == 2:
            actions.append({"tool": "select", "arguments": {"selector": "#plan", "value": ["free", "pro", "team"][i % 3]}})
        else:
            actions.append({"tool": "fill", "arguments": {"selector": "#full_name", "value": f"Name {i}"}})
    samples = _step_samples(scenario, actions, warmup=3)
    resets = []
    for _ in range(max(5, n // 20)):
        env = envs.make(task)
        start = time.perf_counter()
        env.reset()
        resets.append((time.perf_counter() - start) * 1000)
        env.close()
    return [
        Row("in-process", "browser: fill/select step", samples, "", None, "p50 < 300"),
        Row("in-process", "browser: reset (new context + page load)", resets, "", None, ""),
    ]


def measure_http(n: int) -> list[Row]:
    """The text and api tool steps through POST /runs/{id}/step of a real server, next to GET /healthz."""
    import tempfile

    import httpx

    from tests.conftest import LiveServer

    home = Path(tempfile.mkdtemp(prefix="bench-env-http-")) / "home"
    home.mkdir()
    server = LiveServer(home).start()
    rows = []
    try:
        key = server.tenant("bench")["api_key"]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            health = _timed(lambda: client.get("/healthz"), n)
            calc = envs.get_family("calculator").generate("test", count=1)[0]
            inv = next(t for t in envs.get_family("inventory").generate("test", count=20) if "Restock" in t.instructions)
            sku = sorted(inv.initial_state["items"])[0]
            for label, task, action in (
                ("text: tool step over HTTP", calc, {"tool": "calculator", "arguments": {"expression": calc.metadata["expression"]}}),
                ("api: tool step over HTTP", inv, {"tool": "restock", "arguments": {"sku": sku, "qty": 1}}),
            ):
                scenario = client.post("/scenarios", json=_long(task, n + 10).spec()).json()
                run = client.post("/runs", json={"scenario_id": scenario["id"]}).json()
                for _ in range(5):
                    client.post(f"/runs/{run['run_id']}/step", json={"action": action})
                samples = _timed(lambda: client.post(f"/runs/{run['run_id']}/step", json={"action": action}), n)
                rows.append(Row("http", label, samples, "GET /healthz round trip", statistics.median(health), "p50 < 20"))
    finally:
        server.stop()
    return rows


MEASUREMENTS: dict[str, Callable[[int], list[Row]]] = {
    "text": measure_text,
    "api": measure_api,
    "sandbox": measure_sandbox,
    "reset": measure_reset,
    "browser": measure_browser,
    "http": measure_http,
}


def print_table(rows: list[Row]) -> None:
    """The figures as a fixed-width table."""
    header = f"{'section':<11} {'measurement':<42} {'n':>5} {'p50 ms':>9} {'p99 ms':>9}  {'baseline (same run)':<28} {'p50 ms':>8}  target"
    print(header)
    print("-" * len(header))
    for row in rows:
        base = f"{row.baseline_ms:8.4f}" if row.baseline_ms is not None else " " * 8
        print(f"{row.section:<11} {row.name:<42} {len(row.samples):>5} {row.p(0.5):>9.3f} {row.p(0.99):>9.3f}  "
              f"{row.baseline:<28} {base}  {row.target}")


def main(argv: list[str] | None = None) -> int:
    """Run the selected measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(MEASUREMENTS))
    args = parser.parse_args(argv)
    n = 200 if args.quick else 1000
    chosen = [name for name in (args.only.split(",") if args.only else MEASUREMENTS) if name]
    rows: list[Row] = []
    for name in chosen:
        count = n // 5 if name in ("browser", "http") else n
        rows.extend(MEASUREMENTS[name](count))
    print_table(rows)
    envs.default_browser_host().close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
