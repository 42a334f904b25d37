# Dev cluster targets; included from the root Makefile.
# The including Makefile keeps its own default goal.
_devcluster_prev_goal := $(.DEFAULT_GOAL)
DEVCLUSTER_PY ?= $(shell [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)

.PHONY: dev-cluster dev-cluster-down dev-cluster-status dev-cluster-test image

## Start the local Kubernetes cluster in the background; returns once it is healthy.
dev-cluster:
	@bash devcluster/setup.sh
	@$(DEVCLUSTER_PY) -m devcluster up

## Stop the cluster: no process, container or pod network left behind.
dev-cluster-down:
	@$(DEVCLUSTER_PY) -m devcluster down

dev-cluster-status:
	@$(DEVCLUSTER_PY) -m devcluster status

## The dev cluster's smoke suite: start the cluster, run it, always stop the cluster after.
dev-cluster-test: setup
	@bash devcluster/setup.sh
	@rc=0; { $(DEVCLUSTER_PY) -m devcluster up && .venv/bin/pytest -q -m cluster tests/devcluster; } \
	  || rc=$$?; $(DEVCLUSTER_PY) -m devcluster down; exit $$rc

## Build the root Dockerfile as localhost/cofre:dev and load it into the cluster's nodes.
image:
	@if [ ! -f Dockerfile ]; then echo "make image: no Dockerfile at the repository root yet" >&2; exit 1; fi
	@bash devcluster/setup.sh
	@$(DEVCLUSTER_PY) -m devcluster build-image localhost/cofre:dev .

.DEFAULT_GOAL := $(_devcluster_prev_goal)
