# One virtual environment (.venv) serves the demo and the tests; it is built on first use.
PYTHON ?= python3
# torch 2.14.1 + torchvision 0.29.1 install from this machine's local wheels; override elsewhere,
# e.g. make test TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dse-installed
PLUGINS := $(wildcard plugins/dse-plugin-*)

.PHONY: install test demo app eval-demo bench clean

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev]" $(addprefix -e ./,$(PLUGINS))
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/dse invert --gan stylegan2 examples/ -o out/demo

# the local web page on the embedded demos (gradio comes with the dev extra): http://127.0.0.1:7860
app: $(STAMP)
	$(VENV)/bin/dse app --gan stylegan2

# The committed quality-time reports, one per embedded demo (stylegan2: docs/demo-report, the others:
# docs/demo-report-FAMILY): encoder + 20-step refinements vs optimisation alone (200 steps from the mean latent),
# on CPU with 2 threads so that their s/image stay comparable; a few minutes each. One: make eval-demo DEMOS=pggan
EVAL_THREADS ?= 2
DEMOS ?= stylegan2 stylegan pggan biggan
# optimisation alone at its best learning rate per demo (200 steps; the sweep is in README's Evaluation section)
OPTIMISE_LR_stylegan2 = 0.03
OPTIMISE_LR_stylegan = 0.03
OPTIMISE_LR_pggan = 0.3
OPTIMISE_LR_biggan = 0.3
EVAL_DEMOS := $(addprefix eval-demo-,$(DEMOS))
.PHONY: $(EVAL_DEMOS)
eval-demo: $(EVAL_DEMOS)

$(EVAL_DEMOS): eval-demo-%: $(STAMP)
	OMP_NUM_THREADS=$(EVAL_THREADS) $(VENV)/bin/dse eval --gan $* --synthetic 64 --images examples/ \
		--no-lpips --device cpu --quiet --refine none --refine latents --refine encoder --refine generator \
		--refine latents+generator --refine-steps 20 --optimise-from-mean 20 --optimise-from-mean 200 \
		--optimise-lr $(OPTIMISE_LR_$*) -o docs/demo-report$(if $(filter stylegan2,$*),,-$*)

bench: $(STAMP)
	$(PY) benchmarks/generator_speed.py
	$(PY) benchmarks/stylegan_speed.py
	$(PY) benchmarks/pggan_speed.py
	$(PY) benchmarks/biggan_speed.py
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/invert_speed.py
	$(PY) benchmarks/startup.py

clean:
	rm -rf $(VENV) out build *.egg-info
