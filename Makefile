# `make run`: set up (if needed) and run the whole pipeline on the embedded dataset.
# `make test`: set up (if needed) and run the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
CORES ?= 2

.PHONY: run test install bench clean unlock demo

$(BIN)/grcf: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU wheel first: the project's torch range then installs nothing more
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[workflow,dev,opensmile,asr,zoo,demo]"
	touch $@

install: $(BIN)/grcf

# --rerun-incomplete: a killed run's half-written outputs are redone, not an error
run: install
	PATH=$(abspath $(BIN)):$$PATH snakemake --cores $(CORES) --rerun-incomplete
	@cat results/*/summary.md

# two pytest workers: the pipeline tests wait on Slurm and subprocesses much of the time
test: install
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -q -n $(CORES) --dist loadgroup

bench: install
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python benchmarks/bench_features.py

# After a killed `make run` (Ctrl-C twice, OOM, lost SSH) Snakemake's lock stays behind and the
# next run stops with LockException; this removes the lock (nothing else: outputs stay).
# a local web page that scores a clip or a text with the shipped model (models/pretrained/); no network
demo: install
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/grcf demo $(BUNDLE) --port $(or $(PORT),7860)

unlock:
	PATH=$(abspath $(BIN)):$$PATH snakemake --unlock

clean:
	rm -rf features runs results logs .snakemake
