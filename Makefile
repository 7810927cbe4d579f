# Two commands for a newcomer (see README.md):
#   make lab    set up (first time only) and open JupyterLab on the lessons
#   make test   set up (first time only) and run the whole suite: unit tests + every notebook under nbval
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.labkit-installed
PORT   ?= 8888
# Jupyter refuses to run as root (containers, cloud VMs) unless told to.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
# Tools installed in the venv (ninja for C++ extensions, jupyter) must be found by the kernels too.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup lab test doctor refresh student clean

setup: $(STAMP)

# Re-installs only when the pins or the package metadata change, so a second run is instant.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt -e .
	@mkdir -p $(VENV)/share/jupyter/lab/settings
	@echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
		> $(VENV)/share/jupyter/lab/settings/overrides.json  # offline kit: no news or update pings
	$(BIN)/labkit doctor --quick
	@touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) --ServerApp.root_dir=notebooks $(ROOT_FLAG)

test: setup
	$(BIN)/python -m pytest

doctor: setup
	$(BIN)/labkit doctor

# Re-execute every notebook and save its outputs (what is committed).
refresh: setup
	$(BIN)/labkit run --inplace

student: setup
	$(BIN)/labkit student-copy

clean:
	rm -rf artifacts student .pytest_cache
