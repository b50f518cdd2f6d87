#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME each (default 15s).
# A crash leaves its input under the package's testdata/fuzz, which then
# runs as a regression test in every `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-15s}"

mapfile -t files < <(grep -rl --include='*_test.go' '^func Fuzz' . | sort)
count=0
for f in "${files[@]}"; do
	pkg="./$(dirname "${f#./}")"
	for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$f" | cut -d' ' -f2); do
		echo "fuzz: $pkg $name for $fuzztime"
		go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg"
		count=$((count + 1))
	done
done
echo "fuzz: $count targets ran for $fuzztime each with no crash"
