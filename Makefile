# admn_ros developer entry points. `make demo` and `make test` set everything up
# (idempotently, in .venv/) and then run; a second run reuses what is there.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DEMO_ARGS ?=
PYTEST_ARGS ?=

# DDS never leaves this machine; the shipped FastDDS profile (large SHM segment) is the default.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds.xml
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp
export OMP_NUM_THREADS ?= 1

.PHONY: env demo pictures test test-quick bench models evaluate evaluate-realworld heldout-report models-activity evaluate-activity evaluate-activity-unseen activity-replay-report shell clean
env: $(VENV)/.stamp-pkg

$(VENV)/.stamp-deps: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 \
	    | grep -v "is neither a file nor a directory"; test $${PIPESTATUS[0]} -eq 0
	@touch $@

$(VENV)/.stamp-msgs: $(VENV)/.stamp-deps $(wildcard msg/*.msg) CMakeLists.txt package.xml scripts/build_interfaces.py
	$(PY) scripts/build_interfaces.py
	@touch $@

$(VENV)/.stamp-pkg: $(VENV)/.stamp-msgs setup.py resource/executables
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
	    -e . --config-settings editable_mode=compat 2>&1 | grep -v -i -E 'deprecat|^\s*!!|^\s*\*+|^\s*$$|editable_mode|mode = ' || true
	$(PY) -c "import admn_ros.msg, rclpy, torch; print('[env] ready: admn_ros.msg, rclpy, torch', torch.__version__)"
	@touch $@

demo: env
	$(PY) -m admn_ros.cli demo $(DEMO_ARGS)

# The committed pictures: the demo's (README) and a window per activity (docs/DATASET.md).
pictures: env
	$(PY) -m admn_ros.cli demo --out docs/img
	rm -f docs/img/demo_tracking.json
	$(PY) -m admn_ros.core.sim.activity --out docs/img/activity_preview.png

# Everything, as CI runs it (as root: the network-namespace multi-host suite runs too), and the
# quick subset for local work (no suite marked slow: netns, real-time replay, respawn). `make test`
# fails if the tests changed a file git sees (tests write only under temporary paths).
test: env
	@before="$$(git status --porcelain 2>/dev/null)"; $(PY) -m pytest -q --run-slow $(PYTEST_ARGS); rc=$$?; \
	after="$$(git status --porcelain 2>/dev/null)"; if [ "$$before" != "$$after" ]; then \
	    echo "make test: the tests changed the working tree:"; diff <(echo "$$before") <(echo "$$after"); exit 1; fi; \
	exit $$rc

test-quick: env
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The shipped models: dataset + stage 1 + all controllers -> models/ (data/gdtm_sim, runs/shipped;
# fixed seeds; the defaults of `train all` are the shipped recipe, see docs/TRAINING.md).
models: env
	OMP_NUM_THREADS=2 $(PY) -m admn_ros.cli train all

# Table 1 on the held-out test split with the shipped models.
evaluate: env
	$(PY) -m admn_ros.cli evaluate --data data/gdtm_sim --models models --out docs/results/table1

# The same methods under the simulator's real-world sensor failures (low light, motion blur, frozen
# frames, radar clutter, dropout), drawn per stream and per modality: docs/results/realworld/.
evaluate-realworld: env
	$(PY) -m admn_ros.cli evaluate --data data/gdtm_sim --models models --out docs/results/realworld \
	    --regimes realworld --no-latency --no-progress

# Activity recognition (MM-Fi-style simulated data): dataset + stage 1 + finetune + controllers ->
# models/activity/ (data/activity_sim, runs/activity), then its accuracy table (docs/TRAINING.md).
models-activity: env
	OMP_NUM_THREADS=2 $(PY) -m admn_ros.cli train all --task activity
evaluate-activity: env
	$(PY) -m admn_ros.cli evaluate --data data/activity_sim --models models/activity --out docs/results/activity

# The activity test split has 5 subjects: too few to tell two methods a point apart. This set has
# 23 more (1840 windows), drawn with another generator seed, so none is a training subject; its
# report is docs/results/activity_unseen/ (paired intervals over subjects, docs/TRAINING.md).
ACTIVITY_UNSEEN ?= data/activity_unseen
$(ACTIVITY_UNSEEN)/meta.json:
	$(PY) -m admn_ros.cli dataset --task activity --out $(ACTIVITY_UNSEEN) --subjects 25 --val-subjects 1 \
	    --test-subjects 23 --windows-per-activity 8 --frames 5 --seed 1 --quiet
evaluate-activity-unseen: env $(ACTIVITY_UNSEEN)/meta.json
	$(PY) -m admn_ros.cli evaluate --data $(ACTIVITY_UNSEEN) --models models/activity --out docs/results/activity_unseen \
	    --no-latency --no-progress

# Held-out scenario (seed, trajectories and corruption schedule unlike training) and its
# replay report at the four table budgets (committed under docs/results/heldout/).
HELDOUT_BAG ?= data/heldout_bag
$(HELDOUT_BAG)/metadata.yaml:
	$(PY) -m admn_ros.cli record --frames 450 --seed 20261122 --episode 7 --storage mcap --out $(HELDOUT_BAG) --no-progress \
	    --corrupt "node1/rgb=gaussian:sigma=3.0,schedule=flicker,period_s=4,duty=0.5" \
	    --corrupt "node2/depth=gaussian:sigma=0.75,schedule=flicker,period_s=3,duty=0.5" \
	    --corrupt "node2/rgb=gaussian:sigma=1.5" \
	    --corrupt "node3/radar=gaussian:sigma=1.0,schedule=flicker,period_s=6,duty=0.5" \
	    --corrupt "node3/rgb=dropout:schedule=flicker,period_s=5,duty=0.3"
heldout-report: env $(HELDOUT_BAG)/metadata.yaml
	$(PY) -m admn_ros.cli replay $(HELDOUT_BAG) --out docs/results/heldout --budgets 27,36,54,72 --no-bag --no-progress

# Held-out activity scenario: a subject no dataset trains on (id 1000), a new seed, and
# binary noise that flickers per stream at different periods (every on/off pattern of the
# three streams occurs); its replay report at the four table budgets (docs/results/activity_replay/).
ACTIVITY_BAG ?= data/activity_heldout_bag
$(ACTIVITY_BAG)/metadata.yaml:
	$(PY) -m admn_ros.cli record --scenario activity --frames 1200 --seed 20261122 --episode 3 --subject-id 1000 \
	    --storage mcap --out $(ACTIVITY_BAG) --no-progress \
	    --corrupt "node1/rgb=gaussian:sigma=3.0,schedule=flicker,period_s=6,duty=0.5" \
	    --corrupt "node1/depth=gaussian:sigma=0.75,schedule=flicker,period_s=10,duty=0.5" \
	    --corrupt "node1/radar=gaussian:sigma=1.0,schedule=flicker,period_s=14,duty=0.5"
activity-replay-report: env $(ACTIVITY_BAG)/metadata.yaml
	$(PY) -m admn_ros.cli replay $(ACTIVITY_BAG) --task activity --out docs/results/activity_replay \
	    --budgets 9,12,18,24 --no-bag --no-progress

bench: env
	$(PY) -m benchmarks.run_all

shell: env
	@echo "entering $(VENV) (exit to leave)"; source $(VENV)/bin/activate && exec $$SHELL -i

clean:
	rm -rf build $(VENV)
