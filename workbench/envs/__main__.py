"""``python -m workbench.envs``: list, show, validate and run scenarios without the full CLI.

    python -m workbench.envs list [--library scenarios]
    python -m workbench.envs show calculator | scenarios/hello.yaml | calculator-test-0003
    python -m workbench.envs validate scenarios/*.yaml
    python -m workbench.envs run scenarios/calculator.yaml --split test --policy oracle [--replay]

Exit code 0 on success, 1 when validation fails or a run does not succeed as expected, 2 on
bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from workbench.envs._library import FamilySpec, find_scenario, load_file, load_library, show, validate_file
from workbench.envs._policies import run_episode
from workbench.envs._replay import replay
from workbench.envs._spec import Scenario, ScenarioInvalid


def _list(args: argparse.Namespace) -> int:
    entries = load_library(args.library)
    for entry in entries:
        if entry.errors:
            print(f"{entry.name:<24} INVALID  {entry.path}: {entry.errors[0]['field']}: {entry.errors[0]['reason']}")
        elif entry.kind == "family":
            counts = ", ".join(f"{k} {v}" for k, v in (entry.counts or {}).items())
            print(f"{entry.name:<24} family   {entry.type:<8} {counts:<20} {entry.description}")
        else:
            print(f"{entry.name:<24} scenario {entry.type:<8} {entry.version[:12]:<20} {entry.description}")
    return 1 if any(e.errors for e in entries) else 0


def _show(args: argparse.Namespace) -> int:
    try:
        print(json.dumps(show(args.name, args.library), indent=2, sort_keys=True))
    except (LookupError, ScenarioInvalid) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _validate(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.paths:
        errors = validate_file(path)
        if errors:
            failed += 1
            for error in errors:
                print(f"{path}: {error['field']}: {error['reason']}")
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


def _tasks(args: argparse.Namespace) -> list[Scenario]:
    path = Path(args.target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        loaded = load_file(path)
        if isinstance(loaded, FamilySpec):
            return loaded.generate(args.split, seed=args.seed, count=args.count)
        return [loaded]
    return [find_scenario(args.target, args.library)]


def _run(args: argparse.Namespace) -> int:
    try:
        tasks = _tasks(args)
    except (LookupError, ScenarioInvalid) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    wins = identical = 0
    started = time.perf_counter()
    for i, task in enumerate(tasks):
        trace = run_episode(task, args.policy, seed=args.seed + i)
        wins += bool(trace["success"])
        line = f"{task.name:<28} {trace['status']:<8} steps={len(trace['steps']) - 1:<3} {trace['reason']}"
        if args.replay:
            same = replay(trace)
            identical += same["identical"]
            line += "  replay=" + ("identical" if same["identical"] else f"diverged@{same['first_divergence']['step']}")
        if args.verbose or len(tasks) <= 10:
            print(line)
    seconds = time.perf_counter() - started
    summary = f"{args.policy}: {wins}/{len(tasks)} succeeded ({100 * wins / max(1, len(tasks)):.0f} %) in {seconds:.1f} s"
    if args.replay:
        summary += f"; replay identical {identical}/{len(tasks)}"
    print(summary)
    if args.policy == "oracle":
        return 0 if wins == len(tasks) and (not args.replay or identical == len(tasks)) else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m workbench.envs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", default=None, help="scenario directory (default: ./scenarios)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list scenarios and families").set_defaults(fn=_list)
    p = sub.add_parser("show", help="show a scenario or family")
    p.add_argument("name")
    p.set_defaults(fn=_show)
    p = sub.add_parser("validate", help="validate scenario or family files")
    p.add_argument("paths", nargs="+")
    p.set_defaults(fn=_validate)
    p = sub.add_parser("run", help="run a scenario, or a family's split, with a scripted policy")
    p.add_argument("target", help="a YAML file or a scenario name")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--count", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--policy", default="oracle", choices=["oracle", "random"])
    p.add_argument("--replay", action="store_true", help="replay every run and compare observations")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(fn=_run)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
