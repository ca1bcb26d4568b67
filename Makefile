# Quick start: `make demo` runs the main job, `make test` the whole suite. Both create and reuse .venv;
# each target installs only its own extra (`make demo` never installs torch or Keras; `make test` then adds
# the test extra to the same venv). See CONTRIBUTING.md for every target.
PYTHON ?= python3
# The lowest Python that pyproject.toml claims (requires-python); `make check-wheel` installs the wheel on it.
PYTHON_LOWEST ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q

.PHONY: demo test lint format-check bench check-wheel typecheck docs docs-serve catalog clean

# The site is built from this checkout; the material theme's banner about MkDocs 2 is not a build warning.
DOCS_ENV := PYTHONPATH=$(CURDIR) NO_MKDOCS_2_WARNING=1

$(VENV)/.created:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	touch $@

# One stamp per extra: `make demo` then `make test` installs the demo extra, then only adds the test one.
$(VENV)/.demo: pyproject.toml $(VENV)/.created
	$(PIP) -e '.[demo]'
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.created
	$(PIP) -e '.[test]'
	touch $@

$(VENV)/.bench: pyproject.toml $(VENV)/.created
	$(PIP) -e '.[bench]'
	touch $@

$(VENV)/.docs: pyproject.toml $(VENV)/.created
	$(PIP) -e '.[docs]'
	touch $@

$(VENV)/.lint: pyproject.toml $(VENV)/.created
	$(PIP) -e '.[lint]'
	touch $@

# ruff: lint findings fail CI; `make format-check` checks the formatting.
lint: $(VENV)/.lint
	$(VENV)/bin/ruff check .

format-check: $(VENV)/.lint
	$(VENV)/bin/ruff format --check .

demo: $(VENV)/.demo
	$(PY) -m jaxloss demo

test: $(VENV)/.test
	$(PY) -m pytest -q -n 2

bench: $(VENV)/.bench
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.per_sample
	$(PY) -m benchmarks.sharded
	$(PY) -m benchmarks.solvers
	$(PY) -m benchmarks.ghost
	$(PY) -m benchmarks.derivatives

# Build the sdist and wheel, install the wheel in a fresh venv on the lowest claimed Python (no editable
# checkout on the path), import it and run a jitted loss; check the wheel/sdist contents and metadata.
check-wheel: $(VENV)/.test
	rm -rf dist
	$(PY) -m build --sdist --wheel --outdir dist . > /dev/null
	$(PY) .ci/check_dist.py --python $(PYTHON_LOWEST) dist

# mypy: the package checks clean, and each deliberate mistake in tests/typing/usage.py is reported.
typecheck: $(VENV)/.lint
	PYTHONPATH=$(CURDIR) $(PY) -m mypy
	PYTHONPATH=$(CURDIR) $(PY) tests/typing/check_usage.py

# The documentation site (docs/, mkdocs.yml): strict, so any warning fails; runs every examples/*.py
# with --quick (results cached in .cache/gallery). `make docs-serve` serves it with live reload.
docs: $(VENV)/.docs
	$(DOCS_ENV) $(PY) -m mkdocs build --strict
	@echo "site/: $$(find site -name index.html | wc -l) pages"

docs-serve: $(VENV)/.docs
	$(DOCS_ENV) $(PY) -m mkdocs serve --strict

# Rewrite the README's loss table from docs/catalog.py (the one source; tests/test_docs.py checks it).
catalog:
	$(PYTHON) docs/catalog.py

clean:
	rm -rf $(VENV) build dist site *.egg-info .cache
