"""`make bench`: runs every bench/bench_*.py and prints one table of their ratios.

Every `bench_*.py` here is found and run (bench_pages.py: server time of the list pages with
1,000 jobs). Each benchmark prints lines `BENCH <name> ratio=<x> target<=<y> [key=value ...]`; this runner
collects them. Ratios compare against a baseline measured in the same run, never a stored number.
"""

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LINE = re.compile(r"^BENCH (\S+) (.*)$")
# Benchmarks that train for an hour or more: run only with `run_all.py --slow` (or on their own).
SLOW = {"bench_quality.py"}


def main() -> int:
    rows, failed = [], []
    slow = "--slow" in sys.argv[1:]
    for script in sorted(HERE.glob("bench_*.py")):
        if script.name in SLOW and not slow:
            print(f"== {script.name}: skipped (slow; run_all.py --slow runs it)", flush=True)
            continue
        print(f"== {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            failed.append(script.name)
            sys.stderr.write(proc.stderr[-4000:])
        for line in proc.stdout.splitlines():
            match = LINE.match(line.strip())
            if match:
                fields = dict(part.split("=", 1) for part in match.group(2).split() if "=" in part)
                rows.append((match.group(1), fields))
    print("\n| benchmark | ratio | target | other figures |\n|---|---|---|---|")
    for name, fields in rows:
        ratio = fields.pop("ratio", "?")
        target = fields.pop("target<", fields.pop("target", "?"))
        other = ", ".join(f"{k}={v}" for k, v in fields.items())
        print(f"| {name} | {ratio} | {target} | {other} |")
    if failed:
        print(f"\nFailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
