"""Oracle for scenarios/cartpole.yaml: push the cart under the falling pole."""

import json


def policy(observation: str, info: dict) -> dict:
    """Read the observation line and push towards where the pole is heading."""
    line = next(l for l in observation.splitlines() if l.startswith("observation: "))
    _, _, angle, angular_velocity = json.loads(line.removeprefix("observation: "))
    return {"tool": "act", "arguments": {"action": 1 if angle + 0.5 * angular_velocity > 0 else 0}}
