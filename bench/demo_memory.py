"""Peak memory of the main job: runs `workbench demo [--quick]` and samples its whole process tree.

    .venv/bin/python bench/demo_memory.py --quick [--log demo.out]     # target: peak ≤ 8 GB

Prints the peak of the tree's summed PSS (proportional set size: pages shared between processes,
e.g. vLLM's forked workers or torch's mapped weights, are split between them instead of counted
once per process), the summed RSS at the same moment for comparison, and the largest processes.
WORKBENCH_HOME is taken from the environment (default ./.workbench), like `make demo`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

GB = 1024**3


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def sample(root: psutil.Process) -> tuple[int, int, list[tuple[int, str]]]:
    """Summed PSS and RSS of the tree now, and PSS per process."""
    pss = rss = 0
    per: list[tuple[int, str]] = []
    for proc in _tree(root):
        try:
            info = proc.memory_full_info()
            name = " ".join(proc.cmdline()[:3])[:80]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        pss, rss = pss + info.pss, rss + info.rss
        per.append((info.pss, name))
    return pss, rss, sorted(per, reverse=True)[:5]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--log", type=Path, help="keep the demo's own output (its summary tables) in this file")
    args = parser.parse_args()
    workbench = Path(sys.executable).with_name("workbench")
    command = [str(workbench), "demo", *(["--quick"] if args.quick else [])]
    started = time.perf_counter()
    output = args.log.open("w") if args.log else subprocess.DEVNULL
    child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=os.environ.copy())
    root = psutil.Process(child.pid)
    peak = (0, 0, [])
    while child.poll() is None:
        now = sample(root)
        if now[0] > peak[0]:
            peak = now
        time.sleep(args.interval)
    print(f"command: {' '.join(command)} → exit {child.returncode} in {time.perf_counter() - started:.0f} s")
    print(f"peak summed PSS {peak[0] / GB:.2f} GB (summed RSS at that moment {peak[1] / GB:.2f} GB; target ≤ 8 GB)")
    for pss, name in peak[2]:
        print(f"  {pss / GB:6.2f} GB  {name}")
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
