# Two commands on a fresh machine: `make demo` and `make test`. Each does all set-up first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup wordnet demo test lint bench clean

setup: $(STAMP) wordnet

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

# WordNet 3.0 from Debian when running as root and no copy is present; hierseg builds its nltk layout from it.
wordnet:
	@if [ ! -f /usr/share/wordnet/data.noun ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base wordnet-sense-index; \
	fi

demo: setup
	$(VENV)/bin/hierseg taxonomy build --out build/demo/dsspn359.json --label-maps build/demo/label_maps
	$(VENV)/bin/hierseg taxonomy stats build/demo/dsspn359.json
	$(VENV)/bin/hierseg taxonomy draw build/demo/dsspn359.json --dataset cityscapes --out build/demo/cityscapes.svg
	$(VENV)/bin/hierseg labels export --dataset mapillary --to cityscapes --out build/demo/mapillary_to_cityscapes.csv

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

bench: setup
	for script in bench/*_bench.py; do $(PY) $$script || exit 1; done

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build .pytest_cache
