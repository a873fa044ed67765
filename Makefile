# Switchyard. The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
# The module proxy only: a fallback to direct git fetches hangs on a closed
# network.
export GOPROXY := $(shell $(GO) env GOPROXY | sed -e 's/,direct$$//' -e 's/|direct$$//')
export GOFLAGS := -buildvcs=false
GOBIN := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build test deps lint vulncheck drill fuzz bench demo demo-stop demo-fleet demo-fleet-stop clean compat

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/switchyard ./cmd/switchyard
	$(GO) build -o bin/devcluster ./internal/cmd/devcluster
	$(GO) build -o bin/fleetlb ./internal/cmd/fleetlb

# deps installs the database servers and tools the tests run against.
deps:
	@bash scripts/install-deps.sh

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@# go.mod names what the code imports (direct dependencies not marked
	@# indirect) and go.sum holds nothing stale: `go mod tidy` fixes it.
	$(GO) mod tidy -diff

# vulncheck: govulncheck, online database or the snapshot in testdata/vulndb.
vulncheck:
	@bash scripts/vulncheck.sh

# test: the whole suite, with the race detector, against real servers.
# Under -race the relay keeps Go's own socket I/O (internal/rawconn), so
# the real clients' tests and drills run once more without it, on the
# raw-syscall path the binary uses.
RAW_IO_TESTS := TestQueryTextAndBinary|TestMultiStatementsAndResults|TestTransactions|TestManyClientsSmallPool|TestMariaDBCommandLine|TestLongPacketsMySQL|TestDrillNetworkCutMidResult|TestServerLostMidTransactionClosesClient|TestPsqlAndPgbench|TestPgbenchPrepared|TestLateCancelSparesNextStatement|TestWrapLeavesOtherConns|TestRoundTripLarge|TestConcurrentWritesWhole|TestReadDeadline|TestCloseUnblocksRead|TestResetIsSyscallError
test: deps lint vulncheck
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -count=1 -timeout 5m -run '^($(RAW_IO_TESTS))$$' ./wire/mysqlwire ./wire/pgwire ./internal/rawconn

# drill: the server-failure drills, each printing what it injected and
# what clients saw. The quick ones (wire/*/faults_test.go) also run in
# make test; the long ones are behind the drill build tag.
drill: deps
	set -o pipefail; $(GO) test -tags drill -count=1 -timeout 30m -run Drill -v ./... 2>&1 | grep -v '^time='

# bench: pgbench (select-only and TPC-B like; simple, extended, prepared;
# 1/16/64/256 clients) against PostgreSQL directly, through Switchyard and
# through PgBouncer (transaction mode, the same pool size), and sysbench
# point-select against MariaDB directly and through Switchyard, in one run on
# servers it starts and stops itself (about 18 minutes). Prints a markdown
# table with the ratios and writes it to bench-results/. Narrow it with e.g.
# BENCHFLAGS="-time 3s -clients 1,64"; bin/bench -h lists the flags.
# BENCHFLAGS="-rounds 3" runs everything three times, one round after
# another, and reports each cell's median run (and every round's TPS).
# bench-quick: just the table of issue 17 and the README (select-only
# simple 1/16/64/256, extended 1/64, prepared 16, TPC-B-like simple 1/64;
# sysbench point-select 16 threads), 5 s per run, one run: under 5 minutes.
# bench-memory: RSS of Switchyard and of PgBouncer with 10,000 idle clients.
BENCHFLAGS ?=
.PHONY: bench-memory bench-build bench-shards bench-quick bench-causal check-causal
bench-build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/switchyard ./cmd/switchyard
	$(GO) build -o bin/bench ./internal/cmd/bench

bench: deps bench-build
	bin/bench -switchyard bin/switchyard $(BENCHFLAGS)
	bin/bench -causal -switchyard bin/switchyard

# bench-causal (also run by make bench): read-your-writes latency, per
# protocol, against a primary with replicas: a plain replica read, a read
# that carries a position check (the bar of issue 14: within 20% of
# plain), a read right after the client's own write (about 2 minutes).
bench-causal: deps bench-build
	bin/bench -causal -switchyard bin/switchyard $(BENCHFLAGS)

# check-causal: issue 14's read-your-writes bar tried from outside, on the
# binary with a default config, for PostgreSQL and MariaDB: 20 writers in a
# 90/10 mix with healthy replicas (0 stale, 0 errors, >= half of the reads on
# replicas), 10,000 write-then-read pairs with one replica's replay paused
# (three runs; PostgreSQL also with synchronous_commit = off), the position
# token on another connection, causal_read_timeout, and /metrics against
# what the clients saw. Fails when any of it does not hold (about 10
# minutes on 2 cores; BENCHFLAGS="-causal-check-runs 1" for fewer runs).
check-causal: deps bench-build
	bin/bench -causal-check -switchyard bin/switchyard $(BENCHFLAGS)

bench-quick: deps bench-build
	bin/bench -quick -switchyard bin/switchyard $(BENCHFLAGS)

bench-memory: deps bench-build
	bin/bench -memory -switchyard bin/switchyard $(BENCHFLAGS)

# bench-shards: point selects (pgbench select-only, key aid) through
# Switchyard on an unsharded database, a 1-shard and a 2-shard cluster of
# the same server, with the ratios (the cost of routing by key).
bench-shards: deps bench-build
	bin/bench -shards -switchyard bin/switchyard $(BENCHFLAGS)

# compat: the pgx v5 driver's own test suite (pinned version, fetched
# through the Go module proxy) directly against a test PostgreSQL and then
# through Switchyard in transaction mode; prints passed/failed/skipped for
# both, every test that fails only through the proxy (each must be listed
# with its reason in testdata/compat/pgx-known-failures.txt), and checks
# that every pool is idle afterwards. Exits non-zero on an unexplained
# failure, a hang or a leaked server connection. Too long for make test
# (see the README for its time). Narrow it with e.g.
# COMPATFLAGS="-pkgs pgconn -run TestConnExec"; bin/compat -h lists the flags.
COMPATFLAGS ?=
compat: deps
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/switchyard ./cmd/switchyard
	$(GO) build -o bin/compat ./internal/cmd/compat
	bin/compat -switchyard bin/switchyard $(COMPATFLAGS)

# fuzz runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 30s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

# demo: a PostgreSQL primary with two replicas and a MariaDB primary with a
# replica on the ports of config.toml, the sample schema, and the proxy with
# config.toml, all in the background under .demo/ (no system services);
# prints the DSNs and example commands. demo-stop stops all of it.
demo: deps build
	@bash scripts/demo.sh start

demo-stop:
	@bash scripts/demo-fleet.sh stop
	@bash scripts/demo.sh stop

# demo-fleet: the demo's servers, and three instances of the proxy
# (instance_id 1..3, peers of each other) behind round-robin balancers on
# 127.0.0.1:6440 (PostgreSQL) and :6050 (MySQL); prints how to try a cancel
# and a KILL across instances. demo-fleet-stop stops the fleet.
demo-fleet: deps build
	@bash scripts/demo-fleet.sh start

demo-fleet-stop:
	@bash scripts/demo-fleet.sh stop

# compat-mysql: go-sql-driver/mysql v1.10.1's own test suite, directly
# against MariaDB and through Switchyard (transaction mode, pool_size 20;
# POOL_MODE=session for session mode), on a MariaDB it starts and stops
# itself. Prints passed / failed / skipped for both and the tests that
# fail only through the proxy, each with its reason from
# testdata/compat/mysql-known-failures.txt; fails on an unexplained one or
# a pool not idle afterwards. About two minutes.
.PHONY: compat-mysql
compat-mysql: deps
	@bash scripts/compat-mysql.sh

# compat-pq: lib/pq v1.12.3's own test suite, directly against PostgreSQL
# and through Switchyard (transaction mode, pool_size 20, on port 6432 so
# the suite skips what it skips for PgBouncer; POOL_MODE=session for
# session mode), on a PostgreSQL it starts and stops itself in a
# loopback-only network namespace (needs root). Prints passed / failed /
# skipped for both and the tests that fail only through the proxy, each
# with its reason from testdata/compat/pq-known-failures.txt; fails on an
# unexplained one or a pool not idle afterwards.
.PHONY: compat-pq
compat-pq: deps
	@bash scripts/compat-pq.sh

clean:
	rm -rf bin
