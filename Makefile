# gctuner: every command a newcomer needs. `make demo` is the one to start with.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# make test's pytest workers: the tests mostly wait on servers, so two share 2 cores;
# the real node's tests all go to one of them (tests/conftest.py).
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help venv binaries node-binaries node-packages node-test free-threaded pythons wrk demo lint test unit e2e bench cluster cluster-down operator clean

help:  ## list the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml localcluster/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gctuner needs Python 3.11+ for its tools (the agent itself runs on 3.9+); set PYTHON=python3.11")'
	@echo "==> creating $(VENV) and installing gctuner with its dev tools"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@PYTHONWARNINGS=ignore $(BIN)/pip install --quiet --editable '.[dev]' --editable ./localcluster
	@touch $@

venv: $(STAMP)  ## create the virtualenv and install everything

binaries: venv  ## find or build kube-apiserver, etcd and kubectl (cached in ~/.cache/gctuner)
	@$(BIN)/gctuner-localcluster binaries >/dev/null

free-threaded:  ## build a free-threaded CPython 3.13 for the agent's tests (once, ~3 min; cached in ~/.cache/gctuner)
	@tests/build-free-threaded-python

pythons:  ## fetch CPython 3.14 and 3.15 (Debian's binaries) for the agent's tests (~20 s once; cached in ~/.cache/gctuner)
	@tests/fetch-debian-python

demo: node-binaries  ## the whole thing on the real node: the operator and the examples' Deployments, a GCPolicy (Ctrl-C stops)
	@$(BIN)/python -m gctuner_localcluster.demo

lint: venv  ## ruff, mypy --strict and the import contracts of .importlinter (make test runs it first)
	@$(BIN)/ruff check sidecar/ operator/ localcluster/ bench/ tests/
	@$(BIN)/mypy
	@$(BIN)/lint-imports --no-cache --no-logo

test: lint binaries node-binaries free-threaded pythons prometheus  ## lint, then unit, integration and end-to-end tests (real kube-apiserver, and the real node's containers); the agent's on every CPython found
	@$(BIN)/pytest -n $(TEST_WORKERS)

unit: venv prometheus  ## only the fast tests
	@$(BIN)/pytest tests/unit

e2e: binaries prometheus  ## only the end-to-end tests
	@$(BIN)/pytest tests/e2e

NODE_PACKAGES := containerd runc containernetworking-plugins buildah debootstrap
node-packages:  ## install the real node's Debian packages (containerd, runc, CNI plugins, buildah, debootstrap; as root)
	@missing=$$(for p in $(NODE_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		[ "$$(id -u)" = 0 ] || { echo "the real node needs root to install: sudo apt-get install -y $$missing" >&2; exit 1; }; \
		echo "==> installing $$missing (Debian's packages)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

node-binaries: venv node-packages  ## the real node's builds: kubelet, controller-manager, scheduler, pause and the images (cached in ~/.cache/gctuner)
	@$(BIN)/gctuner-localcluster build

node-test: node-binaries  ## the end-to-end tests on the real node (pods as containers)
	@$(BIN)/pytest tests/e2e_node

wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } \
		|| { echo "make bench needs wrk: run 'sudo apt-get install -y wrk'" >&2; exit 1; }

# Debian's Prometheus server and promtool: the e2e tests scrape the local cluster
# with it and `promtool test rules` checks deploy/monitoring/. Installed as root
# (the service the package ships is not started here: the tests start their own).
prometheus:  ## Debian's prometheus and promtool, for the monitoring tests (root installs them)
	@{ command -v prometheus && command -v promtool; } >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get -o DPkg::Lock::Timeout=600 update -qq \
		&& DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus >/dev/null; } \
		|| { echo "make test needs prometheus and promtool: run 'sudo apt-get install -y --no-install-recommends prometheus'" >&2; exit 1; }

bench: binaries wrk  ## the benchmarks (BENCH="name ..." for some); tables in bench/results/
	@timeout --kill-after=60 3600 $(BIN)/python -m bench $(BENCH)

cluster: node-binaries  ## start the local cluster (a real node: pods are containers; root) in the background; prints the line to export
	@$(BIN)/gctuner-localcluster up

cluster-down: venv  ## stop the local cluster; nothing left running or mounted
	@$(BIN)/gctuner-localcluster down

operator: venv  ## run the operator in the foreground against the current KUBECONFIG
	@$(BIN)/gctuner-operator

clean: cluster-down  ## remove the virtualenv and local state (not the binary cache)
	rm -rf $(VENV) .gctuner .pytest_cache
