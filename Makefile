# kzqa — set-up, chat, tests and benchmarks. `make run` and `make test` work on a fresh clone.
# Everything lives in ./.venv (Debian's own python3 refuses `pip install`, PEP 668).
BASE_PYTHON ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PIP := $(PYTHON) -m pip
# The CPU build of torch, installed before anything pulls the multi-GB CUDA build.
# On machines without a local torch wheel use:
#   make install TORCH_SPEC="torch" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
export HF_HUB_OFFLINE = 1

.PHONY: install run test browser bench loadtest index clean

$(PYTHON):
	$(BASE_PYTHON) -m venv $(VENV)

# Installs run again only when pyproject.toml changed since the last successful install (the
# stamp file), so a second `make run` on a set-up clone starts at once.
STAMP := $(VENV)/.kzqa-installed

$(STAMP): pyproject.toml | $(PYTHON)
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PIP) install -e ".[dev,postgres,ray]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PYTHON) app.py

# Debian's Chromium and a Chinese font for the browser tests (never `playwright install`), and
# axe-core from npm for the accessibility checks (in .cache/axe, not committed).
AXE := .cache/axe/node_modules/axe-core/axe.min.js
browser: $(AXE)
	@{ command -v chromium >/dev/null 2>&1 && dpkg -s fonts-wqy-zenhei >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium fonts-wqy-zenhei; \
	  else sudo apt-get update && sudo apt-get install -y chromium fonts-wqy-zenhei; fi; }

$(AXE):
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y npm; else sudo apt-get install -y npm; fi; }
	npm install --prefix .cache/axe --no-save --no-audit --no-fund axe-core@4

test: install browser
	$(PYTHON) -m pytest -q

index: install
	$(PYTHON) -m kzqa build --corpus corpus --index embeddings

# Dev-set, follow-up and SciFact benchmarks → benchmarks/results.md (about 10 minutes here).
bench: install
	$(PYTHON) benchmarks/run.py

# 16 and 32 gradio_client users asking /ask for 20 s each → benchmarks/results/load.json and results.md.
loadtest: install
	$(PYTHON) -m kzqa bench load --users 16 --users 32 --seconds 20 --out benchmarks/results/load.json
	$(PYTHON) -m kzqa bench load --via rest --users 16 --users 32 --seconds 20 --out benchmarks/results/load-rest.json
	$(PYTHON) benchmarks/run.py --render-only

clean:
	rm -rf .pytest_cache test-artifacts build *.egg-info
