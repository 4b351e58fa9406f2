# make demo : create .venv, install, make the demo dataset, train and test on it (CPU is fine),
#             and fuse its test pairs with the shipped reference model too
# make test : create .venv, install, run the test suite
# make install: create .venv with the dependencies and this checkout installed editable
#             (pip install -e .); a venv whose editable install points at another checkout
#             is repointed here
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dgfusion-installed

.PHONY: install demo test test-all lint clean-demo

# the folder of the basicsr package `python` imports from a neutral directory == this checkout's
IMPORTS_HERE := import pathlib, sys, basicsr; \
	sys.exit(pathlib.Path(basicsr.__file__).resolve().parent != pathlib.Path(sys.argv[1], "basicsr").resolve())

$(STAMP): requirements.txt requirements-dev.txt setup.py
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements-dev.txt
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)
	@(cd / && $(abspath $(BIN))/python -c '$(IMPORTS_HERE)' '$(CURDIR)') 2>/dev/null || { \
		echo "$(VENV) imports basicsr from elsewhere: installing this checkout ($(CURDIR))"; \
		$(BIN)/python -m pip install --no-deps --no-build-isolation -e . ; }

demo: install
	$(BIN)/python -m basicsr.data.demo
	$(BIN)/python train.py -opt options/train/DGFusion_demo.yml
	$(BIN)/python test.py -opt options/test/DGFusion_demo.yml
	$(BIN)/python scripts/fuse.py --vis datasets/demo/test/vis --ir datasets/demo/test/ir \
		--out results/DGFusion_demo/reference_model --save fused grid

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

test-all: install
	$(BIN)/python -m pytest -q -m ""

clean-demo:
	rm -rf datasets/demo experiments/DGFusion_demo* results/DGFusion_demo
