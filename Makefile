# Two commands on a fresh machine: `make demo` and `make test`. Each does all set-up first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup wordnet demo voc mseg-tree test lint bench clean

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

DEMO     := build/demo
HIERSEG  := $(VENV)/bin/hierseg
DATASETS := coco_stuff ade20k cityscapes mapillary

# The main job on an embedded default: the tree, four synthetic datasets in their official layouts, a small
# universal DSSPN-ResNet-18 trained jointly on them on the CPU, its evaluation on each, predictions and curves.
demo: setup
	$(HIERSEG) taxonomy build --out $(DEMO)/dsspn359.json --label-maps $(DEMO)/label_maps
	$(HIERSEG) taxonomy stats $(DEMO)/dsspn359.json
	$(HIERSEG) taxonomy draw $(DEMO)/dsspn359.json --dataset cityscapes --out $(DEMO)/cityscapes.svg
	$(HIERSEG) labels export --dataset mapillary --to cityscapes --out $(DEMO)/mapillary_to_cityscapes.csv
	rm -rf $(DEMO)/data  # data synth writes a new dataset, never into another one
	for ds in $(DATASETS); do $(HIERSEG) data synth --dataset $$ds --out $(DEMO)/data/$$ds --n 24 --size 128 --classes 2 || exit 1; done
	rm -rf $(DEMO)/run  # a run folder is only reused with --resume
	$(HIERSEG) train --config configs/demo.yaml
	$(HIERSEG) plot $(DEMO)/run --out $(DEMO)/curves.png
	$(HIERSEG) predict --checkpoint $(DEMO)/run/model.pt --dataset cityscapes $(DEMO)/data/cityscapes/leftImg8bit/val --out $(DEMO)/predictions
	for ds in $(DATASETS); do $(HIERSEG) eval --checkpoint $(DEMO)/run/model.pt --dataset $$ds $(DEMO)/data/$$ds || exit 1; done

# The worked example of a dataset added to the tree (docs/byod.md): PASCAL VOC 2012 joins it
# (taxonomy/specs/pascal_voc.yaml), and a small universal DSSPN trains on synthetic VOC + Cityscapes and is scored in
# VOC's own ids.
VOC := build/voc
voc: setup
	$(HIERSEG) taxonomy build --add taxonomy/specs/pascal_voc.yaml --out $(VOC)/tree.json
	$(HIERSEG) taxonomy stats $(VOC)/tree.json
	rm -rf $(VOC)/data
	$(HIERSEG) data synth --dataset pascal_voc --taxonomy $(VOC)/tree.json --out $(VOC)/data/pascal_voc --n 8 --size 128
	$(HIERSEG) data synth --dataset cityscapes --out $(VOC)/data/cityscapes --n 8 --size 128
	rm -rf $(VOC)/run  # a run folder is only reused with --resume
	$(HIERSEG) train --config configs/synth_dsspn_resnet18_voc_cityscapes.yaml
	$(HIERSEG) eval --checkpoint $(VOC)/run/model.pt --dataset pascal_voc $(VOC)/data/pascal_voc --per-class

# MSeg's six held-out test datasets added to the tree (taxonomy/specs/<name>.yaml; ScanNet adds three concepts, hence
# --any-size), and a small synthetic copy of each in its official layout: what zero-shot evaluation scores on.
MSEG     := build/mseg
MSEG_TEST := pascal_voc camvid kitti wilddash scannet pascal_context
mseg-tree: setup
	$(HIERSEG) taxonomy build $(foreach ds,$(MSEG_TEST),--add taxonomy/specs/$(ds).yaml) --any-size --out $(MSEG)/tree.json
	$(HIERSEG) taxonomy stats $(MSEG)/tree.json
	for ds in $(MSEG_TEST); do $(HIERSEG) data synth --dataset $$ds --taxonomy $(MSEG)/tree.json --out $(MSEG)/data/$$ds --n 8 --size 128 || exit 1; done

# Tests run in parallel workers, one per core (pytest-xdist); a file's tests stay on one worker, so its module
# fixtures (synthetic datasets, trained models) are built once; the longest files first (tests/conftest.py).
test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

bench: setup
	for script in bench/*_bench.py; do $(PY) $$script || exit 1; done

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build .pytest_cache
