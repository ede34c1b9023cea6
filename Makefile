# The two commands of the README's quick start are `make demo` and `make test`; both create
# .venv in the project root and install what they need into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORPUS ?= ../shared/corpus

.PHONY: demo test bench fixtures lint protos clean venv fuzz

venv: $(STAMP)

# tf_keras declares a dependency on the `tensorflow` distribution; beside tensorflow-cpu it
# goes in with --no-deps, or pip would fetch a second full copy of TensorFlow.
# TF.js (modelconv to-tfjs verifies in it): the pure-JavaScript @tensorflow/tfjs, pinned by
# tfjs/package-lock.json, installed into tfjs/node_modules; needs Node.js 20+ and npm.
$(STAMP): pyproject.toml tfjs/package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	command -v npm >/dev/null || { echo "make: npm not found: install Node.js 20+ and npm (e.g. apt-get install nodejs npm) for TF.js"; exit 1; }
	npm ci --prefix tfjs --no-audit --no-fund --loglevel=error
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[convert,dev,jax]'
	$(PY) -m pip install --quiet --no-deps 'tf_keras==2.21.*'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	TFMODELKIT_CORPUS=$(abspath $(CORPUS)) $(PY) -m pytest -q

# run.py: small models against TensorFlow's tools; scale.py: a 1 GiB checkpoint (written once
# by TensorFlow into benchmarks/.cache/) listed, checked and summarized, with peak memory.
bench: $(STAMP)
	TFMODELKIT_CORPUS=$(abspath $(CORPUS)) $(PY) benchmarks/run.py
	$(PY) benchmarks/scale.py
	$(PY) benchmarks/tfjs.py

# Coverage-guided fuzzing of every reader with atheris, FUZZ_SECONDS each; crashers land in
# out/fuzz/<format>/ (see fuzz/fuzz_readers.py).
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	status=0; for f in checkpoint savedmodel keras_h5 keras_zip tflite; do \
		TFMODELKIT_CORPUS=$(abspath $(CORPUS)) $(PY) fuzz/fuzz_readers.py $$f -max_total_time=$(FUZZ_SECONDS) || status=1; \
	done; exit $$status

fixtures: $(STAMP)
	$(PY) fixtures/make_fixtures.py --out fixtures

lint: $(STAMP)
	$(VENV)/bin/ruff check tfmodelkit tests benchmarks scripts fixtures
	$(VENV)/bin/mypy

protos:
	$(PY) scripts/gen_protos.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
