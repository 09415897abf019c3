#!/bin/sh
# Validation speed: rates per second of CPU time on one core, warm, parsed
# once, for the F1 scenario (its 20 resources one by one, and the F1
# Bundle whole, both as `pzpgw validate` runs it (every finding) and as the
# gateway's accept does (validate_opts.quiet_when_valid: no warnings built
# for a valid document)), side by side in the same run, rounds alternated,
# with the engine before issue 14 (git rev BENCH_VALIDATE_BASE_REV, default
# 601290a, built once under build/bench/), optionally another build
# (BENCH_VALIDATE_PREV: a build directory holding libpzpgw.a, or a git rev)
# and the npm `fhir` package's validator (base R4 only); plus start-up time
# with all R4 rules loaded and peak RSS of `pzpgw validate`.
# usage: sh bench/bench_validate.sh BUILD/pzpgw   (run from the repo root)
# env: BENCH_SECONDS (3 per measurement), BENCH_ROUNDS (3),
# BENCH_VALIDATE_BASE_REV (none: no base), BENCH_VALIDATE_PREV.
set -e
bin=${1:?usage: bench_validate.sh PZPGW_BINARY}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/bench
secs=${BENCH_SECONDS:-3}
rounds=${BENCH_ROUNDS:-3}
py=${PYTHON:-/usr/bin/python3}
mkdir -p "$out/f1"
bundle=$root/tests/data/valid/r4/pzp-0.1.3/bundle-F1.json
libs="openssl libcurl jansson uuid libevent libevent_openssl sqlite3 inih libxml-2.0"

# tree_of REV: a source tree of git rev REV built under build/bench/ (once)
tree_of() {
	t=$out/tree-$1
	if [ ! -f "$t/build/release/libpzpgw.a" ]; then
		rm -rf "$t"
		mkdir -p "$t"
		git -C "$root" archive "$1" | tar -x -C "$t"
		make -C "$t" -j2 all >"$t.log" 2>&1
	fi
	echo "$t"
}

# rate_helper NAME TREE LIBDIR: the rate helper of TREE (its own
# validate_rate.c: the engine's API may differ) linked with LIBDIR's engine
rate_helper() {
	${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -I"$2/gateway" \
		-I"$2/gateway/fhir" -o "$out/validate_rate_$1" \
		"$2/bench/validate_rate.c" "$3/libpzpgw.a" \
		$(pkg-config --libs $libs) -lm -pthread
	# a helper without the quiet mode measures full runs only
	if grep -q VALIDATE_RATE_QUIET "$2/bench/validate_rate.c"; then
		echo "$1 $2 yes"
	else
		echo "$1 $2 no"
	fi
}

builds=$out/builds.txt
: >"$builds"
rate_helper this "$root" "$(dirname "$bin")" >>"$builds"
cp "$out/validate_rate_this" "$out/validate_rate"
rev=${BENCH_VALIDATE_BASE_REV:-601290a}
if [ "$rev" != none ] && git -C "$root" cat-file -e "$rev" 2>/dev/null; then
	t=$(tree_of "$rev")
	rate_helper "base-$rev" "$t" "$t/build/release" >>"$builds"
fi
prev=${BENCH_VALIDATE_PREV:-}
if [ -n "$prev" ]; then
	if [ -f "$prev/libpzpgw.a" ]; then
		t=$(cd "$prev/../.." && pwd)
		rate_helper prev "$t" "$prev" >>"$builds"
	else
		t=$(tree_of "$prev")
		rate_helper "prev-$prev" "$t" "$t/build/release" >>"$builds"
	fi
fi

# The F1 resources one by one: the Bundle's entries as files.
"$py" - "$bundle" "$out/f1" <<'PY'
import json, os, sys
b = json.load(open(sys.argv[1], encoding="utf-8"))
for n, e in enumerate(b["entry"]):
    r = e["resource"]
    with open(os.path.join(sys.argv[2], "%02d-%s.json" % (n, r["resourceType"])), "w") as f:
        json.dump(r, f)
PY
set -- "$out"/f1/*.json

rate() { sed -n 's/^resources_per_s=//p'; }

# Rounds alternate the builds, so that a change in the machine's load
# falls on all of them; each build reads its own tree's rules.
res=$out/rates.txt
: >"$res"
r=0
while [ "$r" -lt "$rounds" ]; do
	while read -r name tree quiet; do
		h=$out/validate_rate_$name
		s=$tree/schemas
		e=$("$h" "$s" "$secs" each "$@" | rate)
		f=$("$h" "$s" "$secs" bundle "$bundle" | rate)
		q=-
		[ "$quiet" = no ] ||
			q=$(VALIDATE_RATE_QUIET=1 "$h" "$s" "$secs" bundle \
				"$bundle" | rate)
		echo "$name $e $f $q" >>"$res"
	done <"$builds"
	r=$((r + 1))
done

peer_each=""
peer_bundle=""
if [ ! -d "$out/node_modules/fhir" ]; then
	npm install --silent --prefix "$out" fhir@4.12.0 >/dev/null 2>&1 || true
fi
if [ -d "$out/node_modules/fhir" ] && command -v node >/dev/null; then
	peer_each=$(node "$root/bench/validate_npm.js" "$out/node_modules" \
		"$secs" each "$@" | rate)
	peer_bundle=$(node "$root/bench/validate_npm.js" "$out/node_modules" \
		"$secs" bundle "$bundle" | rate)
fi

"$py" - "$res" "$peer_each" "$peer_bundle" <<'PY'
import sys
rows = {}
order = []
for line in open(sys.argv[1]):
    name, e, f, q = line.split()
    if name not in rows:
        rows[name] = []
        order.append(name)
    rows[name].append((float(e), float(f) / 21, None if q == "-" else float(q) / 21))

def span(v):
    v = [x for x in v if x is not None]
    if not v:
        return "-"
    return "%d-%d" % (min(v), max(v)) if len(v) > 1 else "%d" % v[0]

def med(v):
    v = sorted(x for x in v if x is not None)
    return v[len(v) // 2] if v else None

print("F1 per second of CPU (%d rounds, min-max):" % len(rows[order[0]]))
print("%-16s %16s %18s %18s" % ("build", "resources 1 by 1", "Bundles (full)", "Bundles (accept)"))
for n in order:
    r = rows[n]
    print("%-16s %16s %18s %18s" % (n, span([x[0] for x in r]),
          span([x[1] for x in r]), span([x[2] for x in r])))
this = rows["this"]
for n in order[1:]:
    o = rows[n]
    # ratios per round (the builds of one round ran side by side)
    full = [a[1] / b[1] for a, b in zip(this, o)]
    acc = [a[2] / (b[2] or b[1]) for a, b in zip(this, o) if a[2]]
    print("this / %s: Bundles full %.2f-%.2fx, accept %.2f-%.2fx "
          "(%s: its full run where it has no quiet one)" %
          (n, min(full), max(full), min(acc), max(acc), n))
if sys.argv[2]:
    pe, pb = float(sys.argv[2]), float(sys.argv[3]) / 21
    print("npm fhir@4.12.0: %d resources/s one by one, %d Bundles/s" % (pe, pb))
    print("this / npm: one by one %.1fx, Bundle full %.1fx, accept %.1fx "
          "(targets: 10x)" % (med([x[0] for x in this]) / pe,
                              med([x[1] for x in this]) / pb,
                              (med([x[2] for x in this]) or 0) / pb))
else:
    print("npm fhir@4.12.0 not available: no peer figures")
PY

# Start-up (all R4 rules loaded, one small file validated) and peak RSS.
"$py" - "$bin" "$root" "$bundle" <<'PY'
import os, resource, subprocess, sys, time
binp, root, bundle = sys.argv[1:4]
env = dict(os.environ, PZPGW_SCHEMAS=os.path.join(root, "schemas"))
small = os.path.join(root, "tests/data/valid/r4/pzp-1.0.0-rc1/Goal-F1-ACP-Medical-Policy-Goal.json")
best = None
for _ in range(10):
    t = time.monotonic()
    subprocess.run([binp, "validate", small], env=env, stdout=subprocess.DEVNULL, check=True)
    d = time.monotonic() - t
    best = d if best is None or d < best else best
subprocess.run([binp, "validate", bundle], env=env, stdout=subprocess.DEVNULL, check=True)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("start-up with all R4 rules, one resource validated: %.0f ms (best of 10; target < 100 ms)" % (best * 1000))
print("peak RSS of pzpgw validate (F1 Bundle): %.1f MB (target < 50 MB)" % rss)
PY
