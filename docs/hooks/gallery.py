"""MkDocs hook: the gallery, one page per ``examples/*.py``, executed at build time.

Each example runs as ``python examples/<name>.py --quick --out <dir>`` (convention: docs/gallery/README.md)
in a fresh working directory with the repository on ``PYTHONPATH``; its page shows the docstring (title and
text), what it printed, every PNG it wrote, and its source. Results are cached under ``.cache/gallery/``,
keyed by the hash of the script, of ``jaxloss/`` and of the interpreter, so a rebuild reruns only what
changed. A failing or slow example (``JAXLOSS_GALLERY_TIMEOUT``, 600 s: a guard against hangs) fails the build with its stderr.

    python docs/hooks/gallery.py examples/<name>.py   # run one example as the build does; print its page
"""

from __future__ import annotations

import ast
import concurrent.futures
import hashlib
import importlib.metadata
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CACHE = ROOT / ".cache" / "gallery"
TIMEOUT = float(os.environ.get("JAXLOSS_GALLERY_TIMEOUT", "600"))  # a hang guard, far above the 30 s target
JOBS = int(os.environ.get("JAXLOSS_GALLERY_JOBS", "2"))


class GalleryError(Exception):
    pass


def examples() -> list[pathlib.Path]:
    return sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def docstring(path: pathlib.Path) -> tuple[str, str]:
    """``(title, body)`` from the module docstring of an example (title: its first line)."""
    doc = ast.get_docstring(ast.parse(path.read_text()), clean=True)
    if not doc:
        raise GalleryError(
            f"{path.relative_to(ROOT)} has no module docstring (its page text): see docs/gallery/README.md"
        )
    title, _, body = doc.partition("\n")
    return title.strip().rstrip("."), body.strip()


def _package_hash() -> str:
    h = hashlib.sha256(sys.version.encode())
    for dist in ("jax", "jaxlib", "optax", "numpy", "flax", "equinox", "scikit-learn", "torch", "opacus"):
        try:
            h.update(f"{dist}=={importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            pass
    for p in sorted((ROOT / "jaxloss").rglob("*.py")):
        h.update(p.relative_to(ROOT).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def run_example(path: pathlib.Path, package_hash: str, refresh: bool = False) -> dict:
    """Runs one example (or takes its cached result): ``{"stdout", "seconds", "pngs": [Path]}``.

    ``refresh=True`` always runs it (and refreshes the cache): the test suite runs every example this way,
    so a ``make docs`` after ``make test`` takes their results from the cache instead of running them again.
    """
    key = hashlib.sha256(path.read_bytes() + package_hash.encode()).hexdigest()[:16]
    cached = CACHE / path.stem / key
    if not refresh and (cached / "result.json").exists():
        result = json.loads((cached / "result.json").read_text())
        result["pngs"] = [cached / name for name in result["png_names"]]
        result["cached"] = True
        return result
    with tempfile.TemporaryDirectory(prefix=f"gallery-{path.stem}-") as work:
        out = pathlib.Path(work) / "out"
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        )
        env.update(MPLBACKEND="Agg", PYTHONHASHSEED="0")
        # one device, as a user runs it (the test session forces several host devices; multi_device.py asks for 8 itself)
        env["XLA_FLAGS"] = " ".join(
            f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f
        )
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, str(path), "--quick", "--out", str(out)],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
        except subprocess.TimeoutExpired as e:
            msg = f"{path.name} ran over {TIMEOUT:.0f} s with --quick (see docs/gallery/README.md)\n{e.stderr or ''}"
            raise GalleryError(msg) from None
        seconds = time.perf_counter() - t0
        if proc.returncode:
            raise GalleryError(f"{path.name} --quick exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
        pngs = sorted(pathlib.Path(work).rglob("*.png"))
        if cached.parent.exists():
            shutil.rmtree(cached.parent)  # older results of this example
        cached.mkdir(parents=True)
        names = []
        for png in pngs:
            name = png.name if png.name not in names else f"{len(names)}-{png.name}"
            shutil.copyfile(png, cached / name)
            names.append(name)
        result = {"stdout": proc.stdout, "seconds": round(seconds, 1), "png_names": names}
        (cached / "result.json").write_text(json.dumps(result))
    result["pngs"] = [cached / n for n in names]
    result["cached"] = False
    return result


def page(path: pathlib.Path, result: dict) -> str:
    title, body = docstring(path)
    name = path.stem
    lines = [f"# {title}", "", body, ""]
    lines += [
        "## Output",
        "",
        f"`python examples/{name}.py --quick` (what the documentation build runs; {result['seconds']:.0f} s on "
        "the build machine; without `--quick` the example runs at full size):",
        "",
        "```text",
        result["stdout"].rstrip() or "(printed nothing)",
        "```",
        "",
    ]
    if result["pngs"]:
        lines += ["## Plots", ""]
        for png in result["pngs"]:
            lines += [f"![{png.stem}]({name}/{png.name})", ""]
    source = path.read_text().rstrip().replace("\n", "\n    ")
    lines += [f'??? example "Source: examples/{name}.py"', "", "    ```python", f"    {source}", "    ```", ""]
    return "\n".join(lines)


def index_page(items: list[tuple[pathlib.Path, str]]) -> str:
    convention = (ROOT / "docs" / "gallery" / "README.md").read_text()
    convention = convention.split("\n", 1)[1] if convention.startswith("# ") else convention
    convention = convention.replace("\n## ", "\n### ")
    lines = [
        "# Gallery",
        "",
        "Complete programs on bundled or generated data, each executed when this site was built: its text, the "
        "table it printed and the plots it drew. Run any of them from the repository root with "
        "`python examples/<name>.py` (`pip install -e '.[demo]'` first).",
        "",
    ]
    for path, title in items:
        lines.append(f"- [{title}]({path.stem}.md) — `examples/{path.name}`")
    lines += ["", "## Writing an example", "", convention.strip(), ""]
    return "\n".join(lines)


def run_all() -> list[tuple[pathlib.Path, dict]]:
    paths = examples()
    package_hash = _package_hash()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, JOBS)) as pool:
        futures = {p: pool.submit(run_example, p, package_hash) for p in paths}
        errors, results = [], []
        for p in paths:
            try:
                results.append((p, futures[p].result()))
            except GalleryError as e:
                errors.append(str(e))
    if errors:
        raise GalleryError("\n\n".join(errors))
    return results


# ---- MkDocs events --------------------------------------------------------------------------------------


def on_config(config, **kwargs):
    entries = [{"Overview": "gallery/index.md"}]
    entries += [{docstring(p)[0]: f"gallery/{p.stem}.md"} for p in examples()]
    for i, item in enumerate(config["nav"]):
        if isinstance(item, dict) and "Gallery" in item:
            config["nav"][i] = {"Gallery": entries}
            return config
    raise GalleryError("mkdocs.yml nav has no 'Gallery' entry")


def on_files(files, config, **kwargs):
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    try:
        results = run_all()
    except GalleryError as e:
        raise PluginError(f"gallery: {e}") from None
    files.append(
        File.generated(config, "gallery/index.md", content=index_page([(p, docstring(p)[0]) for p, _ in results]))
    )
    for path, result in results:
        files.append(File.generated(config, f"gallery/{path.stem}.md", content=page(path, result)))
        for png in result["pngs"]:
            files.append(File.generated(config, f"gallery/{path.stem}/{png.name}", abs_src_path=str(png)))
    ran = [p.stem for p, r in results if not r["cached"]]
    print(f"gallery: {len(results)} examples ({len(ran)} run, {len(results) - len(ran)} cached)", file=sys.stderr)
    return files


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        p = pathlib.Path(arg).resolve()
        print(page(p, run_example(p, _package_hash())))
