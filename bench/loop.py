"""The learning loop on CPU: base eval → rollouts + oracle demonstrations → SFT → one RFT round →
eval again → promotion → deployment, with a table of success rates (95 % CI), time and cost.

    .venv/bin/python bench/loop.py            # full sizes (target: >= +30 points on calculator/test)
    .venv/bin/python bench/loop.py --quick    # a few minutes, every stage once
    .venv/bin/python bench/loop.py --family inventory

Runs on WORKBENCH_HOME (default ./.workbench) by materializing the loop's Dagster assets, as
`make demo` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assets.closed_loop import run_closed_loop  # noqa: E402
from workbench.config import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized stages")
    parser.add_argument("--family", default="calculator")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is faster on a busy 2-core box)")
    args = parser.parse_args()
    overrides = {"num_threads": args.threads} if args.threads else {}
    try:
        run_closed_loop(Settings(), args.family, quick=args.quick, overrides=overrides)
    finally:
        from workbench.runtime import serving

        serving.close()


if __name__ == "__main__":
    main()
