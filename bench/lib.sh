# Shared by the bench scripts (sourced, POSIX sh).

# bench_schemas BINARY SRC: the compiled rules a gateway binary reads.
# A binary built in a source tree (TREE/build/VARIANT/pzpgw) reads that
# tree's schemas/, as the rule file format may differ between revisions
# (an older binary cannot read newer rules); otherwise SRC's schemas/.
bench_schemas() {
	t=$(cd "$(dirname "$1")/../.." 2>/dev/null && pwd) || t=""
	if [ -n "$t" ] && [ -f "$t/schemas/r4-core.rules" ]; then
		echo "$t/schemas"
	else
		echo "$2/schemas"
	fi
}
