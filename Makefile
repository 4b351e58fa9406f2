# make demo : create .venv, install, make the demo dataset, train and test on it (CPU is fine),
#             and fuse its test pairs with the shipped reference model too
# make test : create .venv, install, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dgfusion-installed

.PHONY: install demo test test-all clean-demo

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m basicsr.data.demo
	$(BIN)/python train.py -opt options/train/DGFusion_demo.yml
	$(BIN)/python test.py -opt options/test/DGFusion_demo.yml
	$(BIN)/python scripts/fuse.py --vis datasets/demo/test/vis --ir datasets/demo/test/ir \
		--out results/DGFusion_demo/reference_model --save fused grid

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

clean-demo:
	rm -rf datasets/demo experiments/DGFusion_demo* results/DGFusion_demo
