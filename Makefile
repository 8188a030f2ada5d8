# One virtual environment (.venv) serves the demo and the tests; it is built on first use.
PYTHON ?= python3
# torch 2.14.1 + torchvision 0.29.1 install from this machine's local wheels; override elsewhere,
# e.g. make test TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dse-installed
PLUGINS := $(wildcard plugins/dse-plugin-*)

.PHONY: install test demo eval-demo bench clean

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

# The committed quality-time report (docs/demo-report): encoder + 20-step refinements vs optimisation alone
# (200 steps from the mean latent), on CPU with 2 threads so that its s/image stay comparable; a few minutes.
EVAL_THREADS ?= 2
eval-demo: $(STAMP)
	OMP_NUM_THREADS=$(EVAL_THREADS) $(VENV)/bin/dse eval --gan stylegan2 --synthetic 64 --images examples/ \
		--no-lpips --device cpu --quiet --refine none --refine latents --refine encoder --refine generator \
		--refine latents+generator --refine-steps 20 --optimise-from-mean 20 --optimise-from-mean 200 \
		-o docs/demo-report

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
