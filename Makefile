# DPKit: the two commands a new user runs are `make demo` and `make test`.
# Both install the Debian packages DPKit needs when they are missing (apt-get, as root or via sudo).

SWIFT ?= swift
# openssl: the CLI makes the test certificates of the federated network tests and federated-check.
DEB_PACKAGES := pkg-config libopenblas-dev liblapacke-dev libfftw3-dev zlib1g-dev openssl
DATA_PACKAGES := dataset-fashion-mnist
# rsvg-convert, for the PDFs (and PNG) of `dpkit plot`; optional: without it plot writes SVGs only.
PLOT_PACKAGES := librsvg2-bin
DEMO_CONFIG ?= experiments/quickstart.yaml
DEMO_OUT ?= runs/quickstart

.PHONY: demo test build release deps data plot-deps bench bench-suites bench-suites-selftest examples docs format lint clean \
	mpi mpi-deps mpi-check slurm-check federated-check

# Installs the packages listed in $(1) that dpkg does not report as installed.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call apt_install,$(DEB_PACKAGES))

data:
	$(call apt_install,$(DATA_PACKAGES))

plot-deps:
	$(call apt_install,$(PLOT_PACKAGES))

release: deps
	$(SWIFT) build -c release --product dpkit

build: deps
	$(SWIFT) build

demo: release
	.build/release/dpkit info
	rm -rf $(DEMO_OUT)
	.build/release/dpkit run $(DEMO_CONFIG) --output $(DEMO_OUT)
	.build/release/dpkit table $(DEMO_OUT)
	.build/release/dpkit plot $(DEMO_OUT)

test: deps
	$(SWIFT) test --parallel

# Data-parallel DP-SGD over MPI (optional; docs/cluster.md). `make mpi` installs MPICH from Debian
# (MPI=ompi: Open MPI) and builds a dpkit with MPI (DPKIT_MPI, see Package.swift) in its own
# scratch folder, so the ordinary build never needs MPI. Launch: mpirun -np K .build-mpi/release/dpkit run CONFIG
# `make mpi-check`: 2 ranks against one process, bit for bit, and a killed rank then --resume (.ci/mpi-check.sh).
# `make slurm-check`: a single-node Slurm cluster (as root; .ci/slurm-up.sh), a 2-task array
# from `dpkit slurm`, merged and compared with one process (.ci/slurm-check.sh).
MPI ?= mpich
MPI_PACKAGES := $(if $(filter ompi openmpi,$(MPI)),libopenmpi-dev openmpi-bin,libmpich-dev mpich)
MPI_SCRATCH ?= .build-mpi
MPI_CONFIGURATION ?= release
mpi-deps:
	$(call apt_install,$(DEB_PACKAGES) $(MPI_PACKAGES))

mpi: mpi-deps
	DPKIT_MPI=$(MPI) $(SWIFT) build -c $(MPI_CONFIGURATION) --product dpkit --scratch-path $(MPI_SCRATCH)
	@echo "MPI build: mpirun -np K $(MPI_SCRATCH)/$(MPI_CONFIGURATION)/dpkit run CONFIG"

mpi-check: mpi
	.ci/mpi-check.sh $(MPI_SCRATCH)/$(MPI_CONFIGURATION)/dpkit

slurm-check: build
	.ci/slurm-check.sh .build/debug/dpkit

# Federated learning as separate processes (docs/federated.md): one `dpkit federated server` and 3
# clients on loopback over TLS against `dpkit run` of the same config, bit for bit (.ci/federated-check.sh).
federated-check: build
	.ci/federated-check.sh .build/debug/dpkit

# Quick self-contained benchmark (no harness build).
bench: release
	.build/release/dpkit bench --workload mlp --mode private --batch-size 256 --steps 50

# The benchmark suites: Benchmarks/ (a nested package, so `swift test` never builds them) on
# ordo-one/benchmark 1.38.1 (`swift package benchmark`). One run of every suite is stored as the
# baseline $(BENCH_BASELINE) (Benchmarks/.benchmarkBaselines/, not committed), printed, and
# checked against Benchmarks/$(BENCH_THRESHOLDS)/ (minima of paired ratios, per mille).
# The library exits non-zero both on a regression and on a figure BETTER than its threshold
# (its thresholds are two-sided); ours are one-sided minima, so "better" passes here and only a
# regression (or a crash, or a build failure) fails. The check's log: Benchmarks/.build/bench-suites.log.
#   make bench-suites BENCH_ARGS="--target Kernels"            one suite
#   make bench-suites BENCH_THRESHOLDS=Thresholds-epyc-zen4 BENCH_ARGS="--target Kernels"
#                                                               absolute figures of one machine
#   make bench-suites-selftest                                  DPKit 3x slower must fail
BENCH_THRESHOLDS ?= Thresholds
BENCH_BASELINE ?= current
BENCH_ARGS ?=
bench-suites: deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark baseline update \
	  $(BENCH_BASELINE) --no-progress $(BENCH_ARGS)
	cd Benchmarks && $(SWIFT) package benchmark baseline read $(BENCH_BASELINE) --no-progress $(BENCH_ARGS)
	@cd Benchmarks && mkdir -p .build && \
	  { $(SWIFT) package benchmark thresholds check $(BENCH_BASELINE) --path $(BENCH_THRESHOLDS) --no-progress \
	      $(BENCH_ARGS) 2>&1; echo "bench-suites: thresholds check exited with status $$?"; } \
	    | tee .build/bench-suites.log; \
	  if grep -aq "exited with status 0$$" .build/bench-suites.log; then exit 0; fi; \
	  if grep -aq "benchmarkThresholdRegression" .build/bench-suites.log \
	     || grep -a "error:" .build/bench-suites.log | grep -qv "benchmarkThresholdImprovement"; then \
	    echo "bench-suites: FAILED: a figure is below its threshold (REGRESSION), or the check failed"; exit 1; fi; \
	  echo "bench-suites: every figure at or above its threshold"

# Runs the suites with every measured DPKit call repeated 3 times (DPKIT_BENCH_SLOWDOWN=3):
# the thresholds must trip, so this target succeeds only if `make bench-suites` fails.
bench-suites-selftest: deps
	@if DPKIT_BENCH_SLOWDOWN=3 $(MAKE) --no-print-directory bench-suites; then \
	  echo "bench-suites-selftest: FAILED: a 3x slower DPKit passed the thresholds"; exit 1; \
	else echo "bench-suites-selftest: a 3x slower DPKit trips the thresholds, as it must"; fi

# DPKit used as a library from a nested package (Examples/, depending on the root by path):
# builds it (debug) and runs each program; they exit non-zero when their result is off.
# DocSnippets compiles the Swift snippets of README.md, docs/ and the DocC articles.
EXAMPLES := TrainCustomModel AccountCustomMechanism ReadmeProgram DocSnippets
examples: deps
	cd Examples && $(SWIFT) build
	@for e in $(EXAMPLES); do echo "== Examples: $$e"; (cd Examples && ./.build/debug/$$e) || exit 1; done

# API documentation (DocC catalogs: Sources/<Module>/<Module>.docc) through
# swiftlang/swift-docc-plugin 1.5.0. The manifest adds that dependency only when DPKIT_DOCS is
# set, and the build goes to its own scratch folder, so `make test` and CI never resolve,
# fetch or build the plugin. Archives: .build-docs/plugins/Swift-DocC/outputs/<Module>.doccarchive
DOC_TARGETS := DPTensor DPAccounting DPLayers DPData DPTraining DPExperiments
# Package.resolved (not committed) is put back afterwards, so the plugin's pin does not linger.
docs: deps
	@mkdir -p .build-docs; rm -f .build-docs/Package.resolved.saved; \
	  if [ -f Package.resolved ]; then cp Package.resolved .build-docs/Package.resolved.saved; fi; \
	  DPKIT_DOCS=1 $(SWIFT) package --scratch-path .build-docs generate-documentation \
	    $(foreach t,$(DOC_TARGETS),--target $(t)); status=$$?; \
	  if [ -f .build-docs/Package.resolved.saved ]; then mv .build-docs/Package.resolved.saved Package.resolved; \
	  else rm -f Package.resolved; fi; exit $$status

# swift-format (ships with the toolchain), configured by .swift-format. `make lint` fails on any
# finding (CI runs it); `make format` rewrites files in place. Files whose text the docs show word
# for word carry `// swift-format-ignore-file`.
FORMAT_PATHS := Package.swift Sources Tests Examples Benchmarks
format:
	$(SWIFT) format format --in-place --recursive --parallel $(FORMAT_PATHS)

lint:
	$(SWIFT) format lint --strict --recursive --parallel $(FORMAT_PATHS)

clean:
	rm -rf .build .build-docs .build-mpi Benchmarks/.build Examples/.build
