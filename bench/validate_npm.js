// Benchmark peer for bench/bench_validate.sh: the npm `fhir` package's
// validator (base R4 checks only) on the same JSON files, parsed once, warm,
// rate per second of CPU time of this process.
// usage: node validate_npm.js MODULE_DIR SECONDS each|bundle FILE...
'use strict';
const fs = require('fs');
const path = require('path');

const [modDir, secs, mode, ...files] = process.argv.slice(2);
const { Fhir } = require(path.resolve(modDir, 'fhir'));
const fhir = new Fhir();
const docs = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
let perPass = 0;
for (const d of docs) {
  perPass += 1;
  if (mode === 'bundle' && Array.isArray(d.entry)) perPass += d.entry.length;
}
let errors = 0;
for (const d of docs) {
  const r = fhir.validate(d);
  if (!r.valid) errors += 1;
}
const budget = Number(secs) * 1e6;
const t0 = process.cpuUsage();
let passes = 0;
let used = 0;
do {
  for (const d of docs) fhir.validate(d);
  passes += 1;
  const t = process.cpuUsage(t0);
  used = t.user + t.system;
} while (used < budget);
console.log(`files=${docs.length} resources_per_pass=${perPass} passes=${passes} ms=${Math.round(used / 1000)} invalid_by_peer=${errors}`);
console.log(`resources_per_s=${Math.round((perPass * passes * 1e6) / used)}`);
