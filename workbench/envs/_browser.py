"""The ``browser`` type: Playwright (sync API) driving Debian's Chromium.

One Chromium process is shared by every run in the process (:class:`BrowserHost`); each run
gets its own browser context. Playwright's sync API is bound to the thread that started it, so
the host owns one thread and every browser call is handed to it: environments may be used from
any thread (an API's worker threads included).

Pages are served from the scenario's ``pages_dir`` by a small threaded HTTP server on
127.0.0.1. Every request the page makes is routed through Python: paths that match the
scenario's ``routes`` are answered by sandboxed handlers (and recorded), other same-origin
requests go to the page server, and other origins are blocked unless the scenario allows
network, in which case their responses are recorded so a replay serves them again.
"""

from __future__ import annotations

import atexit
import base64
import functools
import http.server
import json
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

from workbench.envs._env import Env, RunStatus, _EndRun, _ToolFailed, tool_handler_refs
from workbench.envs._registry import resolve_reference
from workbench.envs._sandbox import SandboxError
from workbench.envs._spec import BROWSER_TOOLS, RouteSpec, Scenario, ToolSpec
from workbench.errors import ValidationFailed

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# ----------------------------------------------------------------------------- browser host


class BrowserHost:
    """One shared Chromium process, driven from its own thread.

    ``run(fn)`` calls ``fn(browser)`` on the host thread and returns its result. The browser is
    launched on first use and relaunched if it dies.
    """

    def __init__(self, executable_path: str = CHROMIUM, args: list[str] | None = None) -> None:
        self.executable_path = executable_path
        self.args = list(CHROMIUM_ARGS if args is None else args)
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._browser: Any = None
        self._playwright: Any = None

    @property
    def started(self) -> bool:
        """Whether the host thread (and so the browser) is running."""
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        with self._lock:
            if self.started:
                return
            ready: Future[None] = Future()
            self._thread = threading.Thread(target=self._loop, args=(ready,), name="wb-browser", daemon=True)
            self._thread.start()
        ready.result(timeout=60)

    def _launch(self) -> None:
        self._browser = self._playwright.chromium.launch(executable_path=self.executable_path, args=self.args)

    def _loop(self, ready: Future[None]) -> None:
        try:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._launch()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller of _start
            ready.set_exception(exc)
            return
        ready.set_result(None)
        while True:
            job = self._jobs.get()
            if job is None:
                break
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                if not self._browser.is_connected():
                    self._launch()
                future.set_result(fn(self._browser))
            except BaseException as exc:  # noqa: BLE001 - handed back to the waiting thread
                future.set_exception(exc)
        try:
            self._browser.close()
        finally:
            self._playwright.stop()

    def run(self, fn: Any, timeout: float | None = None) -> Any:
        """``fn(browser)`` on the host thread; waits up to ``timeout`` seconds for the result."""
        if threading.current_thread() is self._thread:
            return fn(self._browser)
        self._start()
        future: Future[Any] = Future()
        self._jobs.put((fn, future))
        return future.result(timeout=timeout)

    def close(self) -> None:
        """Close the browser and stop the host thread."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._jobs.put(None)
            thread.join(10)
        self._thread = None


_default_host: BrowserHost | None = None
_default_lock = threading.Lock()


def default_browser_host() -> BrowserHost:
    """The process-wide :class:`BrowserHost` (created on first use, closed at exit)."""
    global _default_host
    with _default_lock:
        if _default_host is None:
            _default_host = BrowserHost()
            atexit.register(_default_host.close)
        return _default_host


# ----------------------------------------------------------------------------- page server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


_servers: dict[str, tuple[http.server.ThreadingHTTPServer, str]] = {}
_servers_lock = threading.Lock()


def page_origin(root: Path) -> str:
    """Origin (``http://127.0.0.1:PORT``) of a server for ``root``, started on first use."""
    key = str(root.resolve())
    with _servers_lock:
        if key not in _servers:
            handler = functools.partial(_QuietHandler, directory=key)
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name="wb-pages", daemon=True).start()
            _servers[key] = (server, f"http://127.0.0.1:{server.server_address[1]}")
        return _servers[key][1]


# ----------------------------------------------------------------------------- page scripts

# Seeded Math.random, a frozen clock, and a counter of pending fetches/body reads so a step can
# wait until the page has reacted to an action.
_INIT_SCRIPT = """
(() => {
  let s = %(seed)d >>> 0;
  Math.random = function () {
    s = (s + 0x6D2B79F5) >>> 0; let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const base = 1704067200000;
  const RealDate = Date;
  class FixedDate extends RealDate {
    constructor(...a) { if (a.length === 0) { super(base); } else { super(...a); } }
    static now() { return base; }
  }
  window.Date = FixedDate;
  window.__wbPending = 0;
  const done = () => setTimeout(() => { window.__wbPending--; }, 0);
  const track = (p) => { window.__wbPending++; p.then(done, done); return p; };
  const realFetch = window.fetch.bind(window);
  window.fetch = (...args) => track(realFetch(...args));
  for (const m of ['json', 'text', 'blob', 'arrayBuffer', 'formData']) {
    const orig = Response.prototype[m];
    Response.prototype[m] = function (...a) { return track(orig.apply(this, a)); };
  }
})();
"""

_SNAPSHOT = r"""
() => {
  const W = window;
  if (!W.__wbNextId) W.__wbNextId = 1;
  const out = [];
  const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'SVG', 'HEAD', 'META', 'LINK', 'IFRAME']);
  const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const q = (s) => JSON.stringify(clean(s).slice(0, 160));
  const hidden = (el) => {
    if (el.hidden) return true;
    const st = getComputedStyle(el);
    return st.display === 'none' || st.visibility === 'hidden';
  };
  const idOf = (el) => {
    let id = el.getAttribute('data-wb-id');
    if (!id) { id = String(W.__wbNextId++); el.setAttribute('data-wb-id', id); }
    return id;
  };
  const labelOf = (el) => {
    const aria = el.getAttribute('aria-label');
    if (aria) return aria;
    if (el.labels && el.labels.length) return Array.from(el.labels).map((l) => l.innerText).join(' ');
    if (el.tagName === 'BUTTON' || el.tagName === 'A') return el.innerText || el.title;
    if (el.type === 'submit' || el.type === 'button' || el.type === 'reset') return el.value || el.type;
    return el.placeholder || el.title || el.name || '';
  };
  const roleOf = (el) => {
    const tag = el.tagName;
    const role = el.getAttribute('role');
    if (tag === 'A' && el.hasAttribute('href')) return 'link';
    if (tag === 'BUTTON') return 'button';
    if (tag === 'SELECT') return 'combobox';
    if (tag === 'TEXTAREA') return 'textbox';
    if (tag === 'INPUT') {
      const t = (el.type || 'text').toLowerCase();
      if (t === 'hidden') return null;
      if (t === 'checkbox' || t === 'radio') return t;
      if (t === 'submit' || t === 'button' || t === 'reset') return 'button';
      return 'textbox';
    }
    if (role && ['button', 'link', 'checkbox', 'tab', 'menuitem', 'option', 'switch'].includes(role)) return role;
    if (el.isContentEditable && el.getAttribute('contenteditable') !== null) return 'textbox';
    return null;
  };
  const describe = (el, role) => {
    let line = '[' + idOf(el) + '] ' + role + ' ' + q(labelOf(el));
    if (role === 'textbox') {
      const v = el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' ? el.value : el.innerText;
      line += el.type === 'password' ? ' value=' + (v ? '"***"' : '""') : ' value=' + q(v);
      if (el.type && el.type !== 'text' && el.tagName === 'INPUT') line += ' type=' + el.type;
    } else if (role === 'checkbox' || role === 'radio') {
      line += ' checked=' + (el.checked ? 'true' : 'false');
    } else if (role === 'combobox') {
      const opts = Array.from(el.options).map((o) => clean(o.label));
      const sel = el.selectedIndex >= 0 ? clean(el.options[el.selectedIndex].label) : '';
      line += ' selected=' + JSON.stringify(sel) + ' options=' + JSON.stringify(opts);
    } else if (role === 'link') {
      line += ' href=' + JSON.stringify(el.getAttribute('href'));
    }
    if (el.required) line += ' required';
    if (el.disabled) line += ' disabled';
    return line;
  };
  let texts = [];
  const flush = () => { if (texts.length) { out.push('text ' + q(texts.join(' '))); texts = []; } };
  const walk = (node, inLabel) => {
    for (const child of node.childNodes) {
      if (child.nodeType === 3) {
        const t = clean(child.textContent);
        if (t && !inLabel) texts.push(t);
        continue;
      }
      if (child.nodeType !== 1 || SKIP.has(child.tagName) || hidden(child)) continue;
      const role = roleOf(child);
      if (role) { flush(); out.push(describe(child, role)); continue; }
      if (/^H[1-6]$/.test(child.tagName)) { flush(); out.push('heading ' + q(child.innerText)); continue; }
      const isLabel = child.tagName === 'LABEL' && child.control;
      const block = !['SPAN', 'B', 'I', 'EM', 'STRONG', 'SMALL', 'CODE', 'A', 'ABBR'].includes(child.tagName);
      if (block) flush();
      walk(child, inLabel || isLabel);
      if (block) flush();
    }
  };
  walk(document.body || document.documentElement, false);
  flush();
  const head = 'page: ' + q(document.title) + ' ' + location.pathname + location.search;
  return [head].concat(out).join('\n');
}
"""

_OPTION_INDEX = """
(el, v) => {
  if (!el.options) return -2;
  const want = String(v).trim().toLowerCase();
  return Array.from(el.options).findIndex(
    (o) => o.value.toLowerCase() === want || o.label.trim().toLowerCase() === want);
}
"""


class _ActionError(Exception):
    """An action the page cannot do; the agent sees the message."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


# ----------------------------------------------------------------------------- environment


@functools.lru_cache(maxsize=1)
def _browser_tool_specs() -> tuple[ToolSpec, ...]:
    target = {
        "id": {"type": "integer", "description": "Element id shown in brackets in the observation."},
        "selector": {"type": "string", "description": "CSS selector, instead of id."},
    }
    return (
        ToolSpec(name="click", description="Click an element (buttons, links, checkboxes).",
                 parameters={"type": "object", "properties": dict(target)}),
        ToolSpec(name="fill", description="Type a value into a text field, replacing its content.",
                 parameters={"type": "object", "properties": {**target, "value": {"type": "string"}},
                             "required": ["value"]}),
        ToolSpec(name="select", description="Choose an option of a drop-down by its label or value.",
                 parameters={"type": "object", "properties": {**target, "value": {"type": "string"}},
                             "required": ["value"]}),
        ToolSpec(name="press", description="Press a key (Enter, Tab, ArrowDown, ...), on an element or the page.",
                 parameters={"type": "object", "properties": {**target, "key": {"type": "string"}},
                             "required": ["key"]}),
        ToolSpec(name="goto", description="Open a URL: a path on this site (/forms/x.html) or an allowed origin.",
                 parameters={"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}),
    )


class BrowserEnv(Env):
    """A browser scenario: observation is a compact text view of the page with element ids;
    tools are click, fill, select, press and goto (plus any declared tools with handlers)."""

    def __init__(self, scenario: Scenario, *, host: BrowserHost | None = None, **kwargs: Any) -> None:
        assert scenario.browser is not None
        self._routes: list[tuple[RouteSpec, str]] = []
        for i, route in enumerate(scenario.browser.routes):
            try:
                ref = resolve_reference(route.handler, kind="tool", base_dir=scenario.base_dir)
            except LookupError as exc:
                raise ValidationFailed(f"browser.routes.{i}.handler", str(exc)) from None
            self._routes.append((route, ref))
        self._refs = tool_handler_refs(scenario)
        self._host = host or default_browser_host()
        self._context: Any = None
        self._page: Any = None
        self._origin = ""
        self._snapshot_text = ""
        self._route_failure: SandboxError | None = None
        self._outside_seen: dict[str, int] = {}
        super().__init__(scenario, **kwargs)
        limits = scenario.limits
        self._action_timeout_ms = int(min(limits.step_timeout_s, 2.0) * 1000)
        self._host_timeout_s = limits.step_timeout_s + 30

    # -- hooks

    def _tool_specs(self) -> list[ToolSpec]:
        return list(_browser_tool_specs()) + super()._tool_specs()

    def _begin(self, options: dict[str, Any]) -> str:
        config = self.scenario.browser
        assert config is not None
        root = self.scenario.resolve_path(config.pages_dir)
        if not root.is_dir():
            raise _EndRun(RunStatus.ERROR, f"browser.pages_dir {root} does not exist")
        self._origin = page_origin(root)
        self._recording = {"responses": []}
        self._route_failure = None
        self._outside_seen = {}
        start = self._url(config.start_url)
        if start is None:
            raise _EndRun(RunStatus.ERROR, f"browser.start_url {config.start_url!r} is not on an allowed origin")

        def setup(browser: Any) -> str:
            width, height = config.viewport
            context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
            context.add_init_script(_INIT_SCRIPT % {"seed": self.seed & 0xFFFFFFFF})
            context.route("**/*", self._on_request)
            page = context.new_page()
            page.set_default_timeout(self._action_timeout_ms)
            page.set_default_navigation_timeout(self.scenario.limits.step_timeout_s * 1000)
            self._context, self._page = context, page
            page.goto(start, wait_until="load")
            self._settle(page)
            snapshot = page.evaluate(_SNAPSHOT)
            # the first locator query injects Playwright's selector engine: pay for it here
            page.locator('[data-wb-id="1"]').count()
            return snapshot

        try:
            self._snapshot_text = self._host.run(setup, timeout=self._host_timeout_s)
        except _EndRun:
            raise
        except Exception as exc:  # noqa: BLE001 - the page could not load: the run cannot start
            raise _EndRun(RunStatus.ERROR, f"browser could not open {config.start_url}: {_first_line(exc)}") from None
        self._raise_route_failure()
        return self._snapshot_text

    def _call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        if name not in BROWSER_TOOLS:
            try:
                return self._sandbox_call(
                    "tool", self._refs[name], what=f"tool {name!r}",
                    timeout=self.scenario.limits.step_timeout_s, kwargs=arguments,
                )
            except SandboxError as exc:
                if exc.kind == "exception":
                    raise _ToolFailed(exc.reason.removeprefix(f"tool {name!r} raised ")) from None
                raise _EndRun(RunStatus.TIMEOUT if exc.kind == "timeout" else RunStatus.ERROR, exc.reason) from None

        def act(browser: Any) -> tuple[str, bool, str]:
            page = self._page
            try:
                message, failed = self._act(page, name, arguments), False
            except _ActionError as exc:
                message, failed = str(exc), True
            except Exception as exc:  # noqa: BLE001 - Playwright errors are the agent's to read
                message, failed = f"{name} failed: {_first_line(exc)}", True
            self._settle(page)
            return message, failed, page.evaluate(_SNAPSHOT)

        try:
            message, failed, snapshot = self._host.run(act, timeout=self._host_timeout_s)
        except TimeoutError:
            raise _EndRun(RunStatus.TIMEOUT, f"browser action {name} did not finish in time") from None
        self._snapshot_text = snapshot
        self._raise_route_failure()
        if failed:
            raise _ToolFailed(message)
        return message

    def _after_tool(self, name: str, text: str, error: bool) -> str:
        if name in BROWSER_TOOLS:
            return f"{text}\n\n{self._snapshot_text}"
        return text

    def _document_extra(self) -> dict[str, Any]:
        return {"page": self._snapshot_text}

    def _end(self) -> Callable[[], None] | None:
        context, self._context, self._page = self._context, None, None
        if context is None:
            return None
        host = self._host

        def close() -> None:
            try:
                host.run(lambda browser: context.close(), timeout=30)
            except Exception:  # noqa: BLE001 - a dead browser has nothing left to close
                pass

        return close

    # -- browser-thread helpers

    def _url(self, url: str) -> str | None:
        """Absolute URL for ``url`` if it is on the page origin or an allowed origin, else None."""
        absolute = urljoin(self._origin + "/", url)
        parts = urlsplit(absolute)
        origin = f"{parts.scheme}://{parts.netloc}"
        config = self.scenario.browser
        allowed = {self._origin} | {o.rstrip("/") for o in (config.allowed_origins if config else [])}
        return absolute if origin in allowed else None

    def _locate(self, page: Any, arguments: dict[str, Any]) -> Any:
        if "id" in arguments:
            locator = page.locator(f'[data-wb-id="{int(arguments["id"])}"]')
            what = f"id {arguments['id']}"
        elif arguments.get("selector"):
            locator = page.locator(str(arguments["selector"]))
            what = f"selector {arguments['selector']!r}"
        else:
            raise _ActionError("give the element's id (from the observation) or a selector")
        try:
            count = locator.count()
        except Exception as exc:  # noqa: BLE001 - an invalid selector
            raise _ActionError(f"bad selector: {_first_line(exc)}") from None
        if count == 0:
            raise _ActionError(f"no element with {what} on this page")
        return locator.first

    def _act(self, page: Any, name: str, arguments: dict[str, Any]) -> str:
        if name == "goto":
            url = self._url(str(arguments.get("url", "")))
            if url is None:
                raise _ActionError(f"goto: {arguments.get('url')!r} is not on an allowed origin")
            page.goto(url, wait_until="load")
            return f"opened {urlsplit(url).path}"
        if name == "press" and "id" not in arguments and not arguments.get("selector"):
            page.keyboard.press(str(arguments["key"]))
            return f"pressed {arguments['key']}"
        element = self._locate(page, arguments)
        label = f"[{arguments['id']}]" if "id" in arguments else arguments.get("selector")
        if name == "click":
            element.click()
            return f"clicked {label}"
        if name == "fill":
            element.fill(str(arguments["value"]))
            return f"filled {label}"
        if name == "select":
            index = element.evaluate(_OPTION_INDEX, str(arguments["value"]))
            if index == -2:
                raise _ActionError(f"{label} is not a drop-down")
            if index < 0:
                raise _ActionError(f"{label} has no option {arguments['value']!r}")
            element.select_option(index=index)
            return f"selected {arguments['value']!r} in {label}"
        if name == "press":
            element.press(str(arguments["key"]))
            return f"pressed {arguments['key']} on {label}"
        raise _ActionError(f"unknown browser tool {name}")

    def _settle(self, page: Any) -> None:
        """Wait until the page has loaded and its fetches (and their bodies) are done."""
        try:
            page.wait_for_load_state("load", timeout=self._action_timeout_ms)
            page.wait_for_function("() => (window.__wbPending || 0) <= 0", timeout=self._action_timeout_ms, polling=5)
        except Exception:  # noqa: BLE001 - a page that never settles is observed as it is
            pass

    def _match_route(self, path: str, method: str) -> tuple[RouteSpec, str] | None:
        for route, ref in self._routes:
            if route.method and route.method.upper() != method.upper():
                continue
            if route.path.endswith("*") and path.startswith(route.path[:-1]):
                return route, ref
            if path == route.path:
                return route, ref
        return None

    def _on_request(self, route: Any, request: Any) -> None:
        """Routes every request of the page (runs on the browser thread)."""
        parts = urlsplit(request.url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin == self._origin:
            matched = self._match_route(parts.path, request.method)
            if matched is None:
                route.continue_()
                return
            self._answer_route(route, request, parts, *matched)
            return
        if parts.scheme in ("data", "blob", "about"):
            route.continue_()
            return
        if not self.scenario.allow_network:
            route.abort("blockedbyclient")
            return
        self._outside(route, request)

    def _answer_route(self, route: Any, request: Any, parts: Any, spec: RouteSpec, ref: str) -> None:
        if self._context is None or self.done:
            route.abort("aborted")  # a late request of an ended run: its sandbox is gone
            return
        body = request.post_data
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        payload = {
            "method": request.method,
            "path": parts.path,
            "query": {k: v[0] if len(v) == 1 else v for k, v in parse_qs(parts.query).items()},
            "headers": {"content-type": request.headers.get("content-type", "")},
            "body": body,
            "json": parsed,
        }
        what = f"route {request.method} {parts.path}"
        try:
            result = self._sandbox_call(
                "route", ref, what=what, timeout=self.scenario.limits.step_timeout_s, request=payload
            )
            status, headers, text = _response(result)
        except SandboxError as exc:
            if exc.kind != "exception":
                self._route_failure = exc
            status, headers, text = 500, {"content-type": "application/json"}, json.dumps({"error": exc.reason})
        self._recording.setdefault("responses", []).append(
            {
                "step": self._step,
                "method": request.method,
                "path": parts.path + (f"?{parts.query}" if parts.query else ""),
                "request": body,
                "status": status,
                "body": text,
            }
        )
        route.fulfill(status=status, headers=headers, body=text)

    def _outside(self, route: Any, request: Any) -> None:
        key = f"{request.method} {request.url}"
        index = self._outside_seen.get(key, 0)
        self._outside_seen[key] = index + 1
        recorded = [r for r in (self._recorded.get("outside") or []) if r.get("key") == key]
        if self._replaying:
            # replay: answer from the recording, never from the network
            if index < len(recorded):
                item = recorded[index]
                route.fulfill(status=item["status"], headers=item["headers"], body=base64.b64decode(item["body"]))
            else:
                route.abort("internetdisconnected")
            return
        try:
            response = route.fetch()
            body = response.body()
        except Exception:  # noqa: BLE001 - unreachable outside host
            self._recording.setdefault("outside", []).append({"key": key, "status": 0, "headers": {}, "body": ""})
            route.abort("failed")
            return
        headers = {k: v for k, v in response.headers.items() if k.lower() == "content-type"}
        self._recording.setdefault("outside", []).append(
            {"key": key, "status": response.status, "headers": headers, "body": base64.b64encode(body).decode()}
        )
        route.fulfill(status=response.status, headers=headers, body=body)

    def _raise_route_failure(self) -> None:
        failure, self._route_failure = self._route_failure, None
        if failure is not None:
            status = RunStatus.TIMEOUT if failure.kind == "timeout" else RunStatus.ERROR
            raise _EndRun(status, failure.reason)


def _response(result: Any) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) from what a route handler returned."""
    if isinstance(result, dict) and ({"status", "json", "body"} & set(result)):
        status = int(result.get("status", 200))
        headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        if "body" in result and "json" not in result:
            headers.setdefault("content-type", str(result.get("content_type", "text/plain; charset=utf-8")))
            return status, headers, str(result["body"])
        headers.setdefault("content-type", "application/json")
        return status, headers, json.dumps(result.get("json"))
    return 200, {"content-type": "application/json"}, json.dumps(result)
