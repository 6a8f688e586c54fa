"""Browser scenarios in real Chromium (Playwright): the forms family, routing, recording, replay."""

from __future__ import annotations

import os
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import workbench.envs as envs

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

pytestmark = pytest.mark.skipif(
    not os.path.exists("/usr/bin/chromium"), reason="Debian chromium is not installed at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def browser() -> envs.BrowserHost:
    """One Chromium for the whole session (the process-wide host); contexts are per run."""
    return envs.default_browser_host()


@pytest.fixture(scope="module")
def forms_test() -> list[envs.Scenario]:
    return envs.load_family(SCENARIOS / "forms.yaml").generate("test")


PAGE = """<!doctype html>
<html><head><title>Lab</title></head>
<body>
  <h1>Lab page</h1>
  <p id="random">random: <span id="r"></span></p>
  <p>time: <span id="t"></span></p>
  <label for="word">Word</label><input id="word" name="word">
  <button id="echo" onclick="callEcho()">Echo</button>
  <button id="outside" onclick="callOutside()">Outside</button>
  <a href="/second.html">Second page</a>
  <p id="out"></p>
  <script>
    document.getElementById('r').textContent = Math.random().toFixed(6);
    document.getElementById('t').textContent = new Date().toISOString();
    async function callEcho() {
      const word = document.getElementById('word').value;
      const r = await fetch('/api/echo?word=' + encodeURIComponent(word));
      const data = await r.json();
      document.getElementById('out').textContent = 'echo: ' + data.word + ' #' + data.count;
    }
    async function callOutside() {
      try { await fetch('http://example.invalid/data'); document.getElementById('out').textContent = 'reached'; }
      catch (e) { document.getElementById('out').textContent = 'outside blocked'; }
    }
  </script>
</body></html>
"""

HANDLERS = textwrap.dedent(
    """
    def echo(ctx, request):
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        return {"json": {"word": request["query"].get("word", ""), "count": ctx.state["count"]}}

    def explode(ctx, request):
        while True:
            pass
    """
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> envs.Scenario:
    root = tmp_path_factory.mktemp("lab")
    (root / "pages").mkdir()
    (root / "pages" / "index.html").write_text(PAGE)
    (root / "pages" / "second.html").write_text("<html><head><title>Two</title></head><body><p>second</p></body></html>")
    (root / "handlers.py").write_text(HANDLERS)
    spec = {
        "name": "lab",
        "type": "browser",
        "instructions": "Echo the word 'kiwi'.",
        "browser": {
            "start_url": "/index.html",
            "routes": [{"path": "/api/echo", "method": "GET", "handler": "handlers.py:echo"},
                       {"path": "/api/boom*", "handler": "handlers.py:explode"}],
        },
        "checker": {"state": {"path": "count", "op": ">=", "value": 1}},
        "limits": {"max_steps": 10, "step_timeout_s": 8, "cpu_s": 2},
    }
    return envs.parse_scenario(spec, base_dir=root)


def ids(observation: str, role: str, name: str) -> int:
    for line in observation.splitlines():
        if f"] {role} \"{name}\"" in line:
            return int(line[1:line.index("]")])
    raise AssertionError(f"no {role} {name!r} in:\n{observation}")


def test_observation_is_compact_text_with_element_ids(browser, lab):
    env = envs.make(lab, seed=1, browser=browser)
    obs, _ = env.reset()
    lines = obs.splitlines()
    assert lines[0] == "Echo the word 'kiwi'."
    assert 'page: "Lab" /index.html' in lines
    assert 'heading "Lab page"' in lines
    assert any(line.startswith("[") and 'textbox "Word" value=""' in line for line in lines)
    assert any('link "Second page" href="/second.html"' in line for line in lines)
    assert "127.0.0.1" not in obs  # the server's port never shows, so observations replay
    word = ids(obs, "textbox", "Word")
    obs, *_ = env.step({"tool": "fill", "arguments": {"id": word, "value": "kiwi"}})
    assert obs.startswith(f"filled [{word}]") and 'value="kiwi"' in obs
    obs, _, terminated, _, info = env.step({"tool": "click", "arguments": {"id": ids(obs, "button", "Echo")}})
    assert 'text "echo: kiwi #1"' in obs  # the page's fetch was answered by the sandboxed handler
    env.step({"answer": "done"})
    trace = env.trace()
    env.close()
    assert trace["status"] == "success" and trace["final_state"] == {"count": 1}
    assert trace["recorded"]["responses"] == [
        {"step": 2, "method": "GET", "path": "/api/echo?word=kiwi", "request": None, "status": 200,
         "body": '{"word": "kiwi", "count": 1}'}
    ]
    assert envs.replay(trace, browser=browser)["identical"]
    tampered = {**trace, "recorded": {"responses": [{**trace["recorded"]["responses"][0], "body": "{}"}]}}
    divergence = envs.replay(tampered, browser=browser)["first_divergence"]
    assert divergence["field"] == "recorded.responses.0" and divergence["step"] == 2


def test_time_and_randomness_in_pages_are_seeded(browser, lab):
    def first_observation(seed):
        env = envs.make(lab, seed=seed, browser=browser)
        obs, _ = env.reset()
        env.close()
        return obs

    a, b, c = first_observation(5), first_observation(5), first_observation(6)
    assert a == b and a != c
    assert "2024-01-01T00:00:00.000Z" in a  # a fixed clock, not the wall clock


def test_actions_report_errors_and_origins_are_enforced(browser, lab):
    env = envs.make(lab, browser=browser)
    env.reset()
    obs, *_ = env.step({"tool": "click", "arguments": {"id": 999}})
    assert obs.startswith("error: no element with id 999 on this page")
    obs, *_ = env.step({"tool": "select", "arguments": {"id": 1, "value": "x"}})
    assert obs.startswith("error: [1] is not a drop-down")
    obs, *_ = env.step({"tool": "goto", "arguments": {"url": "https://example.com/"}})
    assert obs.startswith("error: goto: 'https://example.com/' is not on an allowed origin")
    obs, *_ = env.step({"tool": "click", "arguments": {"selector": "#outside"}})
    assert 'text "outside blocked"' in obs  # requests to other origins never leave the machine
    obs, *_ = env.step({"tool": "goto", "arguments": {"url": "/second.html"}})
    assert obs.startswith("opened /second.html") and 'page: "Two" /second.html' in obs
    obs, *_ = env.step({"tool": "press", "arguments": {"key": "Tab"}})
    assert obs.startswith("pressed Tab")
    env.close()


def test_a_runaway_route_handler_ends_the_run_with_an_error(browser, lab):
    env = envs.make(lab, browser=browser)
    env.reset()
    _, _, terminated, _, info = env.step({"tool": "goto", "arguments": {"url": "/api/boom"}})
    assert terminated and info["status"] == "error"
    assert "route GET /api/boom exceeded the CPU limit of 2 s" in info["reason"]
    env.close()


def test_envs_can_be_driven_from_other_threads(browser, lab):
    env = envs.make(lab, browser=browser)
    with ThreadPoolExecutor(2) as pool:
        obs, _ = pool.submit(env.reset).result()
        word = ids(obs, "textbox", "Word")
        obs = pool.submit(env.step, {"tool": "fill", "arguments": {"id": word, "value": "x"}}).result()[0]
        assert 'value="x"' in obs
    env.close()


def test_forms_oracle_solves_every_test_task(browser, forms_test):
    assert len(forms_test) >= 50
    failures = [
        (task.name, trace["reason"])
        for task in forms_test
        for trace in [envs.run_episode(task, "oracle", browser=browser)]
        if not trace["success"]
    ]
    assert failures == []


def test_forms_random_policy_scores_low_and_replays_identically(browser, forms_test):
    traces = [envs.run_episode(task, "random", seed=i, browser=browser) for i, task in enumerate(forms_test[:20])]
    assert sum(t["success"] for t in traces) == 0
    assert sum(len(t["steps"]) for t in traces) > 40
    results = [envs.replay(t, browser=browser) for t in traces]
    assert all(r["identical"] for r in results), [r["first_divergence"] for r in results if not r["identical"]]


def test_forms_events_and_recorded_submission(browser, forms_test):
    task = next(t for t in forms_test if "signup" in t.tags)
    events: list[dict] = []
    trace = envs.run_episode(task, "oracle", browser=browser, sink=events.extend, agent_version="oracle")
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["metadata", "environment_observation"] and kinds[-1] == "reward"
    assert events[-1]["reward"] == 1.0 and events[-1]["payload"]["success"] is True
    assert all(e["env_id"] == "browser/forms" and e["scenario_id"] == task.name for e in events)
    assert 'page: "Create your account" /forms/signup.html' in events[1]["payload"]["observation"]
    paths = [r["path"] for r in trace["recorded"]["responses"]]
    assert paths == ["/api/forms/countries", "/api/forms/submit"]  # the page's API calls, recorded
    submitted = trace["final_state"]["submissions"][0]
    assert submitted["form"] == "signup" and submitted["fields"] == task.checker.args["expected"]
