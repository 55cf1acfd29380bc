# Two entry points: `make run` and `make test`. Each builds .venv on first use and
# reinstalls the project only when pyproject.toml changes (the stamp files below).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# `make llm [MODEL=0.5b|1.5b]`: a local Qwen2.5-Coder model and llama.cpp's server, for
# `evo run llm=llamacpp`. Kept in ~/.cache/evo (or $EVO_CACHE), shared by every clone.
MODEL  ?= 0.5b

.PHONY: run test llm clean

run: $(VENV)/.installed-run
	$(BIN)/evo run $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

llm: $(VENV)/.installed-run
	$(BIN)/python -m evo.llm.local_install $(MODEL)

clean:
	rm -rf $(VENV)
