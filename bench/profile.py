"""Profile the hot path with py-spy during a W1 run.

    python -m bench.profile [--executions 500] [--rate 100] [--out DIR]

Runs W1 (10-step no-op chain) against a fresh deployment while `py-spy record` samples the
orchestrator and the fn step service; writes each one's raw collapsed stacks to DIR and prints
the functions with the most inclusive and self samples, per process.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import Deployment
from bench.workloads import w1
from infra.local_kafka import ensure_up


def summarise(collapsed: Path, top: int = 25) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = Path(args.out or tempfile.mkdtemp(prefix="baton-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    broker = ensure_up()
    with Deployment(broker.bootstrap) as deployment:
        targets = {"orchestrator": deployment.orchestrator_services[0].pid, "fn": deployment.fn_services[0].pid}
        recorders = {
            name: subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", str(args.rate), "--format", "raw",
                                    "--output", str(out / f"{name}.collapsed"), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for name, pid in targets.items()
        }
        try:
            result = asyncio.run(w1(deployment, args.executions, args.in_flight))
        finally:
            for recorder in recorders.values():
                recorder.send_signal(2)  # SIGINT: py-spy writes what it has
                recorder.wait(30)
    print({k: v for k, v in result.items() if k != "cpu_seconds"})
    for name in targets:
        summary = summarise(out / f"{name}.collapsed")
        (out / f"{name}.summary.txt").write_text(summary)
        print(f"\n===== {name} =====\n{summary}")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
