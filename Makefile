# Everyday commands. `make install` then `make run` (or `make test`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHARED := $(abspath ../shared)

.PHONY: install system-deps run test bench bench-index bench-embedder bench-search load compose-smoke lint clean

# System packages the tests use (a real Redis server, headless Chromium, ffmpeg); needs root and apt.
system-deps:
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  missing=""; \
	  command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	else echo "not root or no apt-get: install redis-server, chromium and ffmpeg yourself"; fi

# torch is installed first and pinned, so the extras never pull another build. TORCH_INDEX_URL picks
# the source of its wheel (e.g. https://download.pytorch.org/whl/cpu for the CPU-only build).
TORCH_INDEX_URL ?=
install: system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PY) -m pip install -q -e '.[ml,dev,bench]'

run:
	$(PY) -m tools.stack

test:
	$(PY) -m pytest -q tests

bench: bench-index bench-embedder bench-search

# Fashion-MNIST for the index benchmark comes from Debian's dataset-fashion-mnist package.
bench-index:
	@test -d /usr/share/datasets/fashion-mnist || [ "$$(id -u)" != 0 ] || apt-get install -y -qq dataset-fashion-mnist
	$(PY) bench/bench_index.py

bench-embedder:
	$(PY) bench/bench_embedder.py --model $(SHARED)/models/clip-vit-base-patch32

bench-search:
	$(PY) bench/bench_search.py

# 32 concurrent searchers for a fixed time while an ingest job runs (loopback only).
load:
	$(PY) bench/load_test.py

compose-smoke:
	bash tests/compose_smoke.sh

lint:
	$(PY) -m ruff check shared services tests bench

clean:
	rm -rf data test-output .pytest_cache
