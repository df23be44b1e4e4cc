# gctuner: every command a newcomer needs. `make demo` is the one to start with.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help venv binaries demo test unit e2e bench cluster cluster-down operator clean

help:  ## list the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gctuner needs Python 3.11+ for its tools (the agent itself runs on 3.9+); set PYTHON=python3.11")'
	@echo "==> creating $(VENV) and installing gctuner with its dev tools"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@PYTHONWARNINGS=ignore $(BIN)/pip install --quiet --editable '.[dev]'
	@touch $@

venv: $(STAMP)  ## create the virtualenv and install everything

binaries: venv  ## find or build kube-apiserver, etcd and kubectl (cached in ~/.cache/gctuner)
	@$(BIN)/gctuner-localcluster binaries >/dev/null

demo: binaries  ## the whole thing on a local cluster: operator, pods, a GCPolicy (Ctrl-C stops)
	@$(BIN)/python -m gctuner_localcluster.demo

test: binaries  ## unit, integration and end-to-end tests (real kube-apiserver)
	@$(BIN)/pytest

unit: venv  ## only the fast tests
	@$(BIN)/pytest tests/unit

e2e: binaries  ## only the end-to-end tests
	@$(BIN)/pytest tests/e2e

cluster: binaries  ## start a local cluster in the background; prints the KUBECONFIG to export
	@$(BIN)/gctuner-localcluster up

cluster-down: venv  ## stop the local cluster
	@$(BIN)/gctuner-localcluster down

operator: venv  ## run the operator in the foreground against the current KUBECONFIG
	@$(BIN)/gctuner-operator

clean: cluster-down  ## remove the virtualenv and local state (not the binary cache)
	rm -rf $(VENV) .gctuner .pytest_cache
