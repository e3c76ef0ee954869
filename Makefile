# iam-provisioner: run the pipeline locally, test it, build, replay, deploy.
# Everything a target needs is installed by the target itself.

SHELL := /bin/bash
EVENT ?= events/onboarding-ticket.json
FUNCTION ?=
PYTHON ?= python3
# The emulator the tests are written against; tests/tests/moto_facts.rs
# notices when its behaviour changes.
MOTO_SPEC ?= moto[server]>=5.2,<5.3
CFN_LINT_SPEC ?= cfn-lint>=1,<2
# checkov and the SAM CLI pin boto3 versions of their own (different from each
# other and from the emulator's): each gets a virtual environment under target/.
CHECKOV_SPEC ?= checkov>=3,<4
SAM_CLI_SPEC ?= aws-sam-cli>=1,<2
TOOLS := $(CURDIR)/target/tools
CARGO_LAMBDA_SPEC ?= cargo-lambda>=1.9,<2
CARGO ?= cargo
FUNCTIONS := create-user issue-credentials notify-user rotate-keys offboard-user change-access

.PHONY: help run emulator ops test validate build invoke deploy lint soak crash-points bench deps deps-validate deps-checkov deps-lambda iam-sim
.DEFAULT_GOAL := help

help:
	@echo "make run [EVENT=path]                 the whole pipeline, locally, on a ticket (default $(EVENT))"
	@echo "make emulator                         moto with the pipeline's resources, in the foreground; prints the lines to export"
	@echo "make ops ARGS=\"status ONB-1042\"        the operator CLI against the emulator (AWS_ENDPOINT_URL); ARGS=--help for its commands"
	@echo "make test                             unit and emulator tests, and the template checks"
	@echo "make validate                         cfn-lint, checkov, the security test of template.yaml and sam validate --lint"
	@echo "make iam-sim [IAM_SIM_REQUESTS=path]  template.yaml's roles, resource policies and fence in an IAM simulator (tests/iam)"
	@echo "make build                            release zips for Lambda (arm64) under target/lambda/"
	@echo "make invoke FUNCTION=f [EVENT=path]   replay a sample event against the local emulator (cargo lambda watch/invoke)"
	@echo "make deploy                           sam build && sam deploy --guided"
	@echo "make soak                             100 tickets x 10 users under faults; rewrites the figures in RELIABILITY.md"
	@echo "make crash-points                     a stage dying at every one of its AWS calls (make test samples a third)"
	@echo "make bench                            pipeline vs a minimal loop vs the AWS CLI on the emulator; writes BENCHMARKS.md"
	@echo "make lint                             rustfmt and clippy"

# The emulator, unless it is already importable.
deps:
	@$(PYTHON) -c 'import moto, flask, flask_cors' 2>/dev/null || \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check '$(MOTO_SPEC)'

deps-validate:
	@command -v cfn-lint >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check '$(CFN_LINT_SPEC)'
	@test -x $(TOOLS)/sam/bin/sam || { $(PYTHON) -m venv $(TOOLS)/sam && \
		$(TOOLS)/sam/bin/pip install --quiet --disable-pip-version-check '$(SAM_CLI_SPEC)'; }

deps-checkov:
	@test -x $(TOOLS)/checkov/bin/checkov || { $(PYTHON) -m venv $(TOOLS)/checkov && \
		$(TOOLS)/checkov/bin/pip install --quiet --disable-pip-version-check '$(CHECKOV_SPEC)'; }

deps-lambda:
	@command -v cargo-lambda >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check '$(CARGO_LAMBDA_SPEC)'

# Starts moto on a free loopback port when AWS_ENDPOINT_URL is unset.
run: deps
	$(CARGO) run --quiet -p tests --bin run-local -- $(EVENT)

# moto on a free loopback port with the pipeline's resources (the tests'
# bootstrap); prints the export lines for another shell; Ctrl-C stops it.
emulator: deps
	$(CARGO) run --quiet -p tests --bin emulator

# The operator CLI, against the emulator `make emulator` started (its exports
# set AWS_ENDPOINT_URL and the variables ops reads). Refuses to run without
# AWS_ENDPOINT_URL, so a local shell's credentials never reach a real account
# by accident; against AWS, run the built binary (target/release/ops) yourself.
ARGS ?= --help
ops:
	@test -n "$$AWS_ENDPOINT_URL" || { echo "make ops talks to the local emulator: run make emulator and paste its export lines first"; exit 2; }
	@$(CARGO) run --quiet -p ops -- $(ARGS)

# cargo test writes the request log (tests/tests/iam_requests.rs) that the
# IAM simulator suite then checks against the template's roles.
test: deps validate
	$(CARGO) test --workspace --all-targets
	$(MAKE) --no-print-directory iam-sim

# checkov fails on any check not passed or skipped with a reason in the
# template's Metadata. sam validate --lint needs a region, no account.
validate: deps-validate deps-checkov
	cfn-lint template.yaml
	$(TOOLS)/checkov/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download
	$(PYTHON) -m unittest tests/template_test.py
	AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 $(TOOLS)/sam/bin/sam validate --lint

# The IAM simulator (@cloud-copilot/iam-simulate, AGPL: a test-only tool, installed under
# tests/iam/node_modules, never shipped). Needs the request log a cargo test writes
# (target/iam-sim/requests.json); without it the suite fails. To develop without it:
# make iam-sim IAM_SIM_REQUESTS=tests/iam/fixtures/requests.sample.json
IAM_SIM_REQUESTS ?= target/iam-sim/requests.json
iam-sim: deps-validate
	@command -v npm >/dev/null 2>&1 || { echo "iam-sim needs Node.js 20+ and npm"; exit 2; }
	@test -d tests/iam/node_modules/@cloud-copilot/iam-simulate || npm ci --prefix tests/iam --no-audit --no-fund
	$(PYTHON) tests/iam/resolve.py --out target/iam-sim/model.json
	node tests/iam/run.mjs --requests $(IAM_SIM_REQUESTS)

build: deps-lambda
	@rustup target list --installed | grep -q '^aarch64-unknown-linux-gnu$$' || rustup target add aarch64-unknown-linux-gnu
	$(CARGO) lambda build --release --arm64 --output-format zip $(addprefix -p ,$(FUNCTIONS))
	@ls -l $(foreach f,$(FUNCTIONS),target/lambda/$(f)/bootstrap.zip)

invoke: deps deps-lambda
	@test -n "$(FUNCTION)" || { echo "usage: make invoke FUNCTION=<$(FUNCTIONS)> [EVENT=events/<function>.json]"; exit 2; }
	FUNCTION=$(FUNCTION) EVENT=$(if $(filter $(origin EVENT),command line),$(EVENT),events/$(FUNCTION).json) tests/invoke.sh

deploy:
	@command -v sam >/dev/null 2>&1 || { echo "deploy needs the AWS SAM CLI (pip install aws-sam-cli) and AWS credentials"; exit 2; }
	sam build && sam deploy --guided

SOAK_TICKETS ?= 100
SOAK_USERS ?= 10
SOAK_SEED ?= 42
soak: deps
	SOAK_TICKETS=$(SOAK_TICKETS) SOAK_USERS=$(SOAK_USERS) SOAK_SEED=$(SOAK_SEED) SOAK_REPORT=$(CURDIR)/target/soak-figures.md \
		$(CARGO) test -p tests --test soak -- --nocapture
	$(PYTHON) -c 'import re,datetime,pathlib; p=pathlib.Path("RELIABILITY.md"); f=pathlib.Path("$(CURDIR)/target/soak-figures.md").read_text(); \
		d=datetime.date.today().isoformat(); \
		p.write_text(re.sub(r"(?s)<!-- soak:begin -->.*<!-- soak:end -->", "<!-- soak:begin -->\nLast run: " + d + "\n\n| figure | value |\n| --- | --- |\n" + f + "<!-- soak:end -->", p.read_text()))'
	@echo "RELIABILITY.md updated"

BENCH_TICKETS ?= 100
BENCH_USERS ?= 10
BENCH_RUNS ?= 3
bench: deps
	@command -v aws >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check 'awscli>=1.40,<2'
	$(CARGO) build --release -q $(addprefix -p ,$(FUNCTIONS))
	$(CARGO) build --release -q -p tests --bin hello-lambda --bin bench
	BENCH_TICKETS=$(BENCH_TICKETS) BENCH_USERS=$(BENCH_USERS) BENCH_RUNS=$(BENCH_RUNS) target/release/bench

crash-points: deps
	CRASH_POINTS_STRIDE=1 $(CARGO) test -p tests --test crash_points -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
