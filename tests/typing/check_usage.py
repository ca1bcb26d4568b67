"""Runs mypy on tests/typing/usage.py and checks it reports exactly the lines marked ``# expect-error``.

    python tests/typing/check_usage.py        # (`make typecheck` runs it after mypy on the package)

Fails if a deliberate mistake is not caught (an annotation missing or too loose), if it is caught with
another error code, or if a correct call is flagged (an annotation too strict).
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
USAGE = HERE / "usage.py"


def expected() -> set[tuple[int, str]]:
    out = set()
    for number, line in enumerate(USAGE.read_text().splitlines(), start=1):
        m = re.search(r"# expect-error: ([\w-]+)\s*$", line)
        if m:
            out.add((number, m.group(1)))
    return out


def reported(output: str) -> set[tuple[int, str]]:
    out = set()
    for m in re.finditer(r"^[^:\n]*usage\.py:(\d+): error: .*\[([\w-]+)\]$", output, flags=re.M):
        out.add((int(m.group(1)), m.group(2)))
    return out


def main() -> int:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--no-error-summary",
            "--show-error-codes",
            "--hide-error-context",
            str(USAGE.relative_to(ROOT)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    want, got = expected(), reported(proc.stdout)
    others = [line for line in proc.stdout.splitlines() if "error:" in line and "usage.py" not in line]
    for line in proc.stdout.splitlines():
        print("  " + line)
    ok = True
    if missed := sorted(want - got):
        print(f"NOT caught (line, code): {missed}")
        ok = False
    if extra := sorted(got - want):
        print(f"flagged but not expected (line, code): {extra}")
        ok = False
    if others:
        print("errors outside usage.py (the package must check clean):\n" + "\n".join(others))
        ok = False
    lines = USAGE.read_text().splitlines()
    for number, code in sorted(want & got):
        print(f"caught line {number} [{code}]: {lines[number - 1].split('#')[0].strip()}")
    print(f"usage.py: {len(want & got)} of {len(want)} deliberate mistakes caught, {len(got - want)} false alarms")
    return 0 if ok and proc.returncode in (0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
