PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck run bench soak clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

run: $(STAMP)
	$(BIN)/formosms demo

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python -m bench.campaign
	$(BIN)/python -m bench.client_overhead
	$(BIN)/python -m bench.gateway_e2e --seconds 60
	$(BIN)/python -m bench.gateway_e2e --seconds 60 --workers 1
	-$(BIN)/python -m bench.gateway_e2e --seconds 60 --postgres postgresql://postgres@127.0.0.1:5432/formosms_bench
	$(BIN)/python -m bench.gateway_e2e --seconds 60 --rate 4000 --tag overload
	$(BIN)/python -m bench.gateway_e2e --seconds 60 --rate 4000 --tag overload --workers 1
	-$(BIN)/python -m bench.gateway_e2e --seconds 60 --rate 4000 --tag overload --postgres postgresql://postgres@127.0.0.1:5432/formosms_bench
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.store_ops
	-$(BIN)/python -m bench.store_ops --postgres postgresql://postgres@127.0.0.1:5432/formosms_bench
	$(BIN)/python -m bench.report

soak: $(STAMP)
	FORMOSMS_CRASH_MESSAGES=10000 FORMOSMS_CRASH_KILLS=5 $(BIN)/pytest -q tests/reliability

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
