# Everyday commands: `make run`, `make test` (or `make test-fast` while working). On a fresh clone each
# installs what is missing first; `make install` (re)installs on demand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Written by a finished install; older than pyproject.toml (or missing) means install again.
INSTALLED := $(VENV)/.installed
SHARED := $(abspath ../shared)

.PHONY: install system-deps run test test-fast load compose-smoke lint clean
.PHONY: bench bench-index bench-scale bench-embedder bench-search bench-ingest bench-rescan bench-duplicates bench-video bench-ocr

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

# Our HNSW against hnswlib, one query per call and batched (clip-2k, clip-20k, clip-100k); bench/results/index.md.
# Sizes and more datasets through BENCH_INDEX_ARGS, e.g. "--clip-100k-n 30000" or "--datasets sift,fashion-mnist"
# (the latter from Debian's dataset-fashion-mnist package).
BENCH_INDEX_ARGS ?=
bench-index: $(INSTALLED)
	$(PY) bench/bench_index.py $(BENCH_INDEX_ARGS)

# 1,000,000 x 512 vectors built on every core, single-query latency at recall@10 >= 0.95; bench/results/scale.md.
# A smaller run: BENCH_SCALE_ARGS="--n 200000" (written to bench/results/scale_200000.md).
BENCH_SCALE_ARGS ?=
bench-scale: $(INSTALLED)
	$(PY) bench/bench_scale.py $(BENCH_SCALE_ARGS)

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

# GET /duplicates' library call on 50,000 generated photos against the all-pairs code before it (at 5,000)
# and the near-duplicate lookup against a scan, in one run; bench/results/duplicates.md.
bench-duplicates: $(INSTALLED)
	$(PY) bench/bench_duplicates.py

# Sampling a generated 10-minute 1080p H.264 clip at 1 fps against ffmpeg decoding every frame on one thread;
# bench/results/video.md. BENCH_VIDEO_ARGS="--minutes 2" for a quick run.
bench-video: $(INSTALLED)
	$(PY) bench/bench_video.py $(BENCH_VIDEO_ARGS)

# OCR: seconds to read one picture on the worker's path (ordinary photos, signs, documents, receipts, Chromium
# screenshots, real scans, 1080p video frames) against a CLIP embedding in the same run, and the share of
# queries for a word visible in a photo that put it in the top 3 (stack with OCR on, modes both/visual/text);
# bench/results/ocr.md. A real visual column: BENCH_OCR_ARGS="--model DIR" (a CLIP directory with weights).
BENCH_OCR_ARGS ?=
bench-ocr: $(INSTALLED)
	$(PY) bench/bench_ocr.py $(BENCH_OCR_ARGS)

# 32 concurrent searchers for a fixed time while an ingest job runs (loopback only).
load: $(INSTALLED)
	$(PY) bench/load_test.py

compose-smoke:
	bash tests/compose_smoke.sh

lint: $(INSTALLED)
	$(PY) -m ruff check shared services tests tools bench

clean:
	rm -rf data test-output .pytest_cache
