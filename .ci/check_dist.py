"""Check the built distributions as a new user meets them (run by `make check-wheel`).

    python .ci/check_dist.py --python python3.11 dist/

1. The wheel holds the package, ``py.typed`` and the LICENSE, and its metadata states the license, the
   Python floor, classifiers and project URLs; the sdist holds the package and LICENSE and no tests (a
   decision: see MANIFEST.in).
2. A fresh virtual environment on the lowest claimed Python (``--python``) installs the wheel from PyPI
   dependencies alone (no checkout on the path), imports it and runs a jitted loss, whose value is checked
   against the float64 formula.
3. Where a Python below the floor is on this machine (python3.10, via PATH or pyenv), pip refuses the
   wheel there: the floor is a true statement both ways.
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

SMOKE = r"""
import sys, pathlib
import jax, jax.numpy as jnp
import jaxloss
here = pathlib.Path(jaxloss.__file__).resolve()
assert "site-packages" in here.parts, f"jaxloss imported from {here}, not from the installed wheel"
assert (here.parent / "py.typed").is_file(), "py.typed is not installed"
value = float(jax.jit(jaxloss.huber)(jnp.array([0.5, 2.0, -1.0]), jnp.zeros(3)))
expected = (0.5 * 0.5**2 + (2.0 - 0.5) + (1.0 - 0.5)) / 3  # Huber, delta=1, float64 formula
assert abs(value - expected) < 1e-6, (value, expected)
g = jax.grad(jaxloss.cross_entropy)(jnp.zeros((2, 3)), jnp.array([0, 2]))
assert abs(float(g[0, 0]) - (1 / 3 - 1) / 2) < 1e-6, g  # softmax - onehot, mean over 2 examples
print(f"python {sys.version.split()[0]}: jaxloss {jaxloss.__version__} from {here.parent}: "
      f"jit(huber) = {value:.7f} (formula {expected:.7f}), {len(jaxloss.__all__)} public names")
"""


def fail(msg: str) -> None:
    print(f"check-wheel: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def check_wheel_contents(whl: pathlib.Path) -> str:
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = z.read(meta_name).decode()
    for required in ("jaxloss/__init__.py", "jaxloss/py.typed", "jaxloss/_core.py"):
        if required not in names:
            fail(f"{whl.name} lacks {required}")
    if not any(re.search(r"\.dist-info/licenses/LICENSE$", n) for n in names):
        fail(f"{whl.name} lacks the LICENSE file")
    if any(n.startswith(("tests/", "benchmarks/", "examples/", "docs/")) for n in names):
        fail(f"{whl.name} ships non-package directories")
    for pattern in (
        r"^License-Expression: Apache-2.0$",
        r"^Requires-Python: >=3\.\d+$",
        r"^Classifier: Programming Language :: Python :: 3\.\d+$",
        r"^Classifier: Typing :: Typed$",
        r"^Project-URL: Documentation, ",
        r"^Project-URL: Source, ",
        r"^Requires-Dist: jax>=",
        r"^Provides-Extra: demo$",
    ):
        if not re.search(pattern, meta, flags=re.M):
            fail(f"{whl.name} METADATA lacks a line matching {pattern!r}")
    floor = re.search(r"^Requires-Python: >=(3\.\d+)$", meta, flags=re.M).group(1)
    print(f"wheel {whl.name}: {len(names)} files, py.typed, LICENSE, Requires-Python >={floor}")
    return floor


def check_sdist_contents(sdist: pathlib.Path) -> None:
    with tarfile.open(sdist) as t:
        names = [n.split("/", 1)[1] for n in t.getnames() if "/" in n]
    for required in ("LICENSE", "pyproject.toml", "README.md", "jaxloss/__init__.py", "jaxloss/py.typed"):
        if required not in names:
            fail(f"{sdist.name} lacks {required}")
    stray = [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/", "docs/", ".ci/"))]
    if stray:
        fail(f"{sdist.name} ships test/bench/docs files without what they need to run: {stray[:5]}")
    print(f"sdist {sdist.name}: {len(names)} files, package + LICENSE, no tests (decision: MANIFEST.in)")


def find_python(version: str) -> str | None:
    """An interpreter for `version` (e.g. "3.10") that actually runs: on PATH, else in pyenv's versions."""
    candidates = [shutil.which(f"python{version}")]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")))
    for c in candidates:
        if c and run([c, "-c", "import sys; print(sys.version_info[:2])"]).returncode == 0:
            return c
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", required=True, help="the lowest claimed Python (an interpreter)")
    parser.add_argument("dist", type=pathlib.Path)
    args = parser.parse_args()
    wheels, sdists = sorted(args.dist.glob("*.whl")), sorted(args.dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        fail(f"expected one wheel and one sdist in {args.dist}, found {wheels + sdists}")
    whl = wheels[0].resolve()
    floor = check_wheel_contents(whl)
    check_sdist_contents(sdists[0])

    lowest = find_python(floor) if args.python == f"python{floor}" else args.python
    if lowest is None:
        fail(f"no Python {floor} interpreter found ({args.python}): cannot test the claimed floor")
    version = run([lowest, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.strip()
    if version != floor:
        fail(f"{lowest} is Python {version}, but the wheel claims >={floor}: test the floor itself")

    with tempfile.TemporaryDirectory(prefix="jaxloss-wheel-") as tmp:
        venv = pathlib.Path(tmp) / "venv"
        r = run([lowest, "-m", "venv", str(venv)])
        if r.returncode:
            fail(f"venv on {lowest}: {r.stderr}")
        py = str(venv / "bin" / "python")
        r = run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(whl)])
        if r.returncode:
            fail(f"pip install {whl.name} on Python {version}:\n{r.stdout}\n{r.stderr}")
        r = run([py, "-m", "pip", "check"])
        if r.returncode:
            fail(f"pip check:\n{r.stdout}{r.stderr}")
        # Run outside the checkout, with nothing of it on the path.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        r = run([py, "-c", SMOKE], cwd=tmp, env=env)
        if r.returncode:
            fail(f"import + jitted loss from the installed wheel:\n{r.stdout}\n{r.stderr}")
        print(r.stdout.strip())

    below = f"3.{int(floor.split('.')[1]) - 1}"
    older = find_python(below)
    if older is None:
        print(f"no Python {below} on this machine: the refusal below the floor is not checked")
    else:
        with tempfile.TemporaryDirectory(prefix="jaxloss-wheel-old-") as tmp:
            run([older, "-m", "venv", tmp])
            r = run([f"{tmp}/bin/python", "-m", "pip", "install", "-q", "--no-deps", str(whl)])
            if r.returncode == 0 or "requires a different Python" not in r.stdout + r.stderr:
                fail(f"pip on Python {below} did not refuse the wheel:\n{r.stdout}{r.stderr}")
            print(f"Python {below} ({older}): pip refuses the wheel (requires a different Python)")
    print("check-wheel: OK")


if __name__ == "__main__":
    main()
