# make run   - set up .venv and run the whole pipeline on the embedded default (synthetic archives, offline)
# make test  - set up .venv and run the test suite
# make bench - every benchmark in one markdown table (benchmarks/README.md); data cached in .benchmarks-cache/
# make fuzz  - 3,000 hypothesis-generated archives through restructure (CI runs 150 inside make test)
# make clean - delete the pipeline's data, models and caches and its git-ignored plots and pages; nothing git tracks
# make lint  - ruff (rules and line length in pyproject.toml); .ci/run runs it before the tests
# make setup GPU=1 - the same, with TensorFlow's CUDA build (requirements-gpu.txt) in place of the CPU wheel;
#                    remembered in .venv/.gpu, so later make targets keep it (GPU=0 goes back to the CPU wheel)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
GPU ?= $(if $(wildcard $(VENV)/.gpu),1,0)
STAMP := $(VENV)/.installed-gpu$(GPU)-$(shell cat requirements*.txt constraints.txt | cksum | cut -d' ' -f1)
SSHD := $(firstword $(wildcard /usr/sbin/sshd /usr/local/sbin/sshd) $(shell command -v sshd))
CHROMIUM := $(firstword $(shell command -v chromium chromium-browser))
QEMU := $(shell command -v qemu-x86_64)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup test-tools run test lint fuzz bench clean

setup: $(STAMP)

# Debian packages that only the tests need (make run needs none of them)
test-tools:
ifeq ($(SSHD),)
	@echo "installing Debian's openssh-server: the DVC SSH-remote test starts a real sshd on a loopback port"
	@if command -v apt-get >/dev/null; then \
	  $(APT_INSTALL) openssh-server >/dev/null 2>&1 || \
	  ($(SUDO) apt-get update -q >/dev/null && $(APT_INSTALL) openssh-server >/dev/null); \
	else echo "no apt-get here: install OpenSSH's sshd yourself, or the SSH-remote test is skipped" \
	  "(it fails under CI)"; fi
endif
ifeq ($(CHROMIUM),)
	@echo "installing Debian's chromium: the report tests open reports/<ds>.html in a real browser, offline"
	@if command -v apt-get >/dev/null; then \
	  $(APT_INSTALL) chromium >/dev/null 2>&1 || \
	  ($(SUDO) apt-get update -q >/dev/null && $(APT_INSTALL) chromium >/dev/null); \
	else echo "no apt-get here: install Chromium yourself, or the browser tests are skipped (they fail under CI)"; fi
endif
ifeq ($(QEMU),)
	@echo "installing Debian's qemu-user: a test trains on an emulated AVX2-only CPU and expects this machine's model"
	@if command -v apt-get >/dev/null; then \
	  $(APT_INSTALL) qemu-user >/dev/null 2>&1 || \
	  ($(SUDO) apt-get update -q >/dev/null && $(APT_INSTALL) qemu-user >/dev/null); \
	else echo "no apt-get here: install qemu-user yourself, or the AVX2-only test is skipped (it fails under CI)"; fi
endif

$(STAMP): requirements.txt requirements-dev.txt requirements-remote.txt requirements-gpu.txt constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is needed (PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	@if [ "$(GPU)" = 0 ] && [ -f $(VENV)/.gpu ]; then \
	  $(BIN)/python -m pip uninstall --quiet --yes tensorflow tensorflow-cpu && rm $(VENV)/.gpu; fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
ifeq ($(GPU),1)
	@# both wheels hold the same tensorflow/ folder: remove both, then install the CUDA one whole
	$(BIN)/python -m pip uninstall --quiet --yes tensorflow-cpu tensorflow
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-gpu.txt -c constraints.txt
	touch $(VENV)/.gpu
endif
	rm -f $(VENV)/.installed-*
	touch $@

run: setup
	$(BIN)/dvc repro
	@echo
	@echo "Datasets:  data/interim/<dataset>/ (by archive split), data/processed/<dataset>/ (train/val/test),"
	@echo "           each with manifest.csv"
	@echo "Models:    models/<dataset>/ (model.keras, labels.json)"
	@echo "Metrics:   metrics/<dataset>/{restructure,split,eval}.json  - $(BIN)/dvc metrics show"
	@echo "Plots:     plots/<dataset>/  - $(BIN)/dvc plots show (writes dvc_plots/index.html)"
	@echo "Report:    reports/<dataset>.html  - one page per dataset, opens offline"

test: setup test-tools
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup test-tools
	$(BIN)/python -m benchmarks.suite

fuzz: setup
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-3000} $(BIN)/python -m pytest tests/test_fuzz_archives.py -n 0 \
	  --hypothesis-show-statistics

# only what git does not track: the committed metrics, plot data and dvc.lock stay (dvc repro brings the rest back)
clean:
	rm -rf data models dvc_plots .cache .dvc/cache .dvc/tmp
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then git clean -fdXq -- metrics plots reports; fi
