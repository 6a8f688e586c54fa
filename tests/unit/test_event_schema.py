import uuid

from workbench.data.schema import EventIn, ItemResult, ItemStatus, parse_event


def _reject(item) -> ItemResult:
    result = parse_event(0, item)
    assert isinstance(result, ItemResult) and result.status is ItemStatus.REJECTED
    return result


def test_valid_event_gets_id_and_utc_time():
    event = parse_event(0, {"kind": "message", "payload": {"role": "user", "content": "hi"}, "ts": "2026-01-01T10:00:00+02:00"})
    assert isinstance(event, EventIn)
    assert isinstance(event.event_id, uuid.UUID)
    assert event.ts.utcoffset().total_seconds() == 0 and event.ts.hour == 8


def test_unknown_kind_names_field_and_choices():
    result = _reject({"kind": "telepathy"})
    assert result.field == "kind" and "agent_action" in result.reason


def test_missing_kind():
    assert _reject({"payload": {}}).field == "kind"


def test_unknown_field_is_rejected_by_name():
    result = _reject({"kind": "message", "colour": "blue"})
    assert result.field == "colour" and "unknown field" in result.reason


def test_reward_rules():
    assert _reject({"kind": "reward"}).field == "reward"
    assert _reject({"kind": "message", "reward": 1.0}).field == "reward"
    assert _reject({"kind": "reward", "reward": "nan"}).field == "reward"


def test_field_types():
    assert _reject({"kind": "message", "step": -1}).field == "step"
    assert _reject({"kind": "message", "payload": [1, 2]}).field == "payload"
    assert _reject({"kind": "message", "ts": "yesterday"}).field == "ts"
    assert _reject({"kind": "message", "event_id": "not-a-uuid"}).field == "event_id"
    assert _reject({"kind": "message", "tags": ["ok", ""]}).field == "tags"
    assert _reject("just a string").field == "(event)"


def test_rejection_never_echoes_the_input():
    secret = "jane.doe@example.com"
    result = _reject({"kind": "message", "step": secret})
    assert secret not in result.model_dump_json()
