"""Checking a tool call's arguments against the tool's JSON Schema (the subset tools use).

Covers type, required, properties, additionalProperties, enum, items, minimum/maximum,
minLength/maxLength. An agent's bad call becomes an error observation, not a crash.
"""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


def _type_ok(value: Any, expected: str | list[str]) -> bool:
    names = expected if isinstance(expected, list) else [expected]
    for name in names:
        py = _TYPES.get(name)
        if py is None:
            return True  # unknown type keyword: do not reject
        if isinstance(value, bool) and name in ("integer", "number"):
            continue
        if name == "integer" and isinstance(value, float) and value.is_integer():
            return True
        if isinstance(value, py):
            return True
    return False


def check_value(schema: dict[str, Any], value: Any, where: str) -> str | None:
    """The first problem with ``value`` under ``schema`` (as ``where: reason``), or None."""
    if "type" in schema and not _type_ok(value, schema["type"]):
        return f"{where}: expected {schema['type']}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where}: must be one of {schema['enum']}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{where}: must be >= {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{where}: must be <= {schema['maximum']}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{where}: must have at least {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{where}: must have at most {schema['maxLength']} characters"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problem = check_value(schema["items"], item, f"{where}[{i}]")
            if problem:
                return problem
    if isinstance(value, dict) and (schema.get("type") == "object" or "properties" in schema):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                return f"{where}.{name}: required" if where else f"{name}: required"
        for name, item in value.items():
            sub = f"{where}.{name}" if where else name
            if name in props:
                problem = check_value(props[name], item, sub)
                if problem:
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{sub}: unknown argument; expected {', '.join(props) or 'none'}"
    return None


def check_arguments(schema: dict[str, Any], arguments: Any) -> str | None:
    """The first problem with a tool call's arguments, or None when they fit the schema."""
    if not isinstance(arguments, dict):
        return "arguments: must be an object"
    return check_value(schema, arguments, "")
