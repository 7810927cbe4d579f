# Two commands for a newcomer (see README.md):
#   make lab    set up (first time only), make your copies of the lessons in workspace/ and open JupyterLab there
#   make test   set up (first time only) and run the whole suite: unit tests + every notebook under nbval
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.labkit-installed
PORT   ?= 8888
WORKERS ?= 2
# Jupyter refuses to run as root (containers, cloud VMs) unless told to.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
# Tools installed in the venv (ninja for C++ extensions, jupyter) must be found by the kernels too.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup wheelhouse lab lab-instructor test unit test-lab doctor refresh student clean

setup: $(STAMP)

# Paths are quoted in the recipes, so a checkout (or VENV) whose path has a space works too.
PIP  := "$(BIN)/python" -m pip --disable-pip-version-check
SITE_PACKAGES = $$("$(BIN)/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
# uv (from PyPI, pinned in constraints.txt) installs the same wheels as pip, about 2-3x faster here: it downloads in
# parallel and unpacks while it downloads. `make setup INSTALLER=pip` uses pip alone (it reads pip.conf; uv does not).
INSTALLER ?= uv
ifeq ($(INSTALLER),pip)
INSTALL = $(PIP) install
else
INSTALL = "$(BIN)/uv" pip install --python "$(BIN)/python" --compile-bytecode
endif

# For a room without internet (docs/workshop.md): `make wheelhouse` downloads every pinned wheel into wheelhouse/
# (the one step that needs the package index); while that folder holds wheels, `make setup` installs from it
# alone and never asks the network. The wheels are for this OS, CPU architecture and Python version.
WHEELHOUSE ?= wheelhouse
FROM_WHEELHOUSE := $(if $(wildcard $(WHEELHOUSE)/*.whl),--no-index --find-links "$(abspath $(WHEELHOUSE))")

# torch 2.15 and onnxruntime 1.32 have wheels for Python 3.11-3.13 only (pyproject.toml's requires-python): on any
# other Python, stop before the first download with a sentence that says which Python and what to run instead.
# $(call require_python,INTERPRETER,WHAT TO DO)
require_python = v=$$($(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])') && case "$$v" in 3.1[1-3]) ;; \
	*) echo "onnx-labkit needs Python 3.11 to 3.13 (torch 2.15 and onnxruntime 1.32 have no wheels for" \
	"other versions), and $(1) is Python $$v: $(2)" >&2; exit 1;; esac
# The venv, made with $(PYTHON) where there is none yet; either way its Python must be one the kit supports.
make_venv = test -x "$(BIN)/python" || { $(call require_python,"$(PYTHON)",run make again with PYTHON=python3.11) \
	&& "$(PYTHON)" -m venv "$(VENV)"; } && $(call require_python,"$(BIN)/python",remove $(VENV) and run make again)

# Re-installs only when the pins or the package metadata change, so a second run is instant.
# Every pin is installed as it is (--no-deps): no resolver run, and none of the CUDA-only packages that torch's
# wheel declares but a CPU-only kit never loads (constraints.txt says which, and why the other nvidia-* stay).
# The .pth file turns ONNX Runtime's telemetry off in every Python of the venv (kernels, CLI, tests); ORT reads
# ORT_DISABLE_TELEMETRY at import, and without it looks up a Microsoft host and writes under ~/.cache/Microsoft.
$(STAMP): pyproject.toml constraints.txt
	@$(make_venv)
	$(if $(filter pip,$(INSTALLER)),,$(PIP) install -q -c constraints.txt $(FROM_WHEELHOUSE) uv)
	$(INSTALL) $(FROM_WHEELHOUSE) --no-deps -r constraints.txt
	$(INSTALL) $(FROM_WHEELHOUSE) --no-deps --no-build-isolation -e .
	echo 'import os; os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")' > "$(SITE_PACKAGES)/labkit-offline.pth"
	@mkdir -p "$(VENV)/share/jupyter/lab/settings"
	@echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
		> "$(VENV)/share/jupyter/lab/settings/overrides.json"  # offline kit: no news or update pings
	"$(BIN)/labkit" doctor --quick
	@touch "$(STAMP)"

# Every wheel make setup installs, downloaded (no install) for machines without internet: copy the checkout with
# wheelhouse/ to them and run `make setup` (or `make lab`) there.
wheelhouse:
	@$(make_venv)
	$(PIP) download -q --no-deps -d "$(WHEELHOUSE)" -r constraints.txt
	@echo "$(WHEELHOUSE)/: $$(ls "$(WHEELHOUSE)"/*.whl | wc -l) wheels, $$(du -sh "$(WHEELHOUSE)" | cut -f1); make setup now installs from it alone"

# The learner's copies (solutions stubbed, outputs cleared); an edited copy is never overwritten.
lab: setup
	"$(BIN)/labkit" student-copy
	"$(BIN)/jupyter" lab --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) --ServerApp.root_dir=workspace $(ROOT_FLAG)

# The tested lessons, solved and with their outputs: for instructors (edits here change the lessons).
lab-instructor: setup
	"$(BIN)/jupyter" lab --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) --ServerApp.root_dir=notebooks $(ROOT_FLAG)

# Two workers, one notebook per worker (nbval's cells must stay in one kernel: --dist loadfile), except that each
# test of tests/test_core_path.py (a lesson in a kernel of its own, 6-20 s) is a unit of its own; each worker and its
# kernels get one thread per core share (tests/conftest.py), so two kernels on two cores do not fight. Lesson 06 pins
# its own threads for its timings, so it and its core-path test run alone (shared with the other worker it took 159 s,
# alone 59-71 s); they go first, then the other notebooks, the core-path tests, the unit tests (tests/whole_machine.py;
# --no-loadscope-reorder keeps that order).
test: setup
	"$(BIN)/python" -m pytest -n $(WORKERS) --dist loadfile --no-loadscope-reorder

# The unit tests only: no notebook, nothing marked slow (whole-lesson runs, probes of many seconds), on the same
# workers as make test. Under a minute: --durations lists the slowest ten, so a test that makes it longer is named.
unit: setup
	"$(BIN)/python" -m pytest tests -m "not slow" -n $(WORKERS) --dist loadfile --durations=10

# JupyterLab in Debian's Chromium (apt-get install -y chromium; never `playwright install`): Run All on every
# lesson and learner copy, and Lesson 03's slider. Installs the `browser` extra as pinned in
# constraints-browser.txt (--no-deps, like setup). Failures: screenshots and the server log in artifacts/browser/.
test-lab: setup
	$(INSTALL) --no-deps -r constraints-browser.txt
	LABKIT_BROWSER_TESTS=1 "$(BIN)/python" -m pytest tests/browser

# A room on one server (docs/workshop.md, "A room on one server"), as root: JupyterHub on 127.0.0.1:$(HUB_PORT) for the
# system users in LABKIT_HUB_USERS (or the group 'learners'), the room's password in LABKIT_HUB_PASSWORD; settings in
# hub/jupyterhub_config.py. Installs jupyterhub as pinned in constraints-hub.txt (--no-deps, like setup) and the proxy
# from hub/package-lock.json (npm ci: the one step that needs npm's registry). make test-hub: three temporary users
# driven in Debian's Chromium (tests/hub; ~3 min), removed afterwards pass or fail.
.PHONY: hub test-hub hub-setup
HUB_PORT ?= 8000
HUB_PROXY := hub/node_modules/.bin/configurable-http-proxy
$(HUB_PROXY): hub/package.json hub/package-lock.json
	cd hub && npm ci --no-audit --no-fund
	@touch "$@"
hub-setup: setup $(HUB_PROXY)
	$(INSTALL) --no-deps -r constraints-hub.txt
hub: hub-setup
	LABKIT_HUB_PORT=$(HUB_PORT) "$(BIN)/jupyterhub" -f hub/jupyterhub_config.py
test-hub: hub-setup
	$(INSTALL) --no-deps -r constraints-browser.txt
	LABKIT_HUB_TESTS=1 "$(BIN)/python" -m pytest tests/hub

doctor: setup
	"$(BIN)/labkit" doctor

# Re-execute every notebook and save its outputs (what is committed).
refresh: setup
	"$(BIN)/labkit" run --inplace

student: setup
	"$(BIN)/labkit" student-copy

# Only what the kit generates and can make again; never workspace/ (the learner's work).
clean:
	rm -rf artifacts .pytest_cache
	find labkit tests -name __pycache__ -type d -prune -exec rm -rf {} +
