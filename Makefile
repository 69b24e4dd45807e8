# txtimeout: see README.md.
GO       ?= go
# Every target that needs root or QEMU installs its packages first.
DEPS     := scripts/install-deps
# How long a few seconds of fuzzing in `make test` lasts per target.
FUZZTIME ?= 3s

.PHONY: all deps test-deps build test unit fuzz check bench soak lava lava-multinode txtimeout clean

all: build

deps:
	@$(DEPS)

build:
	$(GO) build -o bin/txtimeout ./cmd/txtimeout

# The main job: the TxTimeout scenarios, on the built-in virtual rig unless
# TXTIMEOUT_IFACE names a hardware interface.
txtimeout: deps
	$(GO) test -count=1 -v -timeout 30m ./scenarios -run TxTimeout

# What CI runs: unit and integration tests (the virtual rig included), then
# a few seconds of each fuzz target.
test: test-deps unit fuzz

test-deps:
	@$(DEPS) --test

unit:
	$(GO) test -count=1 -timeout 25m ./...

# A run that fails with only the fuzzer's own end-of-run "context deadline
# exceeded" (no failing input written: a Go toolchain flake, seen once in
# about a hundred runs) is run once more; any real finding fails at once.
fuzz:
	@set -e; grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sort | \
	while IFS=: read -r file fn; do \
		fn=$${fn#func }; pkg=./$$(dirname $${file#./}); \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		if ! out=$$($(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=1s $$pkg 2>&1); then \
			echo "$$out"; \
			if echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input written'; then \
				echo "fuzz $$pkg $$fn: the fuzzer stopped on its own deadline without a failing input; once more"; \
				$(GO) test -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=1s $$pkg; \
			else exit 1; fi; \
		else echo "$$out" | tail -n 2; fi; \
	done

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	@if $(GO) run honnef.co/go/tools/cmd/staticcheck@latest -version >/dev/null 2>&1; then \
		$(GO) run honnef.co/go/tools/cmd/staticcheck@latest ./...; \
	else echo "staticcheck: not available from the module proxy; skipped"; fi
	$(MAKE) test

bench: deps
	$(GO) run ./cmd/benchreport

# PartnerStall/ICMP many times in one rig boot: same verdict every run, no
# goroutine or fd leak, flat memory. TXTIMEOUT_SOAK=N (default 20).
soak: deps
	TXTIMEOUT_SOAK=$${TXTIMEOUT_SOAK:-20} TXTIMEOUT_RIG_TIMEOUT=$${TXTIMEOUT_RIG_TIMEOUT:-30m} \
		$(GO) test -count=1 -v -timeout 45m ./scenarios -run '^TestSoak$$'

# The LAVA job contrib/lava/job-qemu.yaml, run by Debian's lava-dispatcher
# (lava-run, no server) on a qemu device; prints LAVA's results. Opt-in,
# root; not part of test. See contrib/lava/README.md.
lava: deps
	scripts/lava

# The same with contrib/lava/job-multinode.yaml: the DUT and a partner
# running `txtimeout partner` as two roles, with a local lava-coordinator.
lava-multinode: deps
	scripts/lava --multinode

clean:
	rm -rf bin
