"""Named building blocks: tools, checkers and scenario families, registered with a decorator.

A scenario refers to them by name (``handler: calculator``, ``checker: {python: numeric_answer}``,
``family: calculator``). Code always runs in the sandbox by reference (``module:qualname``), so a
registered function must be importable at module level.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.envs._spec import Scenario

# Modules that register the built-in families, tools and checkers; imported on first lookup.
BUILTIN_MODULES = (
    "workbench.envs.builtin_tools",
    "workbench.envs.families.calculator",
    "workbench.envs.families.inventory",
    "workbench.envs.families.forms",
)

_TOOLS: dict[str, Callable[..., Any]] = {}
_CHECKERS: dict[str, Callable[..., Any]] = {}
_FAMILIES: dict[str, Family] = {}
_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def _reference(fn: Callable[..., Any]) -> str:
    if "<locals>" in fn.__qualname__:
        raise ValueError(f"{fn.__qualname__}: registered functions must be defined at module level")
    return f"{fn.__module__}:{fn.__qualname__}"


def tool(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(ctx, **arguments)`` as a tool handler scenarios can name in ``handler:``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _reference(fn)
        _TOOLS[name or fn.__name__] = fn
        return fn

    return register


def checker(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(ctx, **args)`` as a checker scenarios can name in ``checker: {python: NAME}``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _reference(fn)
        _CHECKERS[name or fn.__name__] = fn
        return fn

    return register


def resolve_reference(ref: str, *, kind: str, base_dir: Path | None = None) -> str:
    """Turn a spec reference into what the sandbox imports: ``module:qualname`` or ``/abs/file.py:qualname``.

    ``kind`` is ``tool`` or ``checker`` (which registry a bare name is looked up in).
    Raises LookupError naming what was not found.
    """
    if ":" not in ref:
        registry = _TOOLS if kind == "tool" else _CHECKERS
        if ref not in registry:
            _load_builtins()
        if ref not in registry:
            known = ", ".join(sorted(registry)) or "none"
            raise LookupError(f"no {kind} registered as {ref!r} (registered: {known})")
        return _reference(registry[ref])
    target, _, qualname = ref.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_absolute():
            from workbench.envs._library import default_scenarios_dir

            path = (base_dir or default_scenarios_dir()) / path
        if not path.is_file():
            raise LookupError(f"{ref}: file {path} does not exist")
        return f"{path.resolve()}:{qualname}"
    top = target.split(".")[0]
    # only the top-level name is looked up: importing a package here would run its code
    # outside the sandbox
    beside = base_dir is not None and ((base_dir / f"{top}.py").is_file() or (base_dir / top).is_dir())
    if not beside and importlib.util.find_spec(top) is None:
        raise LookupError(f"{ref}: module {top!r} cannot be imported")
    return ref


def registered_tools() -> dict[str, str]:
    """Registered tool names and the references they resolve to."""
    _load_builtins()
    return {name: _reference(fn) for name, fn in sorted(_TOOLS.items())}


def registered_checkers() -> dict[str, str]:
    """Registered checker names and the references they resolve to."""
    _load_builtins()
    return {name: _reference(fn) for name, fn in sorted(_CHECKERS.items())}


# ----------------------------------------------------------------------------- families


@dataclass
class Family:
    """A seeded generator of scenarios for a split.

    ``generator(split, rng, params) -> Iterable[Scenario]`` yields candidate tasks in a seeded
    order (``rng`` is a ``random.Random``); the family keeps those whose content key falls in the
    requested split, so train and test never share a task whatever the seed.
    """

    name: str
    type: str
    generator: Callable[..., Iterable[Scenario]]
    description: str = ""
    counts: dict[str, int] = field(default_factory=lambda: {"train": 200, "test": 60})
    params: dict[str, Any] = field(default_factory=dict)

    def generate(
        self,
        split: str = "train",
        *,
        seed: int = 0,
        count: int | None = None,
        base_dir: str | Path | None = None,
        **params: Any,
    ) -> list[Scenario]:
        """``count`` tasks of ``split`` (default: the family's count for it), in a seeded order."""
        import random

        from workbench.envs._spec import parse_scenario

        if split not in ("train", "test"):
            raise ValueError(f"split: must be train or test, not {split!r}")
        want = self.counts[split] if count is None else count
        merged = {**self.params, **params}
        rng = random.Random(f"{self.name}:{split}:{seed}")
        tasks: list[Scenario] = []
        seen: set[str] = set()
        misses = 0
        for candidate in self.generator(split, rng, merged):
            if len(tasks) >= want or misses > 20_000:
                break
            scenario = parse_scenario(candidate) if isinstance(candidate, dict) else candidate
            key = scenario.metadata.get("task_key") or scenario.instructions
            if key in seen or split_of(self.name, key) != split:
                misses += 1
                continue
            misses = 0
            seen.add(key)
            index = len(tasks)
            scenario = scenario.model_copy(
                update={
                    "name": f"{self.name}-{split}-{index:04d}",
                    "split": split,
                    "family": self.name,
                    "tags": sorted(set(scenario.tags) | {self.name, f"split:{split}"}),
                }
            )
            tasks.append(scenario.with_base_dir(base_dir) if base_dir is not None else scenario)
        if len(tasks) < want:
            raise ValueError(f"family {self.name} produced only {len(tasks)} {split} tasks, {want} requested")
        return tasks


def split_of(family_name: str, task_key: str) -> str:
    """Which split a task belongs to: a stable hash of its content key (about 1 in 4 is test)."""
    import hashlib

    digest = hashlib.sha256(f"{family_name}\0{task_key}".encode()).digest()
    return "test" if digest[0] % 4 == 0 else "train"


def family(
    name: str,
    *,
    type: str,
    counts: dict[str, int] | None = None,
    params: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Iterable[Scenario]]], Callable[..., Iterable[Scenario]]]:
    """Register a generator ``fn(split, rng, params)`` as the scenario family ``name``.

    The family's description is its module's docstring (what it tests, how to run it).
    """

    def register(fn: Callable[..., Iterable[Scenario]]) -> Callable[..., Iterable[Scenario]]:
        module = inspect.getmodule(fn)
        _FAMILIES[name] = Family(
            name=name,
            type=type,
            generator=fn,
            description=inspect.cleandoc((module.__doc__ if module else None) or fn.__doc__ or ""),
            counts=dict(counts or {"train": 200, "test": 60}),
            params=dict(params or {}),
        )
        return fn

    return register


def get_family(name: str) -> Family:
    """The family registered as ``name`` (a ``module`` path is imported first if given as ``module:name``)."""
    if ":" in name:
        module, _, name = name.partition(":")
        importlib.import_module(module)
    if name not in _FAMILIES:
        _load_builtins()
    if name not in _FAMILIES:
        raise LookupError(f"no scenario family {name!r} (registered: {', '.join(sorted(_FAMILIES)) or 'none'})")
    return _FAMILIES[name]


def list_families() -> dict[str, Family]:
    """Every registered family by name (the built-in ones included)."""
    _load_builtins()
    return dict(sorted(_FAMILIES.items()))
