#!/bin/sh
# Prints the module's internal import graph, one package a line:
#   pkg: the module packages it imports
# and the count of non-test lines outside workers/, examples/ and bench/
# that name a built-in worker class as a string. Run from the repository
# root: scripts/import-graph.sh
set -eu
mod=$(go list -m)
go list -f '{{.ImportPath}}: {{join .Imports " "}}' ./... |
	grep -v "^$mod/bench" |
	sed "s#$mod#.#g" |
	awk '{ printf "%s", $1; for (i = 2; i <= NF; i++) if ($i ~ /^\./) printf " %s", $i; print "" }'
n=$(git ls-files '*.go' | grep -v '_test.go$' | grep -vE '^(workers/|examples/|bench/)' |
	xargs grep -nE '"(sync|threaded|evloop|goroutine)"' | grep -cvE '^\S+:[0-9]+:\s*([A-Za-z_]+ )?"sync"$' || true)
echo "lines naming a class outside workers/, examples/, bench/: $n"
