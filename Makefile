# SpineMets - headless set-up, tests and demo.
#   make test       creates .venv, installs the pinned requirements, configures CMake, runs ctest
#                   (which includes the slicer-harness checks when ../shared/slicer-harness exists)
#   make demo       same set-up, then a phantom cohort through `spinemets run --config demo` (prints the report path)
#   make harness    the slicer-harness checks alone, with their full output
#   make harness312 the harness load checks on a Python 3.12 venv pinned like Slicer 5.10
PYTHON ?= python3.11
VENV   ?= .venv
BUILD  ?= build
JOBS   ?= 2
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.spinemets-installed

HARNESS   ?= ../shared/slicer-harness/run
MODULES   := SpineMetsSegment/SpineMetsSegment.py SpineMetsClassifier/SpineMetsClassifier.py
PY312     ?= python3.12
PY312_VENV ?= build-py312
# What desktop Slicer 5.10 ships (SuperBuild/External_python-*.cmake at v5.10.0); vtk and
# slicer-core are what slicer-core needs on PyPI.
SLICER510_PINS := numpy==2.0.2 scipy==1.13.1 SimpleITK==2.5.2 vtk==9.6.2 slicer-core==5.13.31053.0

.PHONY: all venv configure test demo lint bench clean distclean harness harness312

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
	@test -x $(HARNESS) || echo "NOTE: $(HARNESS) not found: the Slicer harness checks (module load in a fresh Slicer, module tests, PythonSlicer worker) were SKIPPED"

harness: venv
	@test -x $(HARNESS) || { echo "ERROR: $(HARNESS) not found (the shared slicer-harness beside this repository)"; exit 1; }
	$(HARNESS) --python $(VPY) $(MODULES)
	$(HARNESS) --test --python $(VPY) $(MODULES)
	$(VPY) -m pytest -q -s -p no:cacheprovider Testing/Python/test_slicer_harness.py -k pythonslicer

# About 3 minutes (venv + pins), then 15 s of checks. With UNET=1 it also installs what the
# U-Net installs in Slicer (torch, MONAI matched to it, safetensors; pinned like Slicer's own
# packages: about 5 more minutes) and runs SpineMetsSegment's Test class and the PythonSlicer worker.
harness312:
	@test -x $(HARNESS) || { echo "ERROR: $(HARNESS) not found"; exit 1; }
	test -x $(PY312_VENV)/bin/python || $(PY312) -m venv $(PY312_VENV)
	$(PY312_VENV)/bin/python -m pip install --quiet $(SLICER510_PINS)
	$(HARNESS) --python $(PY312_VENV)/bin/python $(MODULES)
ifeq ($(UNET),1)
	printf '%s\n' $(SLICER510_PINS) > $(PY312_VENV)/constraints.txt
	$(PY312_VENV)/bin/python -m pip install --quiet -c $(PY312_VENV)/constraints.txt torch==2.13.0 "monai>=1.6,<1.7" safetensors==0.8.0
	$(HARNESS) --test --python $(PY312_VENV)/bin/python SpineMetsSegment/SpineMetsSegment.py
	SLICER_HARNESS_PYTHON=$(abspath $(PY312_VENV)/bin/python) $(VPY) -m pytest -q -s -p no:cacheprovider Testing/Python/test_slicer_harness.py -k pythonslicer
endif

demo: venv
	$(VENV)/bin/spinemets demo --out demo_output

lint: venv
	$(VPY) -m ruff check .

bench: venv
	$(VPY) bench/run_all.py

clean:
	rm -rf $(BUILD) demo_output $(PY312_VENV)

distclean: clean
	rm -rf $(VENV)
