# `make run`: set up (if needed) and run the whole pipeline on the embedded dataset (params.yaml,
# the `default` experiment); `make run EXPERIMENT=experiments/<name>.yaml` runs that experiment.
# `make test`: set up (if needed) and run the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
CORES ?= 2
EXPERIMENT ?=
# --show-failed-logs: a failed job's log (its last lines are the cause) on the console
SNAKEMAKE = PATH=$(abspath $(BIN)):$$PATH snakemake --show-failed-logs

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
# The experiment file is read first by grcf (a YAML error names the file and line; Snakemake's
# own message names neither); at the end, the summary tables of this experiment only.
run: install
	$(if $(EXPERIMENT),$(BIN)/python -m grcf.config params.yaml $(EXPERIMENT))
	$(SNAKEMAKE) --cores $(CORES) --rerun-incomplete $(if $(EXPERIMENT),--configfile $(EXPERIMENT))
	@$(BIN)/python -m grcf.pipeline.preflight tables $(EXPERIMENT)

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
	$(SNAKEMAKE) --unlock

clean:
	rm -rf features runs results logs .snakemake
