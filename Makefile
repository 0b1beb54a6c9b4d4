# Everyday commands: `make run`, `make test` (or `make test-fast` while working). On a fresh clone each
# installs what is missing first; `make install` (re)installs on demand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Written by a finished install; older than pyproject.toml (or missing) means install again.
INSTALLED := $(VENV)/.installed
SHARED := $(abspath ../shared)

.PHONY: install system-deps run test test-fast bench bench-index bench-embedder bench-search bench-ingest bench-rescan load \
	compose-smoke \
	lint clean

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
	touch $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(MAKE) install

run: $(INSTALLED)
	$(PY) -m tools.stack

# Every tier: unit, service, stack (the whole product on loopback) and browser (headless Chromium).
test: $(INSTALLED)
	$(PY) -m pytest -q tests

# The inner loop: the unit and service tiers (`-m "unit or service"` selects the same tests), no whole
# stack and no browser. By folder, so the other tiers are not even imported; nor is schemathesis's plugin
# (only tests/stack/test_fuzz.py uses it).
test-fast: $(INSTALLED)
	$(PY) -m pytest -q -p no:schemathesis -n 2 tests/unit tests/service

bench: bench-index bench-embedder bench-search bench-ingest

# Fashion-MNIST for the index benchmark comes from Debian's dataset-fashion-mnist package.
bench-index: $(INSTALLED)
	@test -d /usr/share/datasets/fashion-mnist || [ "$$(id -u)" != 0 ] || apt-get install -y -qq dataset-fashion-mnist
	$(PY) bench/bench_index.py

bench-embedder: $(INSTALLED)
	$(PY) bench/bench_embedder.py --model $(SHARED)/models/clip-vit-base-patch32

bench-search: $(INSTALLED)
	$(PY) bench/bench_search.py

# The photos of imagenet-sample uploaded through the gateway until the job is done, against the raw model's
# batch-16/32 images/s in the same run; bench/results/ingest.md.
bench-ingest: $(INSTALLED)
	$(PY) bench/bench_ingest.py --model $(SHARED)/models/clip-vit-base-patch32

# A library rescan of an unchanged tree of 100,000 generated files (stats only); bench/results/rescan.md.
bench-rescan: $(INSTALLED)
	$(PY) bench/bench_rescan.py

# 32 concurrent searchers for a fixed time while an ingest job runs (loopback only).
load: $(INSTALLED)
	$(PY) bench/load_test.py

compose-smoke:
	bash tests/compose_smoke.sh

lint: $(INSTALLED)
	$(PY) -m ruff check shared services tests tools bench

clean:
	rm -rf data test-output .pytest_cache
