# The two commands a newcomer runs (see README.md):
#   make demo   prepare the built-in corpus -> train the tiny model on CPU -> print samples
#   make test   the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test venv incidents clean course

# The venv is (re)built when requirements.txt changes; the stamp file records a finished install.
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) prepare.py
	$(PY) train.py config/tiny.py
	$(PY) sample.py --ckpt out/tiny --prompt "ROMEO:" --prompt "def " --max-new-tokens 200

test: venv
	$(PY) -m pytest -q tests

clean:
	rm -rf out report

# The incident lab (docs/week2-accidents.md): baseline x 3 seeds + 11 accidents + their fixed runs + the
# LR-sensitivity sweep -> report/incidents/report.md; two runs at a time (INCIDENTS_ARGS="--no-sweep" to skip the sweep)
incidents: venv
	$(PY) incidents.py $(INCIDENTS_ARGS)

# Controlled experiments (README: Controlled experiments, sweeps.py): 1-5 min each -> report/sweeps/NAME/report.md
# sweep-clean, sweep-vocab: data experiments (sweeps_data.py); sweep-scaling: the Chinchilla study, Approaches
# 2 and 3 on 20 IsoFLOP runs + 1 held out (8 min measured on 2 idle cores; the earlier grid: 49 min, shared);
# sweep-lr_1b, sweep-batch_1b, sweep-warmup_1b: the plan's values at config/1b.py (GPU hours, see each file), on
# one 8-GPU node with SWEEP_ARGS="--nproc 8" (each run under torchrun); SWEEP_ARGS passes any sweeps.py option
.PHONY: sweep-mix sweep-lr sweep-batch sweep-warmup sweep-schedule sweep-ckpt sweep-seed sweep-clean sweep-vocab \
        sweep-scaling sweep-lr_1b sweep-batch_1b sweep-warmup_1b
sweep-mix sweep-lr sweep-batch sweep-warmup sweep-schedule sweep-ckpt sweep-seed sweep-clean sweep-vocab \
sweep-scaling sweep-lr_1b sweep-batch_1b sweep-warmup_1b: venv
	$(PY) sweeps.py $(@:sweep-%=%) $(SWEEP_ARGS)

# The whole plan in one command (course.py): week 1 data, week 2 incidents, week 3 the main run (stopped by
# SIGTERM and resumed), week 4 the sweeps, then report/course/retrospective.md. COURSE_MINUTES sizes every
# stage; BASE is the main run's config (config/124m.py on a rented GPU); COURSE_SWEEPS picks week 4's experiments.
COURSE_MINUTES ?= 60
BASE ?= config/tiny.py
COURSE_SWEEPS ?= lr,batch,warmup,mix,clean,scaling
course: venv
	$(PY) course.py --minutes $(COURSE_MINUTES) --base $(BASE) --sweeps $(COURSE_SWEEPS)
