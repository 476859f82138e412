# Two commands do everything on a machine with only Python 3.11:
#   make run    create .venv, install, train the source experiment, write its run directory
#   make test   same environment, the whole default test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NATIVE := $(VENV)/.native

.PHONY: install run test test-slow test-portability lint notebooks clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

# The compiled recurrent kernels (tf_sine/native): the first flag set that compiles and passes
# the self-test, kept per source, TensorFlow, compiler and CPU. A failure is printed once and
# kept too (training then falls back to TensorFlow's kernels), so it does not stop make.
$(NATIVE): $(STAMP) tf_sine/native/rnn_ops.cc $(wildcard tf_sine/native/*.h) tf_sine/native/build.py \
		tf_sine/native/selftest.py
	$(BIN)/python -m tf_sine.native || true
	touch $(NATIVE)

install: $(STAMP) $(NATIVE)

run: install
	$(BIN)/python -m tf_sine $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-portability: $(STAMP)
	$(BIN)/python -m pytest -m portability $(PYTEST_ARGS)

notebooks: install
	$(BIN)/python notebooks/run.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
