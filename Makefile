# The two commands a new user needs: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
SIM    := $(VENV)/bin/simsearch
# The CPU build of torch, installed before the project so nothing pulls the CUDA one.
TORCH  ?= torch==2.13.0

.PHONY: demo test install lint docs docs-check bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e '.[test,serve,lint,parquet,langchain,ray,korean,mcp,haystack,llamaindex]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(SIM) build examples/sample.jsonl --name sample --id-field id --force
	$(SIM) query sample "how do I keep bread from going stale?" -k 5
	$(SIM) query sample "지하철에서 버스로 갈아타면 요금은 어떻게 되나요?" -k 5

test: install
	$(PY) -m pytest -q

# ruff (lint + format check) and mypy (strict on simsearch/, relaxed on tests/ and benchmarks/,
# one run); settings in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check simsearch tests benchmarks
	$(VENV)/bin/ruff format --check simsearch tests benchmarks
	$(VENV)/bin/mypy

# docs/cli.md is generated from every command's --help; docs-check fails when it is stale.
docs: install
	$(PY) -m simsearch.cli.docgen > docs/cli.md

docs-check: install
	$(PY) -m simsearch.cli.docgen --check docs/cli.md

# Side-by-side speed report (slow: encodes the 131k-sentence corpus once, cached in
# benchmarks/results/). BENCH_ARGS passes options, e.g. BENCH_ARGS="--sections encoders".
bench: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m benchmarks $(BENCH_ARGS)
	@echo "report: benchmarks/results/report.md"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
