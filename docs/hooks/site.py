"""MkDocs hook: the generated pages of the site (nothing here is a second copy of the code's text).

- ``api/<module>.md``: one page per public module, listing the module's public names that
  ``jaxloss.__all__`` exports; mkdocstrings renders each from its docstring and signature.
  ``api/index.md`` lists every public name with a link. After the build, every name of
  ``jaxloss.__all__`` must be in the site's object inventory (``objects.inv``), or the build fails.
- ``catalog.md``: the loss catalog from ``docs/catalog.py`` (the same source as the README's table).
- ``changelog.md`` and ``contributing.md``: the repository's CHANGELOG.md and CONTRIBUTING.md, with their
  ``docs/...`` links pointed at the site's pages.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pathlib
import re
import sys
import types
import zlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _use_this_checkout():
    """Document this checkout's jaxloss (MkDocs resets sys.path after loading hooks, so at each event)."""
    from mkdocs.exceptions import PluginError

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = sys.modules.get("jaxloss")
    if module is not None and not pathlib.Path(module.__file__).resolve().is_relative_to(ROOT):
        raise PluginError(f"jaxloss was imported from {module.__file__}, not from {ROOT}: set PYTHONPATH={ROOT}")


def _catalog():
    spec = importlib.util.spec_from_file_location("jaxloss_docs_catalog", ROOT / "docs" / "catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def api_groups() -> list[tuple[str, list[str]]]:
    """``[(module path, [names])]``: each name of ``jaxloss.__all__`` under the first public module that
    exports it (its family), else under ``jaxloss`` itself; modules in order of first appearance."""
    import jaxloss

    public_modules = []
    for name in jaxloss.__all__:
        obj = getattr(jaxloss, name)
        if isinstance(obj, types.ModuleType):
            public_modules.append(obj)
    for name, obj in vars(jaxloss).items():
        if isinstance(obj, types.ModuleType) and not name.startswith("_") and obj.__name__.startswith("jaxloss."):
            if obj not in public_modules and hasattr(obj, "__all__"):
                public_modules.append(obj)
    groups: dict[str, list[str]] = {}
    for name in jaxloss.__all__:
        obj = getattr(jaxloss, name)
        if isinstance(obj, types.ModuleType):
            groups.setdefault(obj.__name__, [])
            continue
        home = next(
            (m.__name__ for m in public_modules if name in getattr(m, "__all__", ()) and getattr(m, name) is obj),
            "jaxloss",
        )
        groups.setdefault(home, []).append(name)
    # A module listed in __all__ (e.g. jaxloss.prox) documents its own __all__.
    for module_name, names in groups.items():
        if not names and module_name != "jaxloss":
            names.extend(importlib.import_module(module_name).__all__)
    return list(groups.items())


def _first_line(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ").replace("``", "`").strip()


def api_page(module_name: str, names: list[str]) -> str:
    if module_name == "jaxloss":
        lines = ["# jaxloss (top level)", "", "Names defined in the package itself or its private modules.", ""]
        for name in names:
            lines += [f"::: jaxloss.{name}", "    options:", "      show_root_full_path: true", ""]
        return "\n".join(lines)
    members = "\n".join(f"        - {n}" for n in names)
    return f"# `{module_name}`\n\n::: {module_name}\n    options:\n      show_root_heading: false\n      members:\n{members}\n"


def api_index(groups) -> str:
    import jaxloss

    lines = [
        "# API reference",
        "",
        "Every public name of `jaxloss` (`jaxloss.__all__`), generated from the docstrings and signatures. "
        "Each is reachable as `jaxloss.<name>` and from the module it is listed under.",
        "",
    ]
    for module_name, names in groups:
        page = _page_name(module_name)
        mod = importlib.import_module(module_name)
        lines += [f"## [`{module_name}`]({page})", "", _first_line(mod), ""]
        if not names:
            continue
        lines += ["| name | summary |", "|---|---|"]
        for name in names:
            obj = getattr(jaxloss, name, None) or getattr(mod, name)
            anchor = f"{module_name}.{name}" if module_name != "jaxloss" else f"jaxloss.{name}"
            lines.append(f"| [`{name}`][{anchor}] | {_first_line(obj).replace('|', chr(92) + '|')} |")
        lines.append("")
    return "\n".join(lines)


def _page_name(module_name: str) -> str:
    return f"{module_name}.md"


def _rewrite_root_links(text: str) -> str:
    """CHANGELOG.md / CONTRIBUTING.md link to docs/x.md and to each other; on the site they are pages."""
    text = re.sub(r"\]\(docs/([^)]+)\)", r"](\1)", text)
    text = text.replace("](CHANGELOG.md)", "](changelog.md)").replace("](CONTRIBUTING.md)", "](contributing.md)")
    # Other repository files (README.md, Makefile, ...) are not pages: show them as code, not links.
    return re.sub(
        r"\[([^\]]+)\]\((?!https?://|#)([^)]+\.(?:py|toml|cfg|in|md|yml)|Makefile|\.ci/run)\)", r"\1 (`\2`)", text
    )


def on_config(config, **kwargs):
    _use_this_checkout()
    groups = api_groups()
    entries = [{"Overview": "api/index.md"}] + [{m: f"api/{_page_name(m)}"} for m, _ in groups]
    _replace_nav(config["nav"], "API reference", entries)
    return config


def _replace_nav(nav, title, entries):
    for i, item in enumerate(nav):
        if isinstance(item, dict) and title in item:
            nav[i] = {title: entries}
            return
    raise ValueError(f"mkdocs.yml nav has no {title!r} entry")


def on_files(files, config, **kwargs):
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    _use_this_checkout()
    catalog = _catalog()
    problems = catalog.check_peers()
    if problems:
        raise PluginError("docs/catalog.py: " + "; ".join(problems))
    intro = (
        "# Catalog\n\nEvery loss, by family: what it computes (its docstring's first line), the domain of its "
        "inputs as declared in the code (—: any real values), its counterparts in PyTorch (`torch.nn.functional`), optax "
        "(`optax.losses`) and Keras 3 (`keras.losses`), and the independent reference its tests compare "
        "against. The README's table comes from the same source (`docs/catalog.py`, `make catalog`).\n\n"
    )
    files.append(File.generated(config, "catalog.md", content=intro + catalog.docs_table()))
    groups = api_groups()
    files.append(File.generated(config, "api/index.md", content=api_index(groups)))
    for module_name, names in groups:
        files.append(File.generated(config, f"api/{_page_name(module_name)}", content=api_page(module_name, names)))
    for src, dst in (("CHANGELOG.md", "changelog.md"), ("CONTRIBUTING.md", "contributing.md")):
        path = ROOT / src
        if path.exists():
            files.append(File.generated(config, dst, content=_rewrite_root_links(path.read_text())))
    return files


def on_page_content(html, page, config, files, **kwargs):
    """Docstrings use Sphinx roles (``:func:`x```); on this site the code span alone is shown."""
    return re.sub(r":(?:mod|func|class|meth|attr|data|obj|exc):(?=<code>)", "", html)


def inventory_names(site_dir: pathlib.Path) -> set[str]:
    """Object names in a Sphinx-format ``objects.inv`` (what mkdocstrings wrote)."""
    data = (site_dir / "objects.inv").read_bytes()
    body = data.split(b"\n", 4)[4]  # four header lines, then zlib
    return {line.split(" ", 1)[0] for line in zlib.decompress(body).decode().splitlines() if line}


def missing_from_inventory(names: set[str]) -> list[str]:
    import jaxloss

    missing = []
    for name in jaxloss.__all__:
        if f"jaxloss.{name}" in names:
            continue
        if not any(n.startswith("jaxloss.") and n.rsplit(".", 1)[-1] == name for n in names):
            missing.append(name)
    return missing


def on_post_build(config, **kwargs):
    from mkdocs.exceptions import PluginError

    _use_this_checkout()
    missing = missing_from_inventory(inventory_names(pathlib.Path(config["site_dir"])))
    if missing:
        raise PluginError(f"API reference: names of jaxloss.__all__ missing from the site: {missing}")
