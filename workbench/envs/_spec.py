"""The scenario spec: pydantic models for what a scenario YAML (or POST /scenarios) holds.

A scenario is plain data. Code it refers to (tool handlers, Python checkers, page API handlers,
oracle policies) is named by reference, ``package.module:function`` or ``file.py:function``
(relative to the scenario file), or by a name registered with :func:`workbench.envs.tool` /
:func:`workbench.envs.checker`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from workbench.errors import ValidationFailed

ScenarioType = Literal["text", "api", "browser", "gym"]
Split = Literal["train", "test"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_TOOL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
# module:function, file.py:function, or a registered name (no colon)
_REF_RE = re.compile(r"^(?:[A-Za-z_][\w.]*|[^:]+\.py):[A-Za-z_][\w.]*$|^[A-Za-z_][\w.\-]*$")


def _matches(regex: re.Pattern[str], message: str):
    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


Name = Annotated[str, _matches(_NAME_RE, "use 1-200 letters, digits, _ . - (starting with a letter or digit)")]
ToolName = Annotated[str, _matches(_TOOL_NAME_RE, "use 1-64 letters, digits, _ - (starting with a letter or _)")]
Reference = Annotated[
    str, _matches(_REF_RE, "expected package.module:function, file.py:function or a registered name")
]

BROWSER_TOOLS = ("click", "fill", "select", "press", "goto")
GYM_TOOLS = ("act",)


class _Model(BaseModel):
    # Unknown keys are almost always typos in hand-written YAML: reject them by name.
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- tools


class ToolSpec(_Model):
    """A tool the environment implements, described as a JSON-schema function definition."""

    name: ToolName = Field(description="Tool name the agent calls.")
    description: str = Field("", max_length=4000)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the arguments object.",
    )
    handler: Reference | None = Field(
        None,
        description="Code that runs the tool in the sandbox: module:function, file.py:function or a registered tool name.",
    )

    @field_validator("parameters")
    @classmethod
    def _parameters_is_object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if schema.get("type", "object") != "object":
            raise ValueError('the arguments schema must have "type": "object"')
        props = schema.get("properties", {})
        if not isinstance(props, dict):
            raise ValueError('"properties" must be a mapping of argument name to schema')
        required = schema.get("required", [])
        if not isinstance(required, list) or any(r not in props for r in required):
            raise ValueError('"required" must list names defined in "properties"')
        return schema

    def openai_schema(self) -> dict[str, Any]:
        """The tool in the OpenAI function-calling format (what chat templates expect)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class McpServer(_Model):
    """An MCP server whose tools the environment exposes (started over stdio, or reached by URL)."""

    name: ToolName
    command: list[str] | None = Field(None, min_length=1, description="argv of a stdio server.")
    url: str | None = Field(None, description="Streamable-HTTP endpoint of a running server.")
    tools: list[str] | None = Field(None, description="Tools to expose; default all the server lists.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("command: give exactly one of command (stdio) or url")
        return self


class McpToolRef(_Model):
    """A reference to an MCP server in a scenario's ``tools`` list: ``{mcp: {name, command|url}}``."""

    mcp: McpServer


def _tool_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return "mcp" if "mcp" in value else "tool"
    return "mcp" if isinstance(value, McpToolRef) else "tool"


ToolEntry = Annotated[
    Union[Annotated[ToolSpec, Tag("tool")], Annotated[McpToolRef, Tag("mcp")]],
    Discriminator(_tool_tag),
]


# ----------------------------------------------------------------------------- checkers

CompareOp = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not_in", "contains", "exists", "missing"]


def _scalar_shorthand(key: str):
    """``equals: 42`` means ``equals: {value: 42}``: short rules for hand-written YAML."""

    def before(value: Any) -> Any:
        if isinstance(value, dict):
            return value
        return {key: value}

    return before


class EqualsArgs(_Model):
    """Compare a value from the run (default: the final answer) to an expected value."""

    target: str = Field("answer", description="Dotted path into {answer, state, initial_state, steps, tool_calls}.")
    value: Any = Field(description="Expected value.")
    tolerance: float | None = Field(
        None, ge=0, description="Compare numerically within this tolerance (numbers are read from text)."
    )
    ignore_case: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return _scalar_shorthand("value")(data)


class RegexArgs(_Model):
    """Search (or fully match) a regular expression in a value from the run."""

    target: str = "answer"
    pattern: str
    fullmatch: bool = False
    ignore_case: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return _scalar_shorthand("pattern")(data)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern


class JsonPathArgs(_Model):
    """Evaluate a JSONPath over {answer, state, initial_state, steps, tool_calls} and test the matches."""

    path: str = Field(description="JSONPath starting at $, e.g. $.state.orders[?(@.sku == 'pen')].qty")
    op: CompareOp = "exists"
    value: Any = None
    count: int | None = Field(None, ge=0, description="Number of matches required (checked before op).")
    match: Literal["any", "all"] = Field("any", description="Whether any or all matches must satisfy op.")

    @field_validator("path")
    @classmethod
    def _parses(cls, path: str) -> str:
        from workbench.envs._jsonpath import parse_jsonpath

        parse_jsonpath(path)  # raises ValueError with the reason
        return path


class StateArgs(_Model):
    """Test a value of the environment state at a dotted path (``items.mug.qty``, ``orders.0.status``)."""

    path: str = Field(min_length=1)
    op: CompareOp = "=="
    value: Any = None


class EqualsRule(_Model):
    equals: EqualsArgs


class RegexRule(_Model):
    regex: RegexArgs


class JsonPathRule(_Model):
    json_path: JsonPathArgs


class StateRule(_Model):
    state: StateArgs


class AllRule(_Model):
    all: list[Rule] = Field(min_length=1)


class AnyRule(_Model):
    any: list[Rule] = Field(min_length=1)


class NotRule(_Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    not_: Rule = Field(alias="not")


class PythonChecker(_Model):
    """A Python checker run in the sandbox: ``fn(ctx, **args)`` returning bool, a score in [0, 1] or a dict."""

    python: Reference = Field(description="module:function, file.py:function or a registered checker name.")
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments passed to the checker.")


RULE_KINDS = ("equals", "regex", "json_path", "state", "all", "any", "not")


def _rule_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = [k for k in value if k in RULE_KINDS or k == "python"]
        return keys[0] if len(keys) == 1 else None
    for kind, cls in _RULE_CLASSES.items():
        if isinstance(value, cls):
            return kind
    return None


_RULE_ERROR = dict(
    custom_error_type="invalid_rule",
    custom_error_message="a rule needs exactly one of: " + ", ".join(RULE_KINDS),
)

Rule = Annotated[
    Union[
        Annotated[EqualsRule, Tag("equals")],
        Annotated[RegexRule, Tag("regex")],
        Annotated[JsonPathRule, Tag("json_path")],
        Annotated[StateRule, Tag("state")],
        Annotated[AllRule, Tag("all")],
        Annotated[AnyRule, Tag("any")],
        Annotated[NotRule, Tag("not")],
    ],
    Discriminator(_rule_tag, **_RULE_ERROR),
]

Checker = Annotated[
    Union[
        Annotated[PythonChecker, Tag("python")],
        Annotated[EqualsRule, Tag("equals")],
        Annotated[RegexRule, Tag("regex")],
        Annotated[JsonPathRule, Tag("json_path")],
        Annotated[StateRule, Tag("state")],
        Annotated[AllRule, Tag("all")],
        Annotated[AnyRule, Tag("any")],
        Annotated[NotRule, Tag("not")],
    ],
    Discriminator(
        _rule_tag,
        custom_error_type="invalid_checker",
        custom_error_message="a checker needs exactly one of: python, " + ", ".join(RULE_KINDS),
    ),
]

_RULE_CLASSES = {
    "python": PythonChecker,
    "equals": EqualsRule,
    "regex": RegexRule,
    "json_path": JsonPathRule,
    "state": StateRule,
    "all": AllRule,
    "any": AnyRule,
    "not": NotRule,
}
AllRule.model_rebuild()
AnyRule.model_rebuild()
NotRule.model_rebuild()


# ----------------------------------------------------------------------------- the rest


class Limits(_Model):
    """Budgets of one run. Sandbox limits (memory_mb, cpu_s) cover all sandboxed code of the run."""

    max_steps: int = Field(20, ge=1, le=10_000, description="Agent actions before the run is truncated.")
    step_timeout_s: float = Field(10.0, gt=0, le=600, description="Wall-clock limit of one step's environment work.")
    run_timeout_s: float = Field(300.0, gt=0, le=86_400, description="Wall-clock limit of the whole run.")
    max_tool_calls: int = Field(50, ge=0, le=10_000, description="Tool calls before the run is truncated.")
    memory_mb: int = Field(512, ge=64, le=65_536, description="Address-space limit of the sandbox process.")
    cpu_s: float = Field(10.0, gt=0, le=3600, description="CPU seconds the sandbox may use over the run.")


class Action(_Model):
    """One agent action: a tool call ``{tool, arguments}`` or a final ``{answer}``."""

    tool: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    answer: Any = None

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if ("tool" in data) == ("answer" in data):
                raise ValueError("an action is either {tool, arguments} or {answer}")
            if "answer" in data and "arguments" in data:
                raise ValueError("arguments: an answer takes no arguments")
        return data

    @model_serializer(mode="plain")
    def _serialize(self) -> dict[str, Any]:
        # only the keys that make the action, so a dumped spec validates again
        return self.to_dict()

    @property
    def is_answer(self) -> bool:
        """True for a final answer, False for a tool call."""
        return self.tool is None

    def to_dict(self) -> dict[str, Any]:
        """The action as the plain dict the agent sent."""
        if self.is_answer:
            return {"answer": self.answer}
        return {"tool": self.tool, "arguments": self.arguments}


class Oracle(_Model):
    """A scripted solution: a fixed list of actions, or a policy ``fn(observation, info) -> action``."""

    actions: list[Action] | None = None
    policy: Reference | None = None

    @model_validator(mode="after")
    def _one(self) -> Oracle:
        if (self.actions is None) == (self.policy is None):
            raise ValueError("actions: give exactly one of actions or policy")
        return self


class RouteSpec(_Model):
    """An API route of a browser scenario's pages, answered by a sandboxed handler."""

    path: str = Field(pattern=r"^/", description="URL path on the page origin, e.g. /api/submit; a trailing * matches a prefix.")
    method: str | None = Field(None, description="HTTP method; default any.")
    handler: Reference = Field(description="fn(ctx, request) -> {status?, json?|body?, headers?}")


class BrowserConfig(_Model):
    """Where a browser scenario's pages live and what the page may reach."""

    start_url: str = Field(description="Path on the local page server (e.g. /forms/signup.html) or an allowed URL.")
    pages_dir: str = Field("pages", description="Directory served on 127.0.0.1, relative to the scenario file.")
    allowed_origins: list[str] = Field(default_factory=list, description="Extra origins goto may open.")
    routes: list[RouteSpec] = Field(default_factory=list)
    viewport: tuple[int, int] = (1024, 768)


class GymConfig(_Model):
    """A Gymnasium environment by id, with a text rendering and an action parser."""

    id: str = Field(min_length=1, description="Gymnasium env id, e.g. FrozenLake-v1 or CartPole-v1.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for gymnasium.make.")
    action_names: list[str] | None = Field(None, description="Names of discrete actions, in order (e.g. left, down).")
    success_reward: float | None = Field(
        None, description="Total reward that counts as success when no checker is given; default the env's reward_threshold, else > 0."
    )


class Scenario(_Model):
    """One task: what the agent is told, what it can do, and how success is judged."""

    name: Name = Field(description="Unique name; letters, digits, _ . -")
    type: ScenarioType
    description: str = Field("", max_length=10_000)
    instructions: str = Field(min_length=1, max_length=100_000, description="What the agent is told.")
    initial_state: dict[str, Any] = Field(default_factory=dict)
    tools: list[ToolEntry] = Field(default_factory=list)
    checker: Checker | None = None
    check_on: Literal["answer", "step"] = Field(
        "answer", description="answer: judge the final answer; step: also after every step, ending the run on success."
    )
    limits: Limits = Field(default_factory=Limits)
    split: Split = "train"
    tags: list[str] = Field(default_factory=list)
    oracle: Oracle | None = None
    allow_network: bool = False
    browser: BrowserConfig | None = None
    gym: GymConfig | None = None
    family: str | None = Field(None, description="Family that generated this task, if any.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    # Where relative paths (file.py handlers, pages_dir) resolve; not part of the spec or its hash.
    _base_dir: Path | None = PrivateAttr(None)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag or len(tag) > 200:
                raise ValueError("each tag must be 1 to 200 characters")
        return tags

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = [t.name if isinstance(t, ToolSpec) else None for t in self.tools]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name is not None and name in seen:
                raise ValueError(f"tools.{i}.name: duplicate tool name {name!r}")
            seen.add(name)
        if self.type in ("text", "api"):
            if self.checker is None:
                raise ValueError(f"checker: a {self.type} scenario needs a checker")
            for i, tool in enumerate(self.tools):
                if isinstance(tool, ToolSpec) and tool.handler is None:
                    raise ValueError(f"tools.{i}.handler: {self.type} tools need a handler")
        if self.type == "browser":
            if self.browser is None:
                raise ValueError("browser: a browser scenario needs a browser section (start_url, ...)")
            if self.checker is None:
                raise ValueError("checker: a browser scenario needs a checker")
            for i, name in enumerate(names):
                if name in BROWSER_TOOLS:
                    raise ValueError(f"tools.{i}.name: {name!r} is a built-in browser tool")
        elif self.browser is not None:
            raise ValueError(f"browser: only browser scenarios take a browser section, not {self.type}")
        if self.type == "gym":
            if self.gym is None:
                raise ValueError("gym: a gym scenario needs a gym section (id, ...)")
            if self.tools:
                raise ValueError("tools: gym scenarios have the single built-in tool 'act'")
        elif self.gym is not None:
            raise ValueError(f"gym: only gym scenarios take a gym section, not {self.type}")
        if self.oracle is not None and self.oracle.actions is not None:
            known = set(self.tool_names())
            for i, action in enumerate(self.oracle.actions):
                if action.tool is not None and action.tool not in known and not self.has_mcp_tools():
                    raise ValueError(f"oracle.actions.{i}.tool: unknown tool {action.tool!r}")
        return self

    # -- derived

    @property
    def version(self) -> str:
        """sha256 of the canonical JSON of the spec: editing any field makes a new version."""
        return hashlib.sha256(canonical_json(self.spec()).encode()).hexdigest()

    def spec(self) -> dict[str, Any]:
        """The spec as plain JSON data (what the version hashes and a trace records)."""
        return self.model_dump(mode="json", by_alias=True)

    def tool_names(self) -> list[str]:
        """Names of the tools the agent may call (declared and built-in)."""
        names = [t.name for t in self.tools if isinstance(t, ToolSpec)]
        if self.type == "browser":
            names = list(BROWSER_TOOLS) + names
        if self.type == "gym":
            names = list(GYM_TOOLS)
        return names

    def has_mcp_tools(self) -> bool:
        """Whether any tools come from MCP servers (known only once the server lists them)."""
        return any(isinstance(t, McpToolRef) for t in self.tools)

    @property
    def base_dir(self) -> Path | None:
        """Directory relative references resolve against (the scenario file's directory)."""
        return self._base_dir

    def with_base_dir(self, base_dir: str | Path | None) -> Scenario:
        """This scenario with relative references resolving against ``base_dir``; returns self."""
        self._base_dir = Path(base_dir).resolve() if base_dir is not None else None
        return self

    def resolve_path(self, relative: str) -> Path:
        """A path from the spec, made absolute against the base dir (or the default scenarios dir)."""
        path = Path(relative)
        if path.is_absolute():
            return path
        from workbench.envs._library import default_scenarios_dir

        return (self._base_dir or default_scenarios_dir()) / path


def canonical_json(data: Any) -> str:
    """Sorted keys, no whitespace, UTF-8: the same data always gives the same string."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# ----------------------------------------------------------------------------- errors

_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w]*(?:\.[\w\-]+)*): (.+)$", re.S)


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """A pydantic ValidationError as a list of ``{"field": "limits.max_steps", "reason": "..."}``."""
    out: list[dict[str, str]] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc: list[str] = []
        for part in err["loc"]:
            part = str(part)
            # tagged unions put the tag in the location (checker.regex.regex.pattern, tools.0.tool.name)
            if loc and loc[-1] == part and (part in _RULE_CLASSES or part == "mcp"):
                continue
            if part == "tool" and len(loc) >= 2 and loc[-2] == "tools" and loc[-1].isdigit():
                continue
            loc.append(part)
        reason = err["msg"].removeprefix("Value error, ")
        match = _FIELD_PREFIX.match(reason)
        if match and err["type"] == "value_error":
            loc.append(match.group(1))
            reason = match.group(2)
        if err["type"] == "extra_forbidden":
            reason = "unknown field"
        field = ".".join(loc) or "(scenario)"
        out.append({"field": field, "reason": reason})
    return out


class ScenarioInvalid(ValidationFailed):
    """A scenario spec failed validation; ``errors`` lists every ``{field, reason}``."""

    def __init__(self, errors: list[dict[str, str]], source: str | None = None) -> None:
        first = errors[0] if errors else {"field": "(scenario)", "reason": "invalid"}
        super().__init__(first["field"], first["reason"])
        self.errors = errors
        self.source = source

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return where + "; ".join(f"{e['field']}: {e['reason']}" for e in self.errors)

    def to_dict(self) -> dict:
        return {"error": "validation_failed", "field": self.field, "detail": self.reason, "errors": self.errors}


def parse_scenario(data: Any, *, base_dir: str | Path | None = None, source: str | None = None) -> Scenario:
    """Validate a mapping into a :class:`Scenario`; raises :class:`ScenarioInvalid` naming each field."""
    if isinstance(data, Scenario):
        return data
    if not isinstance(data, dict):
        raise ScenarioInvalid([{"field": "(scenario)", "reason": "a scenario must be a mapping"}], source)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioInvalid(validation_errors(exc), source) from None
    return scenario.with_base_dir(base_dir)
