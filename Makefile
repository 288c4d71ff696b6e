# The two commands of the README. Both work on a fresh clone with Python 3 and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all fuzz fuzz-hostile install pyc zoo-doc clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# byte-compile archspec up front: with PYTHONDONTWRITEBYTECODE set, every run would recompile it
pyc: $(STAMP)
	@$(BIN)/python -m compileall -q archspec

demo: pyc
	$(BIN)/archspec stats
	$(BIN)/archspec check
	$(BIN)/archspec build specs/resnet152.yaml

# the suite on the machine's cores (CI: 2), each test file's tests shared out among the workers
test: pyc
	$(BIN)/archspec check --errata-page docs/errata.md --check-page > /dev/null
	$(BIN)/python -m pytest -n auto --maxprocesses 4

# the heavier checks (README): make test, the tests marked heavy, then the compiler contract on
# 2,000 random specs
test-all: test
	$(BIN)/python -m pytest -n auto --maxprocesses 4 -m heavy
	$(BIN)/python benchmarks/fuzz.py --n 2000 --jobs 2

# the compiler contract on 10,000 random specs (issue #10; a run is recorded in docs/benchmarks.md)
fuzz: pyc
	$(BIN)/python benchmarks/fuzz.py --n 10000 --jobs 2

# hostile mutants of the zoo through validate and stats, each run under RLIMIT_AS 1 GB and a 20 s
# timeout: fails on any traceback, hang or over-memory (benchmarks/fuzz_hostile.py; N=10000 for a long run)
N ?= 1000
fuzz-hostile: pyc
	$(BIN)/python benchmarks/fuzz_hostile.py --n $(N) --jobs 2

# docs/zoo.md: the whole zoo in one table, and docs/errata.md: every erratum and variant of the zoo
# with its evidence, grouped by paper (regenerate both after changing specs/)
zoo-doc: $(STAMP)
	$(BIN)/archspec check --errata-page docs/errata.md > /dev/null
	{ echo "# The zoo"; echo; \
	  echo "Every network in specs/, from \`archspec stats --format markdown\` (regenerate with \`make zoo-doc\`)."; \
	  echo "MACs are multiply-accumulates of conv/linear layers and attention matmuls per image (the ResNet paper's FLOPs); params are learnable parameters of the inference network (a \`+aux\` row adds the training-time auxiliary heads)."; \
	  echo; $(BIN)/archspec stats --format markdown; } > docs/zoo.md

clean:
	rm -rf $(VENV) build *.egg-info
