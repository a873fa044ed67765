#!/usr/bin/env bash
# vulncheck: govulncheck over the whole module. It uses the online Go
# vulnerability database when it answers, and otherwise the snapshot in
# testdata/vulndb (golang/vulndb's reports for this module's dependencies,
# written by internal/cmd/vulndb). A dependency the snapshot was not made
# for fails the check: regenerate the snapshot (see internal/cmd/vulndb).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
bin="$($GO env GOPATH)/bin/govulncheck"
version=v1.9.0
if ! "$bin" -version 2>/dev/null | grep -q "govulncheck@$version"; then
	$GO install "golang.org/x/vuln/cmd/govulncheck@$version"
fi

db=https://vuln.go.dev
if ! curl -fsS --max-time 5 -o /dev/null "$db/index/db.json" 2>/dev/null; then
	snapshot="$(sed -n '1s/^# golang\/vulndb data\/osv as of \([0-9-]*\).*/\1/p' testdata/vulndb/modules.txt)"
	missing="$(comm -23 <($GO list -m all | awk '{print $1}' | sort -u) <(grep -v '^#' testdata/vulndb/modules.txt | sort -u))"
	if [ -n "$missing" ]; then
		echo "vulncheck: testdata/vulndb was made before these modules were required; regenerate it:"
		echo "$missing"
		exit 1
	fi
	echo "vulncheck: $db unreachable; using the snapshot of $snapshot in testdata/vulndb"
	db="file://$PWD/testdata/vulndb"
fi
"$bin" -db "$db" ./...
