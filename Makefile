# The two commands of the README: `make demo` and `make test`. Both set up .venv first if needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo serve test lint docs docs-serve chaos bench clean

SEED   ?= 1
ORDERS ?= 300
DB     ?= sqlite

install: $(STAMP)

$(STAMP): pyproject.toml adapters/*/pyproject.toml examples/reference_server/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "commerce-core needs Python 3.11 or newer: make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e adapters/sqlalchemy -e adapters/gateway \
		-e adapters/rabbitmq -e "adapters/stripe[provider]" -e adapters/admin \
		-e adapters/prometheus -e adapters/otel \
		-e examples/reference_server \
		-e ".[sqlalchemy,gateway,rabbitmq,stripe,admin,prometheus,otel,dev,bench]"
	touch $(STAMP)

demo: install
	$(BIN)/python examples/demo.py var/demo

serve: install
	$(BIN)/commerce-server --demo

test: install
	$(BIN)/python -m pytest

# the fault-injection run (docs/reliability.md): its last line is the JSON of figures;
# DB=sqlite (default), postgresql or mariadb: where both stores go
chaos: install
	$(BIN)/python examples/chaos.py --seed $(SEED) --orders $(ORDERS) --db $(DB)

# the benchmarks (docs/performance.md): a few minutes; QUICK=1 for the reduced run (under a
# minute). Needs PostgreSQL (BENCH_PG, default postgresql://postgres@127.0.0.1:5432/postgres)
bench: install
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: install
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) site var .pytest_cache .mypy_cache .ruff_cache .hypothesis
