# Set up a virtual environment and run the demo or the tests.
# make test: the fast set (not the tests marked slow); make check: every test, as CI runs it.
# Both spread the test files over the cores (pytest-xdist; a file's tests share one process).
# torch is pinned to the CPU build that lies on this disk; an open range would pull a CUDA build.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
SEED   ?= 0

.PHONY: install demo test check lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/cropmeta demo --out demo-out --seed $(SEED)

XDIST   = -n auto --dist loadfile --no-loadscope-reorder

test: install
	$(PY) -m pytest -q $(XDIST) -m "not slow"

check: install
	$(PY) -m pytest -q $(XDIST)

lint: install
	$(VENV)/bin/ruff check cropmeta tests benchmarks

clean:
	rm -rf demo-out .pytest_cache
