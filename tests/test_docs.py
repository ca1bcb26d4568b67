"""The documentation: generated parts cover the code, the README's catalog is current, guide snippets run,
and the examples follow the gallery convention (docs/gallery/README.md). The site itself is built by
`make docs` (strict), which also checks its object inventory against ``jaxloss.__all__``."""

import ast
import importlib
import importlib.util
import pathlib
import re

import pytest

import jaxloss

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


catalog = _load("docs/catalog.py", "jaxloss_docs_catalog")
site = _load("docs/hooks/site.py", "jaxloss_docs_site")


def test_readme_catalog_block_is_generated_and_current():
    text = (ROOT / "README.md").read_text()
    assert catalog.render_readme(text) == text, "README.md's catalog table is stale: run `make catalog`"


def test_catalog_rows_match_the_registry():
    assert catalog.check_peers() == []
    listed = [name for _, _, names in catalog.families() for name in names]
    assert len(listed) == len(set(listed))
    try:
        families = importlib.import_module("jaxloss._registry").LOSS_FAMILIES
    except ImportError:  # a checkout before the registry
        families = catalog._FALLBACK_FAMILIES
    assert set(listed) == {n for m in families for n in importlib.import_module(f"jaxloss.{m}").__all__}


def test_catalog_summaries_are_the_docstrings():
    table = catalog.docs_table()
    for name in ("huber", "cross_entropy", "ctc"):
        first = jaxloss.__dict__[name].__doc__.strip().splitlines()[0]
        cell = catalog.summary(jaxloss.__dict__[name])
        assert cell in table and cell.startswith(first.split("`")[0][:20]), (name, cell)
    assert "<code>-log p(labels &#124; logits)</code>" in catalog.summary(jaxloss.ctc)  # a pipe in code


def test_api_reference_lists_every_public_name():
    """Every name of jaxloss.__all__ is rendered by exactly one ``:::`` page of the generated reference."""
    pages = {module: site.api_page(module, names) for module, names in site.api_groups()}
    rendered = []
    for module, text in pages.items():
        rendered += [
            m.rsplit(".", 1)[-1] for m in re.findall(r"^::: (jaxloss\.\w+)$", text, flags=re.M) if module == "jaxloss"
        ]
        rendered += re.findall(r"^        - (\w+)$", text, flags=re.M)
        if module != "jaxloss":
            rendered += [module.rsplit(".", 1)[-1]] if module.rsplit(".", 1)[-1] in jaxloss.__all__ else []
    assert sorted(set(jaxloss.__all__) - set(rendered)) == []
    assert len([n for n in rendered if n in jaxloss.__all__]) >= len(jaxloss.__all__)


def test_inventory_check_reports_missing_names(tmp_path):
    """The post-build check (on the real objects.inv in `make docs`) flags a name that is not there."""
    names = {f"jaxloss.x.{n}" for n in jaxloss.__all__}
    assert site.missing_from_inventory(names) == []
    assert site.missing_from_inventory(names - {"jaxloss.x.huber"}) == ["huber"]


GUIDES = sorted((ROOT / "docs").rglob("*.md"))
SNIPPETS = [
    (path, i, code)
    for path in GUIDES
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S))
    if "gallery" not in path.parts
]


@pytest.mark.parametrize("path,i,code", SNIPPETS, ids=[f"{p.relative_to(ROOT)}[{i}]" for p, i, _ in SNIPPETS])
def test_guide_snippet_runs(path, i, code, capsys):
    exec(compile(code, f"{path.relative_to(ROOT)}[{i}]", "exec"), {})


EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_follows_the_gallery_convention(path):
    source = path.read_text()
    doc = ast.get_docstring(ast.parse(source))
    assert doc and doc.splitlines()[0].strip(), f"{path.name}: a module docstring whose first line is the title"
    for flag in ('"--quick"', '"--out"'):
        assert flag in source, f"{path.name}: accepts {flag} (docs/gallery/README.md)"
    assert "__main__" in source
