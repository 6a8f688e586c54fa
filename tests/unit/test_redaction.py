import pytest

from workbench.data.redaction import Redactor, RedactorConfig


@pytest.mark.parametrize(
    ("text", "entity", "leak"),
    [
        ("Contact John Smith about the refund", "PERSON", "John Smith"),
        ("write to maria.garcia@example.org today", "EMAIL_ADDRESS", "maria.garcia@example.org"),
        ("call +1 415-555-0134 after five", "PHONE_NUMBER", "415-555-0134"),
        ("deliver to 742 Evergreen Terrace, Springfield", "STREET_ADDRESS", "742 Evergreen Terrace"),
        ("ship to 221B Baker Street, Apt 4", "STREET_ADDRESS", "221B Baker Street"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9abcdef", "BEARER_TOKEN", "eyJhbGciOiJIUzI1NiJ9abcdef"),
        ("db at postgres://admin:hunter2secret@db.internal:5432/app", "URL_PASSWORD", "hunter2secret"),
        ("use key sk-proj-abc123def456ghi789jkl0", "API_KEY", "sk-proj-abc123def456ghi789jkl0"),
        ("token ghp_0123456789abcdefghijABCDEFGHIJ012345", "API_KEY", "ghp_0123456789abcdefghij"),
        ("aws AKIAIOSFODNN7EXAMPLE here", "API_KEY", "AKIAIOSFODNN7EXAMPLE"),
        ('config {"password": "s3cr3t-Passw0rd"}', "API_KEY", "s3cr3t-Passw0rd"),
        ("card 4111 1111 1111 1111 on file", "CREDIT_CARD", "4111 1111 1111 1111"),
    ],
)
def test_detects_and_replaces_with_typed_placeholder(redactor, text, entity, leak):
    redacted, counts = redactor.redact_text(text)
    assert leak not in redacted
    assert f"<{entity}>" in redacted
    assert counts[entity] >= 1


def test_harmless_text_is_untouched(redactor):
    text = "the calculator returned 42 for 6 * 7"
    assert redactor.redact_text(text) == (text, {})


def test_nested_payloads_keys_and_tags(redactor):
    payload = {"user": {"name": "Alice Johnson", "emails": ["alice@corp.io", {"alt": "a.j@corp.io"}]}, "Bob Stone": 3}
    tags = ["customer:bob@example.com", "support"]
    (red,) = redactor.redact_values([[payload, tags]])
    red_payload, red_tags = red.value
    assert red_payload["user"]["name"] == "<PERSON>"
    assert red_payload["user"]["emails"] == ["<EMAIL_ADDRESS>", {"alt": "<EMAIL_ADDRESS>"}]
    assert "Bob Stone" not in red_payload and red_payload["<PERSON>"] == 3
    assert red_tags == ["customer:<EMAIL_ADDRESS>", "support"]
    assert red.counts == {"PERSON": 2, "EMAIL_ADDRESS": 3}


def test_pattern_only_mode_skips_names_but_keeps_patterns():
    redactor = Redactor(RedactorConfig(ner=False))
    redacted, counts = redactor.redact_text("John Smith, john@example.com")
    assert "John Smith" in redacted and "<EMAIL_ADDRESS>" in redacted
    assert counts == {"EMAIL_ADDRESS": 1}


def test_entities_are_configurable():
    redactor = Redactor(RedactorConfig(ner=False, entities=("PHONE_NUMBER",)))
    redacted, _ = redactor.redact_text("john@example.com or 415-555-0134")
    assert "john@example.com" in redacted and "<PHONE_NUMBER>" in redacted


def test_unknown_entity_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown"):
        Redactor(RedactorConfig(ner=False, entities=("SHOE_SIZE",)))
