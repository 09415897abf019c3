#!/bin/sh
# Validation speed: resources per second of CPU time on one core, warm,
# parsed once, for the F1 scenario (its 20 resources one by one, and the
# F1 Bundle whole), side by side with the npm `fhir` package's validator
# (base R4 only) on the same files in the same run; plus start-up time with
# all R4 rules loaded and peak RSS of `pzpgw validate`.
# usage: sh bench/bench_validate.sh BUILD/pzpgw   (run from the repo root)
set -e
bin=${1:?usage: bench_validate.sh PZPGW_BINARY}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/bench
secs=${BENCH_SECONDS:-3}
py=${PYTHON:-/usr/bin/python3}
mkdir -p "$out/f1"
lib=$(dirname "$bin")/libpzpgw.a
bundle=$root/tests/data/valid/r4/pzp-0.1.3/bundle-F1.json

# The helper links the engine from the same build as the binary.
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -I"$root/gateway" -I"$root/gateway/fhir" \
	-o "$out/validate_rate" "$root/bench/validate_rate.c" "$lib" \
	$(pkg-config --libs openssl libcurl jansson uuid libevent \
		libevent_openssl sqlite3 inih libxml-2.0) -lm -pthread

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

ours_each=$("$out/validate_rate" "$root/schemas" "$secs" each "$@" | rate)
ours_bundle=$("$out/validate_rate" "$root/schemas" "$secs" bundle "$bundle" | rate)
echo "pzpgw  F1 resources one by one: $ours_each resources/s"
echo "pzpgw  F1 Bundle (21 resources): $ours_bundle resources/s" \
	"($((ours_bundle / 21)) Bundles/s)"

if [ ! -d "$out/node_modules/fhir" ]; then
	npm install --silent --prefix "$out" fhir@4.12.0 >/dev/null 2>&1 || true
fi
if [ -d "$out/node_modules/fhir" ] && command -v node >/dev/null; then
	peer_each=$(node "$root/bench/validate_npm.js" "$out/node_modules" \
		"$secs" each "$@" | rate)
	peer_bundle=$(node "$root/bench/validate_npm.js" "$out/node_modules" \
		"$secs" bundle "$bundle" | rate)
	echo "npm fhir@4.12.0 one by one:      $peer_each resources/s"
	echo "npm fhir@4.12.0 F1 Bundle:       $peer_bundle resources/s"
	"$py" -c "import sys; a,b,c,d=map(float,sys.argv[1:]); \
print('ratio pzpgw/npm: one by one %.1fx, Bundle %.1fx (target >= 2x)' % (a/b, c/d))" \
		"$ours_each" "$peer_each" "$ours_bundle" "$peer_bundle"
else
	echo "npm fhir@4.12.0 not available: no peer figures"
fi

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
