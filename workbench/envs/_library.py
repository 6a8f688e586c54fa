"""The scenario library on disk: YAML files in ``scenarios/``.

A file holds either one scenario (it has a ``type``) or a family (it has a ``family``: the
registered generator's name, the module that registers it, and the command that runs it).
These functions back ``workbench scenarios list | show | validate``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workbench.envs._registry import Family, get_family, resolve_reference
from workbench.envs._spec import (
    McpToolRef,
    PythonChecker,
    Scenario,
    ScenarioInvalid,
    ToolSpec,
    parse_scenario,
    validation_errors,
)


def default_scenarios_dir() -> Path:
    """``$WORKBENCH_SCENARIOS_DIR``, else ./scenarios, else the repository's scenarios/ dir."""
    configured = os.environ.get("WORKBENCH_SCENARIOS_DIR")
    if configured:
        return Path(configured).resolve()
    here = Path.cwd() / "scenarios"
    if here.is_dir():
        return here.resolve()
    return Path(__file__).resolve().parents[2] / "scenarios"


class FamilySpec(BaseModel):
    """A family file: which generator makes the tasks, with what parameters, and how to run it."""

    model_config = ConfigDict(extra="forbid")

    family: str = Field(pattern=r"^[A-Za-z_][\w\-]*$", description="Registered family name.")
    generator: str | None = Field(None, description="Module that registers the family (imported first).")
    description: str | None = None
    command: str = Field(min_length=1, description="The command that runs this family.")
    seed: int = 0
    counts: dict[str, int] | None = Field(None, description="Tasks per split (train, test); default the family's.")
    params: dict[str, Any] = Field(default_factory=dict, description="Passed to the generator.")

    _base_dir: Path | None = None

    def resolve(self) -> Family:
        """The registered :class:`Family` (importing ``generator`` first)."""
        if self.generator:
            importlib.import_module(self.generator.partition(":")[0])
        return get_family(self.family)

    def generate(self, split: str = "train", *, seed: int | None = None, count: int | None = None) -> list[Scenario]:
        """The family's tasks for ``split`` with this file's seed, counts and params."""
        fam = self.resolve()
        if count is None and self.counts and split in self.counts:
            count = self.counts[split]
        return fam.generate(
            split,
            seed=self.seed if seed is None else seed,
            count=count,
            base_dir=self._base_dir,
            **self.params,
        )


class LibraryEntry(BaseModel):
    """One file of the library, as ``scenarios list`` shows it."""

    name: str
    kind: str = Field(description="scenario or family")
    type: str | None = None
    description: str = ""
    path: str
    version: str | None = None
    split: str | None = None
    counts: dict[str, int] | None = None
    command: str | None = None
    errors: list[dict[str, str]] = Field(default_factory=list)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioInvalid([{"field": "(file)", "reason": f"cannot read: {exc.strerror}"}], str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioInvalid([{"field": "(file)", "reason": f"YAML syntax error{where}: {problem}"}], str(path)) from None


def load_file(path: str | Path) -> Scenario | FamilySpec:
    """A scenario or family from a YAML file; raises :class:`ScenarioInvalid` listing every problem."""
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ScenarioInvalid([{"field": "(file)", "reason": "the file must hold a mapping"}], str(path))
    if "family" in data and "type" not in data:
        try:
            spec = FamilySpec.model_validate(data)
        except ValidationError as exc:
            raise ScenarioInvalid(validation_errors(exc), str(path)) from None
        spec._base_dir = path.parent.resolve()
        return spec
    return parse_scenario(data, base_dir=path.parent, source=str(path))


def load_scenario(source: str | Path | dict[str, Any]) -> Scenario:
    """A single scenario from a YAML file path or a mapping."""
    if isinstance(source, dict):
        return parse_scenario(source)
    loaded = load_file(source)
    if isinstance(loaded, FamilySpec):
        raise ScenarioInvalid(
            [{"field": "family", "reason": "this file is a family; generate its tasks with FamilySpec.generate()"}],
            str(source),
        )
    return loaded


def load_family(source: str | Path) -> FamilySpec:
    """A family file."""
    loaded = load_file(source)
    if not isinstance(loaded, FamilySpec):
        raise ScenarioInvalid([{"field": "family", "reason": "this file is a single scenario, not a family"}], str(source))
    return loaded


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_library(path: str | Path | None = None) -> list[LibraryEntry]:
    """Every scenario and family file under ``path`` (default the scenarios dir), sorted by name.

    A file that fails validation is listed with its ``errors`` instead of raising.
    """
    root = Path(path) if path is not None else default_scenarios_dir()
    entries: list[LibraryEntry] = []
    for file in _files(root):
        try:
            loaded = load_file(file)
        except ScenarioInvalid as exc:
            entries.append(LibraryEntry(name=file.stem, kind="invalid", path=str(file), errors=exc.errors))
            continue
        if isinstance(loaded, FamilySpec):
            try:
                fam = loaded.resolve()
            except (LookupError, ImportError) as exc:
                entries.append(
                    LibraryEntry(
                        name=loaded.family, kind="family", path=str(file), command=loaded.command,
                        errors=[{"field": "family", "reason": str(exc)}],
                    )
                )
                continue
            entries.append(
                LibraryEntry(
                    name=loaded.family,
                    kind="family",
                    type=fam.type,
                    description=loaded.description or fam.description.split("\n\n")[0],
                    path=str(file),
                    counts=loaded.counts or fam.counts,
                    command=loaded.command,
                )
            )
        else:
            entries.append(
                LibraryEntry(
                    name=loaded.name,
                    kind="scenario",
                    type=loaded.type,
                    description=loaded.description,
                    path=str(file),
                    version=loaded.version,
                    split=loaded.split,
                    command=loaded.metadata.get("command"),
                )
            )
    return sorted(entries, key=lambda e: e.name)


def reference_errors(scenario: Scenario) -> list[dict[str, str]]:
    """References (tool handlers, checker, route handlers, oracle policy) that do not resolve."""
    errors: list[dict[str, str]] = []
    base = scenario.base_dir

    def check(ref: str, kind: str, field: str) -> None:
        try:
            resolve_reference(ref, kind=kind, base_dir=base)
        except LookupError as exc:
            errors.append({"field": field, "reason": str(exc)})

    for i, tool in enumerate(scenario.tools):
        if isinstance(tool, ToolSpec) and tool.handler:
            check(tool.handler, "tool", f"tools.{i}.handler")
        elif isinstance(tool, McpToolRef) and tool.mcp.command:
            pass  # started at run time
    if isinstance(scenario.checker, PythonChecker):
        check(scenario.checker.python, "checker", "checker.python")
    if scenario.browser is not None:
        for i, route in enumerate(scenario.browser.routes):
            check(route.handler, "tool", f"browser.routes.{i}.handler")
        pages = scenario.resolve_path(scenario.browser.pages_dir)
        if not pages.is_dir():
            errors.append({"field": "browser.pages_dir", "reason": f"directory {pages} does not exist"})
    if scenario.oracle is not None and scenario.oracle.policy:
        check(scenario.oracle.policy, "tool", "oracle.policy")
    return errors


def validate_file(path: str | Path) -> list[dict[str, str]]:
    """Every problem with a scenario or family file as ``{field, reason}``; empty when valid.

    Besides the spec, checks that referenced code resolves; for a family, generates a few tasks
    of each split and checks them the same way.
    """
    try:
        loaded = load_file(path)
    except ScenarioInvalid as exc:
        return exc.errors
    if isinstance(loaded, Scenario):
        return reference_errors(loaded)
    try:
        loaded.resolve()
    except (LookupError, ImportError) as exc:
        return [{"field": "family" if isinstance(exc, LookupError) else "generator", "reason": str(exc)}]
    errors: list[dict[str, str]] = []
    for split in ("train", "test"):
        try:
            tasks = loaded.generate(split, count=3)
        except ScenarioInvalid as exc:
            return [{"field": f"(generated {split} task) {e['field']}", "reason": e["reason"]} for e in exc.errors]
        except (ValueError, TypeError) as exc:
            return [{"field": "params", "reason": f"generator failed: {exc}"}]
        for task in tasks:
            errors.extend({"field": f"({task.name}) {e['field']}", "reason": e["reason"]} for e in reference_errors(task))
    return errors


def find_scenario(name: str, library: str | Path | None = None) -> Scenario:
    """A scenario by name: a single-scenario file's name, or a family task ``<family>-<split>-<index>``."""
    root = Path(library) if library is not None else default_scenarios_dir()
    families: dict[str, FamilySpec] = {}
    for file in _files(root):
        try:
            loaded = load_file(file)
        except ScenarioInvalid:
            continue
        if isinstance(loaded, Scenario) and loaded.name == name:
            return loaded
        if isinstance(loaded, FamilySpec):
            families[loaded.family] = loaded
    fam_name, _, rest = name.partition("-")
    split, _, index = rest.partition("-")
    if fam_name in families and split in ("train", "test") and index.isdigit():
        tasks = families[fam_name].generate(split, count=int(index) + 1)
        return tasks[int(index)]
    raise LookupError(f"no scenario named {name!r} in {root}")


def show(name_or_path: str | Path, library: str | Path | None = None) -> dict[str, Any]:
    """What ``scenarios show`` prints: the spec and version of a scenario, or a family's summary
    with one sample task."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        loaded: Scenario | FamilySpec = load_file(path)
    else:
        root = Path(library) if library is not None else default_scenarios_dir()
        loaded = None  # type: ignore[assignment]
        for file in _files(root):
            try:
                candidate = load_file(file)
            except ScenarioInvalid:
                continue
            if isinstance(candidate, FamilySpec) and candidate.family == str(name_or_path):
                loaded = candidate
                break
        if loaded is None:
            loaded = find_scenario(str(name_or_path), root)
    if isinstance(loaded, FamilySpec):
        fam = loaded.resolve()
        sample = loaded.generate("train", count=1)[0]
        return {
            "kind": "family",
            "name": fam.name,
            "type": fam.type,
            "description": loaded.description or fam.description,
            "command": loaded.command,
            "counts": loaded.counts or fam.counts,
            "seed": loaded.seed,
            "params": loaded.params,
            "sample": {"name": sample.name, "version": sample.version, "spec": sample.spec()},
        }
    return {"kind": "scenario", "name": loaded.name, "version": loaded.version, "spec": loaded.spec()}
