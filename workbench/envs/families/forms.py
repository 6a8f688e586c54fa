"""forms — fill in and submit local HTML forms in a real browser (type ``browser``).

What it tests: whether an agent can read a page's text view (element ids, labels, current
values), fill text fields, pick drop-down options, tick checkboxes and submit, using the browser
tools ``fill``, ``select``, ``click`` (and ``press``/``goto``). Three pages live in
``scenarios/pages/forms/`` (sign-up, contact, shipping address); the sign-up page loads its
country list from ``/api/forms/countries``, and every page submits JSON to
``/api/forms/submit``. Both APIs are answered by sandboxed handlers in this module and recorded
in the trace. The checker compares the first submission with the requested values and ends the
run as soon as something is submitted (check_on: step).

Run it (needs /usr/bin/chromium)::

    workbench scenarios run scenarios/forms.yaml --split test --policy oracle
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from workbench.envs._registry import checker, family, tool

COUNTRIES = [
    ("de", "Germany"), ("es", "Spain"), ("fr", "France"), ("it", "Italy"),
    ("nl", "Netherlands"), ("pl", "Poland"), ("pt", "Portugal"), ("se", "Sweden"),
]
_FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Luca"]
_LAST = ["Lopez", "Meyer", "Novak", "Okafor", "Petit", "Quinn", "Rossi", "Silva", "Tanaka", "Umar"]
_CITIES = ["Lyon", "Porto", "Gdansk", "Utrecht", "Turin", "Malmo", "Leipzig", "Seville"]
_STREETS = ["Oak Street", "Mill Road", "Station Lane", "Harbour Way", "Park Avenue", "Church Road"]
_MESSAGES = [
    "My invoice shows the wrong amount.",
    "The app crashes when I upload a photo.",
    "Do you offer discounts for schools?",
    "Please close my account.",
    "I was charged twice this month.",
    "How do I export my data?",
]


@tool("forms.submit")
def submit(ctx: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Page API: POST /api/forms/submit {form, fields} stores the submission, returns a reference."""
    body = request.get("json")
    if not isinstance(body, dict) or not isinstance(body.get("fields"), dict):
        return {"status": 400, "json": {"ok": False, "error": "expected {form, fields}"}}
    submissions = ctx.state.setdefault("submissions", [])
    submissions.append({"form": str(body.get("form", "")), "fields": body["fields"]})
    return {"json": {"ok": True, "reference": f"R-{len(submissions):04d}"}}


@tool("forms.countries")
def countries(ctx: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Page API: GET /api/forms/countries lists the countries the sign-up form offers."""
    return {"json": [{"value": code, "label": label} for code, label in COUNTRIES]}


@checker("forms.submission")
def submission(ctx: Any, form: str, expected: dict[str, Any]) -> dict[str, Any]:
    """Checker: the first submission is ``form`` with exactly the ``expected`` field values."""
    subs = ctx.state.get("submissions") or []
    if not subs:
        return {"success": False, "reason": "nothing submitted yet"}
    first = subs[0]
    if first.get("form") != form:
        return {"success": False, "done": True, "reason": f"submitted form {first.get('form')!r}, expected {form!r}"}
    fields = first.get("fields") or {}
    wrong = sorted(k for k, v in expected.items() if fields.get(k) != v)
    if wrong:
        return {"success": False, "done": True, "reason": "wrong or missing fields: " + ", ".join(wrong)}
    return {"success": True, "done": True, "reason": "submitted with the requested values"}


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return f"{first} {last}", f"{first.lower()}.{last.lower()}@example.com"


def _fill(field: str, value: str) -> dict[str, Any]:
    return {"tool": "fill", "arguments": {"selector": f"#{field}", "value": value}}


def _select(field: str, value: str) -> dict[str, Any]:
    return {"tool": "select", "arguments": {"selector": f"#{field}", "value": value}}


def _click(selector: str) -> dict[str, Any]:
    return {"tool": "click", "arguments": {"selector": selector}}


_SUBMIT = _click("button[type=submit]")


def _signup(rng: random.Random) -> tuple[str, str, list[str], dict[str, Any], list[dict[str, Any]]]:
    name, email = _person(rng)
    plan = rng.choice(["free", "pro", "team"])
    code, country = rng.choice(COUNTRIES)
    newsletter = rng.random() < 0.5
    lines = [f"Full name: {name}", f"Email: {email}", f"Plan: {plan.title()}", f"Country: {country}",
             f"Newsletter: {'yes' if newsletter else 'no'}"]
    expected = {"full_name": name, "email": email, "plan": plan, "country": code, "newsletter": newsletter}
    actions = [_fill("full_name", name), _fill("email", email), _select("plan", plan), _select("country", code)]
    if newsletter:
        actions.append(_click("#newsletter"))
    return "signup", "/forms/signup.html", lines, expected, actions + [_SUBMIT]


def _contact(rng: random.Random) -> tuple[str, str, list[str], dict[str, Any], list[dict[str, Any]]]:
    name, email = _person(rng)
    topic = rng.choice(["billing", "technical", "sales", "other"])
    message = rng.choice(_MESSAGES)
    urgent = rng.random() < 0.5
    lines = [f"Name: {name}", f"Email: {email}", f"Topic: {topic.title()}", f"Message: {message}",
             f"Urgent: {'yes' if urgent else 'no'}"]
    expected = {"name": name, "email": email, "topic": topic, "message": message, "urgent": urgent}
    actions = [_fill("name", name), _fill("email", email), _select("topic", topic), _fill("message", message)]
    if urgent:
        actions.append(_click("#urgent"))
    return "contact", "/forms/contact.html", lines, expected, actions + [_SUBMIT]


def _shipping(rng: random.Random) -> tuple[str, str, list[str], dict[str, Any], list[dict[str, Any]]]:
    name, _ = _person(rng)
    street = f"{rng.randint(1, 199)} {rng.choice(_STREETS)}"
    city = rng.choice(_CITIES)
    postcode = f"{rng.randint(10000, 99999)}"
    method = rng.choice(["standard", "express", "overnight"])
    gift = rng.random() < 0.5
    lines = [f"Recipient: {name}", f"Street: {street}", f"City: {city}", f"Postcode: {postcode}",
             f"Delivery: {method.title()}", f"Gift wrap: {'yes' if gift else 'no'}"]
    expected = {"recipient": name, "street": street, "city": city, "postcode": postcode, "method": method, "gift": gift}
    actions = [_fill("recipient", name), _fill("street", street), _fill("city", city), _fill("postcode", postcode),
               _select("method", method)]
    if gift:
        actions.append(_click("#gift"))
    return "shipping", "/forms/shipping.html", lines, expected, actions + [_SUBMIT]


ROUTES = [
    {"path": "/api/forms/submit", "method": "POST", "handler": "forms.submit"},
    {"path": "/api/forms/countries", "method": "GET", "handler": "forms.countries"},
]


@family("forms", type="browser", counts={"train": 120, "test": 50}, params={"pages_dir": "pages"})
def generate(split: str, rng: random.Random, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Candidate form tasks in a seeded order (the family keeps those of ``split``)."""
    makers = [_signup, _contact, _shipping]
    while True:
        form, url, lines, expected, actions = rng.choice(makers)(rng)
        details = "\n".join(f"- {line}" for line in lines)
        yield {
            "name": "forms",
            "type": "browser",
            "description": f"Fill in and submit the {form} form.",
            "instructions": f"Fill in the form on this page with these details and submit it:\n{details}",
            "browser": {"start_url": url, "pages_dir": params.get("pages_dir", "pages"), "routes": ROUTES},
            "checker": {"python": "forms.submission", "args": {"form": form, "expected": expected}},
            "check_on": "step",
            "limits": {"max_steps": 14, "max_tool_calls": 14, "step_timeout_s": 10, "run_timeout_s": 300},
            "oracle": {"actions": actions},
            "tags": ["forms", form],
        }
