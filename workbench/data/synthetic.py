"""Seeded synthetic agent trajectories with personal data in them, for the demo, benchmarks and tests.

Each run is a support-desk task: the user (with a name, email, phone or street address)
asks for an order total; the agent calls a calculator tool and answers; a reward event
records success. About a third of the runs fail.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

_FIRST = ["Alice", "Bob", "Maria", "Wei", "Fatima", "John", "Olga", "Carlos", "Priya", "Tom"]
_LAST = ["Johnson", "Garcia", "Chen", "Smith", "Okafor", "Novak", "Rossi", "Patel", "Müller", "Brown"]
_STREETS = ["Maple Street", "Oak Avenue", "Pine Road", "Elm Drive", "Cedar Lane"]
_CITIES = ["Boston", "Madrid", "Berlin", "Toronto", "Chicago"]


def _contact(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    pick = rng.randrange(4)
    if pick == 0:
        return f"I am {first} {last}, email {first.lower()}.{last.lower()}@example.com."
    if pick == 1:
        return f"This is {first} {last}, call me at +1 617-555-{rng.randrange(1000, 9999)}."
    if pick == 2:
        return f"Ship it to {first} {last}, {rng.randrange(1, 999)} {rng.choice(_STREETS)}, {rng.choice(_CITIES)}."
    return f"My account is {first.lower()}{rng.randrange(100)} and my key is sk-{uuid.UUID(int=rng.getrandbits(128)).hex}."


def synthetic_run(
    rng: random.Random, *, index: int, contact: str, start: datetime, agent_version: str = "demo-agent@1"
) -> list[dict[str, Any]]:
    """The events of one run of task ``index``, in order."""
    run_id = f"run-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
    scenario = f"orders/task-{index:03d}"
    qty, price = index % 7 + 2, index % 5 * 3 + 4
    expected = qty * price
    success = rng.random() > 0.35
    answer = expected if success else expected + rng.choice([-3, 1, 5])
    base = dict(run_id=run_id, env_id="orders-v1", scenario_id=scenario, agent_version=agent_version, tags=["demo", "support"])
    ts = start

    def event(kind: str, step: int, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
        nonlocal ts
        ts += timedelta(milliseconds=rng.randrange(50, 400))
        return {"event_id": str(uuid.UUID(int=rng.getrandbits(128))), "kind": kind, "ts": ts.isoformat(), "step": step,
                "payload": payload, **base, **extra}

    expression = f"{qty} * {price}"
    return [
        event("environment_observation", 0, {
            "observation": f"{contact} How much do {qty} items at ${price} each cost in total?",
            "instructions": "Answer the customer's question; use the calculator tool for arithmetic.",
        }),
        event("agent_action", 1, {"tool": "calculator", "arguments": {"expression": expression},
                                  "text": f'{{"tool": "calculator", "arguments": {{"expression": "{expression}"}}}}'}),
        event("tool_call", 1, {"name": "calculator", "arguments": {"expression": expression}}),
        event("tool_result", 1, {"name": "calculator", "content": str(expected if success else answer)}),
        event("agent_action", 2, {"answer": answer, "text": f'{{"answer": {answer}}}'}),
        event("reward", 2, {"success": success, "score": 1.0 if success else 0.0, "expected": expected},
              reward=1.0 if success else 0.0),
    ]


def synthetic_events(
    runs: int, *, seed: int = 0, tasks: int = 20, agent_version: str = "demo-agent@1"
) -> list[dict[str, Any]]:
    """Events of ``runs`` runs (six events each) over ``tasks`` distinct tasks, deterministic for a seed.

    Runs of the same task share the customer and the prompt (so preference pairs exist); pass
    ``tasks=runs`` for all-distinct texts, as a benchmark that must not profit from caching does.
    """
    rng = random.Random(seed)
    contacts = [_contact(rng) for _ in range(tasks)]
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seed)
    events: list[dict[str, Any]] = []
    for i in range(runs):
        task = i % tasks
        events.extend(synthetic_run(rng, index=task, contact=contacts[task], start=start + timedelta(minutes=i),
                                    agent_version=agent_version))
    return events
