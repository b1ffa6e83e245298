// stash-report against lines written by stash's own EMF writer (build/tools/emf_sample, from
// tests/tools/emf_sample.c).  The expected figures are derived by hand from the records that
// driver writes; its comment lists them.  Run: node --test dashboards/test/ (after `make`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { summarize, report, renderText, renderMarkdown, parseArgs, percentile } from '../stash-report.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD = path.resolve(ROOT, process.env.BUILD ?? 'build');
const SAMPLE = path.join(BUILD, 'tools', 'emf_sample');
const REPORT = path.join(ROOT, 'dashboards', 'stash-report.mjs');

function sample(scenario) {
  return execFileSync(SAMPLE, [scenario], { encoding: 'utf8' });
}
const lines = (s) => s.split('\n').filter(Boolean);
const close = (got, want, what) =>
  assert.ok(Math.abs(got - want) <= 1e-12 + Math.abs(want) * 1e-9, `${what}: got ${got}, want ${want}`);

// Totals of the four records (init, A cold, B without report, C split in two lines).
const FOUR = {
  requests: 161, cacheHits: 147, cacheMisses: 3, staleServed: 2, singleFlightWaits: 8,
  upstreamCalls: 6, secretsManagerCalls: 3, parameterStoreCalls: 3, upstreamErrors: 3,
  upstreamThrottles: 1, invocations: 3, initRecords: 1, coldStarts: 1, cacheRefreshes: 1,
  // Hits and waits, less the call of the one background refresh a hit started.
  callsAvoided: 154,
};

function assertFour(r) {
  for (const [k, v] of Object.entries(FOUR)) assert.equal(r[k], v, k);
  assert.equal(r.latencyMs.fetch.n, 160);
  assert.equal(r.latencyMs.upstream.n, 6);
  assert.equal(r.hitRatio, 147 / 152);
  assert.equal(r.billedMsTotal, 321);
}

test('invocation mode: exact totals; per-key, split and init lines counted once', () => {
  const out = sample('invocation');
  const r = report(summarize(lines(out)));
  assertFour(r);
  assert.deepEqual(r.lines, { read: 13, perKey: 8, continuation: 1, duplicates: 0, other: 0,
    bytes: Buffer.byteLength(out) });
  assert.equal(r.latencyMs.extensionOverhead.n, 2); // B had no report
  assert.equal(r.extensionOverheadMsTotal, 1.5); // mean 0.5 ms charged to all 3 invocations
  assert.ok(r.notes.some((n) => n.includes('2 of 3 invocations')));
  assert.equal(r.maxMemoryUsedMb, 90);
  assert.equal(r.assumptions.memoryMb, 512); // memorySizeMB from the lines
  assert.equal(r.assumptions.hitMs, 0.35); // median of B's four all-hit fetches
  // An avoided call is a warm-connection call: C's two (120, 80), not init's or cold A's.
  assert.equal(r.assumptions.avoidedCallMs, 100);
  assert.match(r.assumptions.avoidedCallSource, /^warm connection: median UpstreamLatency of 2 calls/);
  assert.match(r.assumptions.smShareSource, /per-key/);
  close(r.assumptions.smShare, 74 / 147, 'Secrets Manager share');
  assert.equal(r.customMetrics, 31); // 17 names on the main line + 7 per key x 2 keys
  assert.equal(r.customMetricHours, 61);
  assert.equal(r.window.firstMs, 1785265200000);
  assert.equal(r.window.lastMs, 1785265200000 + 2 * 3600000 + 5000);
  assert.ok(!r.notes.some((n) => n.includes('shorter than an hour')));
  // The first hour alone (init, A, B: 61 s) pays a full hour of metrics, and says so.
  const early = report(summarize(lines(out).filter((l) => !l.includes('"req-c"'))));
  assert.equal(early.customMetricHours, 31);
  // No warm invocation among them: the fastest of the four calls (all on new connections).
  assert.equal(early.assumptions.avoidedCallMs, 10);
  assert.match(early.assumptions.avoidedCallSource, /^no call in a warm invocation: the fastest of 4 calls/);
  assert.ok(early.notes.some((n) => n.includes('shorter than an hour')));
});

test('a continuation line adds values, never counts', () => {
  const all = lines(sample('invocation'));
  const firstOnly = all.filter((l) => !l.includes('"emfPart"'));
  assert.equal(all.length - firstOnly.length, 1);
  const a = report(summarize(all));
  const b = report(summarize(firstOnly));
  for (const k of Object.keys(FOUR)) assert.equal(a[k], b[k], k);
  assert.equal(a.latencyMs.fetch.n - b.latencyMs.fetch.n, 50);
});

test('per-key lines never add to the totals', () => {
  const all = lines(sample('invocation'));
  const main = all.filter((l) => !l.includes('"Key":'));
  const r = report(summarize(main));
  assertFour(r);
  // Without them the split comes from the upstream call mix: 3 of 6 calls.
  assert.match(r.assumptions.smShareSource, /upstream call mix/);
  assert.equal(r.assumptions.smShare, 0.5);
});

test('aggregate mode gives the same totals as invocation mode', () => {
  const out = sample('aggregate');
  const r = report(summarize(lines(out)));
  assertFour(r);
  assert.equal(r.lines.read, 2);
  assert.equal(r.lines.continuation, 1);
  assert.equal(r.window.firstMs, 1785265200000); // intervalStartMs, not the flush time
  // One line cannot tell warm calls from cold ones: the median of all six, and it says so.
  assert.equal(r.assumptions.avoidedCallMs, 26.5);
  assert.match(r.assumptions.avoidedCallSource, /aggregate lines do not tell/);
  // The aggregate line carries no memorySizeMB: the default is used and said so.
  assert.equal(r.assumptions.memoryMb, 128);
  assert.match(r.assumptions.memorySource, /--memory-mb/);
});

test('aggregate past 500 values: Lambda totals scale the sample to every invocation', () => {
  const r = report(summarize(lines(sample('sampled'))));
  assert.equal(r.invocations, 700);
  assert.equal(r.cacheHits, 700);
  assert.equal(r.coldStarts, 1);
  assert.equal(r.latencyMs.billedDuration.n, 500);
  assert.equal(r.billedMsTotal, 7000); // 700 x 10 ms, not the 500 kept values
  assert.equal(r.extensionOverheadMsTotal, 350); // 700 x 0.5 ms
  assert.ok(r.notes.some((n) => n.includes('sampled 1000 values out')));
});

test('cost model follows its stated formula with every input given', () => {
  const out = sample('invocation');
  const o = parseArgs(['--memory-mb', '1024', '--arch', 'arm64', '--ssm-throughput', 'high',
    '--avoided-call-ms', '25', '--hit-ms', '0.5']);
  const r = report(summarize(lines(out)), o);
  const gbs = 0.0000133334;
  const avoidedSm = 74 + (8 - 1) * (74 / 147); // waits less the one refresh, split by share
  const avoidedSsm = 154 - avoidedSm;
  close(r.usd.savedSecretsManager, avoidedSm * 0.05 / 10000, 'saved_sm');
  close(r.usd.savedParameterStore, avoidedSsm * 0.05 / 10000, 'saved_ssm');
  close(r.usd.savedDuration, 154 * 0.0245 * 1 * gbs, 'saved_dur');
  close(r.usd.costEmfIngestion, Buffer.byteLength(out) / 1e9 * 0.5, 'cost_emf ingestion');
  close(r.usd.costCustomMetrics, 61 * 0.3 / 730, 'cost_emf metrics');
  close(r.usd.costExtension, 0.0015 * 1 * gbs, 'cost_ext');
  close(r.usd.net, r.usd.savedSecretsManager + r.usd.savedParameterStore + r.usd.savedDuration -
    r.usd.costEmfIngestion - r.usd.costCustomMetrics - r.usd.costExtension, 'net');
  assert.equal(r.assumptions.prices.lambdaPerGbSecond, gbs);
  assert.deepEqual(r.assumptions.flagsGiven.sort(),
    ['arch', 'avoided-call-ms', 'hit-ms', 'memory-mb', 'ssm-throughput']);
});

test('standard SSM throughput: Parameter Store calls save nothing', () => {
  const r = report(summarize(lines(sample('invocation'))), parseArgs([]));
  assert.equal(r.usd.savedParameterStore, 0);
  assert.equal(r.assumptions.prices.parameterStorePer10k, 0);
  assert.equal(r.assumptions.prices.lambdaPerGbSecond, 0.0000166667);
  // Default duration inputs: a warm upstream call 100 ms, a hit 0.35 ms, 512 MB.
  close(r.usd.savedDuration, 154 * ((100 - 0.35) / 1000) * 0.5 * 0.0000166667, 'saved_dur');
});

test('monthly projection scales per-invocation figures, charges metrics and dashboards per month', () => {
  const t = summarize(lines(sample('invocation')));
  const w = report(t, parseArgs([]));
  const r = report(t, parseArgs(['--invocations-per-month', '3000', '--dashboards', '2']));
  const m = r.monthly;
  assert.equal(m.scale, 1000);
  assert.equal(m.callsAvoided, 154000);
  close(m.savedSecretsManager, w.usd.savedSecretsManager * 1000, 'monthly saved_sm');
  close(m.savedDuration, w.usd.savedDuration * 1000, 'monthly saved_dur');
  close(m.costEmfIngestion, w.usd.costEmfIngestion * 1000, 'monthly ingestion');
  close(m.costExtension, w.usd.costExtension * 1000, 'monthly ext');
  close(m.costCustomMetrics, 31 * 0.3, 'monthly metrics');
  assert.equal(m.costDashboards, 6);
  close(m.net, m.savedSecretsManager + m.savedParameterStore + m.savedDuration - m.costEmfIngestion -
    m.costCustomMetrics - m.costDashboards - m.costExtension, 'monthly net');
});

test('noise, prefixes, duplicates and other namespaces are not counted', () => {
  const all = lines(sample('invocation'));
  const other = all[0].replace('"Namespace":"Stash"', '"Namespace":"Other"');
  const mixed = ['START RequestId: x Version: $LATEST', '[stash] INFO started', '{not json',
    `2026-07-28T19:00:00.000Z\t${all[0]}`, ...all.slice(1), ...all, other, ''];
  const r = report(summarize(mixed));
  assertFour(r);
  assert.equal(r.lines.duplicates, 13);
  assert.equal(r.lines.other, 4);
});

test('several functions: summed with a note, or one picked with --function', () => {
  const all = lines(sample('invocation'));
  const other = all.map((l) => l.replace('"FunctionName":"orders-api"', '"FunctionName":"billing"'));
  const both = report(summarize([...all, ...other]));
  assert.equal(both.cacheHits, 2 * 147);
  assert.equal(both.invocations, 6);
  assert.deepEqual(both.functions, ['orders-api', 'billing']);
  assert.ok(both.notes.some((n) => n.includes('2 functions')));
  const one = report(summarize([...all, ...other], 'Stash', 'billing'), parseArgs(['--function', 'billing']));
  assertFour(one);
  assert.deepEqual(one.functions, ['billing']);
  assert.equal(one.lines.other, 13);
  assert.ok(!one.notes.some((n) => n.includes('functions summed')));
});

test('percentile is nearest-rank', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile([3], 99), 3);
  assert.equal(percentile([], 50), null);
});

test('text and markdown outputs carry the figures and every assumption', () => {
  const r = report(summarize(lines(sample('invocation'))),
    parseArgs(['--invocations-per-month', '10000000']));
  const text = renderText(r);
  const md = renderMarkdown(r);
  for (const s of [text, md]) {
    assert.match(s, /147 \/ 3 \/ 2/);
    assert.match(s, /background refreshes[^\n]*\b1\b/);
    assert.match(s, /512 MB/);
    assert.match(s, /0\.05 USD \/ 10,000 calls/);
    assert.match(s, /warm connection: median UpstreamLatency of 2 calls/);
    assert.match(s, /10000000/);
  }
  assert.match(md, /^### stash cache report/);
  assert.match(md, /\| net saved \| .* \| .* \|/);
});

test('CLI: files and stdin, --json, bad flags, empty input', () => {
  const out = sample('invocation');
  const run = (args, input) => spawnSync(process.execPath, [REPORT, ...args], { input, encoding: 'utf8' });
  const j = run(['--json'], out);
  assert.equal(j.status, 0, j.stderr);
  assert.equal(JSON.parse(j.stdout).cacheHits, 147);
  const md = run(['--markdown', '--memory-mb=1024'], out);
  assert.equal(md.status, 0);
  assert.match(md.stdout, /\| memory \| 1024 MB \| given/);
  const bad = run(['--arch', 'sparc'], out);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--arch/);
  const neg = run(['--memory-mb', '-5'], out);
  assert.equal(neg.status, 2);
  const empty = run([], 'hello\n');
  assert.equal(empty.status, 1);
  assert.match(empty.stderr, /no EMF line/);
  const noinv = run(['--invocations-per-month', '5'], lines(out)[0]); // the init record only
  assert.equal(noinv.status, 2);
  assert.match(noinv.stderr, /at least one invocation/);
});
