# SpineMets - headless set-up, tests and demo.
#   make test   creates .venv, installs the pinned requirements, configures CMake, runs ctest
#   make demo   same set-up, then a phantom cohort through `spinemets run --config demo` (prints the report path)
PYTHON ?= python3.11
VENV   ?= .venv
BUILD  ?= build
JOBS   ?= 2
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.spinemets-installed

.PHONY: all venv configure test demo lint bench clean distclean

all: test

# Fall back to python3 when python3.11 is not on PATH.
PYTHON_BIN := $(shell command -v $(PYTHON) 2>/dev/null || command -v python3)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml Resources/Scripts/ensure_slicer_namespace.py
	test -x $(VPY) || $(PYTHON_BIN) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(VPY) -m pip install --quiet --no-deps -e .
	$(VPY) Resources/Scripts/ensure_slicer_namespace.py
	touch $(STAMP)

venv: $(STAMP)

configure: venv
	cmake -S . -B $(BUILD) -DSPINEMETS_PYTHON=$(abspath $(VPY)) -DBUILD_TESTING=ON

test: configure
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: venv
	$(VENV)/bin/spinemets demo --out demo_output

lint: venv
	$(VPY) -m ruff check .

bench: venv
	$(VPY) bench/run_all.py

clean:
	rm -rf $(BUILD) demo_output

distclean: clean
	rm -rf $(VENV)
