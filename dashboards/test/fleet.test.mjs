// stash-report on a small fleet written out by hand below (two functions, three one-minute
// buckets), so byFunction, series and both baselines can be checked against figures worked out
// on paper; and the input forms the report accepts (AWS CLI JSON, gzip, pages one after another).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { summarize, report, parseArgs, inputLines, bucketFor, renderText, renderMarkdown } from '../stash-report.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD = path.resolve(ROOT, process.env.BUILD ?? 'build');
const REPORT = path.join(ROOT, 'dashboards', 'stash-report.mjs');
const T0 = 1785265200000; // an hour boundary (UTC)
const close = (got, want, what) =>
  assert.ok(Math.abs(got - want) <= 1e-15 + Math.abs(want) * 1e-9, `${what}: got ${got}, want ${want}`);

// A main line in the writer's layout (telemetry/emf.h): 8 metrics, +ColdStart and
// ExtensionOverhead on invocations.
function line(fn, ms, { phase = 'invoke', cold = false, req = '', hits = 0, misses = 0, stale = 0,
  waits = 0, sm = 0, ssm = 0, fetch = [], up = [], mem = 0 }) {
  const names = ['CacheHits', 'CacheMisses', 'CacheStaleServed', 'UpstreamCalls', 'SecretsManagerCalls',
    'ParameterStoreCalls', 'FetchLatency', 'UpstreamLatency'];
  if (phase === 'invoke') names.push('ColdStart', 'ExtensionOverhead');
  const doc = {
    _aws: { Timestamp: ms, CloudWatchMetrics: [{ Namespace: 'Stash', Dimensions: [['FunctionName']],
      Metrics: names.map((Name) => ({ Name, Unit: 'Count' })) }] },
    FunctionName: fn, CacheHits: hits, CacheMisses: misses, CacheStaleServed: stale,
    UpstreamCalls: sm + ssm, SecretsManagerCalls: sm, ParameterStoreCalls: ssm,
    FetchLatency: fetch, UpstreamLatency: up,
  };
  if (phase === 'invoke') {
    Object.assign(doc, { ColdStart: cold ? 1 : 0, ExtensionOverhead: 1, requestId: req });
  }
  Object.assign(doc, { functionVersion: '1', phase, coldStart: cold, requests: hits + misses + stale + waits,
    singleFlightWaits: waits, bypass: 0 });
  if (mem) doc.memorySizeMB = mem;
  return JSON.stringify(doc);
}

// alpha (1024 MB, log stream env-a) and beta (256 MB, env-b):
//   minute 0: alpha init (2 misses: 1 SM + 1 SSM call), alpha a1 cold (3 hits, 1 miss, 1 SM call),
//             beta b1 cold (2 misses, 2 SSM calls)
//   minute 1: alpha a2 (5 hits)
//   minute 2: alpha a3 (4 hits, 1 miss with 1 SSM call, 2 single-flight waits), beta b2 (6 hits)
const FLEET = [
  ['env-a', line('alpha', T0, { phase: 'init', misses: 2, sm: 1, ssm: 1, fetch: [30, 20], up: [28, 18] })],
  ['env-a', line('alpha', T0 + 10000, { cold: true, req: 'a1', hits: 3, misses: 1, sm: 1, fetch: [0.5, 0.5, 0.5, 40], up: [12], mem: 1024 })],
  ['env-b', line('beta', T0 + 20000, { cold: true, req: 'b1', misses: 2, ssm: 2, fetch: [35, 55], up: [30, 50], mem: 256 })],
  ['env-a', line('alpha', T0 + 70000, { req: 'a2', hits: 5, fetch: [0.4, 0.4, 0.4, 0.4, 0.4], mem: 1024 })],
  ['env-a', line('alpha', T0 + 130000, { req: 'a3', hits: 4, misses: 1, waits: 2, ssm: 1, fetch: [0.4, 0.4, 0.4, 0.4, 22, 22, 22], up: [20], mem: 1024 })],
  ['env-b', line('beta', T0 + 150000, { req: 'b2', hits: 6, fetch: [0.3, 0.3, 0.3, 0.3, 0.3, 0.3], mem: 256 })],
];
const TEXT = FLEET.map(([, l]) => l);
const bytesOf = (fn) => TEXT.filter((l) => l.includes(`"FunctionName":"${fn}"`))
  .reduce((a, l) => a + Buffer.byteLength(l) + 1, 0);
const GIVEN = ['--avoided-call-ms', '20', '--hit-ms', '0.5', '--sm-share', '0.5'];
const GBS = 0.0000166667;

// Each function's USD, per-request baseline, worked out from the figures above.
function expectedUsd(fn) {
  const f = fn === 'alpha'
    ? { avoided: 12 + 2, gb: 1, invocations: 3 }
    : { avoided: 6, gb: 0.25, invocations: 2 };
  const u = {
    savedSecretsManager: f.avoided * 0.5 * 0.05 / 10000,
    savedParameterStore: 0, // standard throughput
    savedDuration: f.avoided * (19.5 / 1000) * f.gb * GBS,
    costEmfIngestion: bytesOf(fn) / 1e9 * 0.5,
    costCustomMetrics: 10 * 0.3 / 730, // 10 metric names, one hour with data
    costExtension: f.invocations * (1 / 1000) * f.gb * GBS, // 1 ms each
  };
  u.net = u.savedSecretsManager + u.savedParameterStore + u.savedDuration - u.costEmfIngestion -
    u.costCustomMetrics - u.costExtension;
  return u;
}

test('byFunction matches the hand-computed fleet, most calls avoided first', () => {
  const r = report(summarize(TEXT), parseArgs(GIVEN));
  assert.deepEqual(r.byFunction.map((f) => f.functionName), ['alpha', 'beta']);
  const pick = (f) => ({ functionName: f.functionName, invocations: f.invocations, cacheHits: f.cacheHits,
    cacheMisses: f.cacheMisses, hitRatio: f.hitRatio, upstreamCalls: f.upstreamCalls, callsAvoided: f.callsAvoided });
  assert.deepEqual(r.byFunction.map(pick), [
    { functionName: 'alpha', invocations: 3, cacheHits: 12, cacheMisses: 4, hitRatio: 12 / 16, upstreamCalls: 4, callsAvoided: 14 },
    { functionName: 'beta', invocations: 2, cacheHits: 6, cacheMisses: 2, hitRatio: 6 / 8, upstreamCalls: 2, callsAvoided: 6 },
  ]);
  for (const f of r.byFunction) {
    const want = expectedUsd(f.functionName);
    for (const [k, v] of Object.entries(want)) close(f.usd[k], v, `${f.functionName} usd.${k}`);
  }
  assert.equal(r.byFunction[0].assumptions.memoryMb, 1024);
  assert.equal(r.byFunction[1].assumptions.memoryMb, 256);
  // The totals are the sums of the functions, each costed with its own memory.
  close(r.usd.net, expectedUsd('alpha').net + expectedUsd('beta').net, 'total net');
  assert.equal(r.callsAvoided, 20);
  assert.equal(r.cacheHits, 18);
  assert.match(r.assumptions.memorySource, /alpha 1024 MB, beta 256 MB/);
});

test('series: one-minute buckets of the hand-computed fleet, overall and per function', () => {
  const r = report(summarize(TEXT), parseArgs(GIVEN));
  assert.equal(r.series.bucketMs, 60000);
  const b = (i, h, m, u) => ({ startMs: T0 + i * 60000, cacheHits: h, cacheMisses: m, upstreamCalls: u,
    cacheRefreshes: 0 });
  assert.deepEqual(r.series.overall, [b(0, 3, 5, 5), b(1, 5, 0, 0), b(2, 10, 1, 1)]);
  assert.deepEqual(r.series.byFunction, [
    { functionName: 'alpha', buckets: [b(0, 3, 3, 3), b(1, 5, 0, 0), b(2, 4, 1, 1)] },
    { functionName: 'beta', buckets: [b(0, 0, 2, 2), b(1, 0, 0, 0), b(2, 6, 0, 0)] },
  ]);
  // The JSON output carries the same, and keeps the keys it had.
  const j = spawnSync(process.execPath, [REPORT, '--json', ...GIVEN], { input: TEXT.join('\n'), encoding: 'utf8' });
  assert.equal(j.status, 0, j.stderr);
  const doc = JSON.parse(j.stdout);
  assert.deepEqual(doc.series, JSON.parse(JSON.stringify(r.series)));
  assert.deepEqual(doc.byFunction, JSON.parse(JSON.stringify(r.byFunction)));
  for (const k of ['namespace', 'functions', 'window', 'lines', 'invocations', 'initRecords', 'coldStarts',
    'requests', 'cacheHits', 'cacheMisses', 'staleServed', 'singleFlightWaits', 'bypass', 'hitRatio',
    'upstreamCalls', 'secretsManagerCalls', 'parameterStoreCalls', 'upstreamErrors', 'upstreamThrottles',
    'callsAvoided', 'callsAvoidedSecretsManager', 'callsAvoidedParameterStore', 'latencyMs',
    'maxMemoryUsedMb', 'billedMsTotal', 'extensionOverheadMsTotal', 'customMetrics', 'customMetricHours',
    'usd', 'monthly', 'assumptions', 'notes', 'baseline']) {
    assert.ok(k in doc, `--json lost ${k}`);
  }
});

test('time buckets follow the span: a minute up to a day', () => {
  assert.equal(bucketFor(0).ms, 60000);
  assert.equal(bucketFor(59 * 60000).ms, 60000);
  assert.equal(bucketFor(3 * 3600000).ms, 300000);
  assert.equal(bucketFor(12 * 3600000).ms, 900000);
  assert.equal(bucketFor(2 * 86400000).ms, 3600000);
  assert.equal(bucketFor(10 * 86400000).ms, 6 * 3600000);
  assert.equal(bucketFor(30 * 86400000).ms, 86400000);
  assert.equal(bucketFor(400 * 86400000).ms, 86400000);
});

test('per-environment baseline: fills estimated from cold records, or exact from log streams and per-key lines', () => {
  const o = parseArgs([...GIVEN, '--baseline', 'per-environment']);
  const r = report(summarize(TEXT), o);
  assert.equal(r.baseline, 'per-environment');
  // alpha: a global fetches the 3 values its init and cold start missed; stash fetched 4 (one
  // refresh in a3).  beta: 2 and 2.
  const env = r.baselines['per-environment'];
  assert.equal(env.globalFetches, 5);
  assert.equal(env.stashFetches, 6);
  assert.equal(r.callsAvoided, -1);
  assert.deepEqual(r.byFunction.map((f) => [f.functionName, f.callsAvoided]), [['beta', 0], ['alpha', -1]]);
  assert.match(env.fillsSource, /^estimated/);
  // Duration: alpha's refresh costs 20 ms, and every hit or wait 0.5 ms that a global read does not.
  const alpha = r.byFunction.find((f) => f.functionName === 'alpha');
  close(alpha.usd.savedDuration, ((-1 * 20 - 14 * 0.5) / 1000) * 1 * GBS, 'alpha per-environment duration');
  close(alpha.usd.savedSecretsManager, -0.5 * 0.05 / 10000, 'alpha per-environment SM');
  // Both baselines are in every output, the chosen one named.
  const pr = report(summarize(TEXT), parseArgs(GIVEN));
  close(r.baselines['per-request'].usd.net, pr.usd.net, 'per-request net is the same either way');
  for (const s of [renderText(r), renderMarkdown(r)]) {
    assert.match(s, /per-environment \(chosen\)/);
    assert.match(s, /per-request/);
    assert.match(s, /\| alpha \||alpha\s+3\s+12\s+4\s+75\.0 %/);
  }

  // Exact: the writer's own lines with per-key lines, as filter-log-events JSON from one stream.
  const out = execFileSync(path.join(BUILD, 'tools', 'emf_sample'), ['invocation'], { encoding: 'utf8' });
  const events = out.split('\n').filter(Boolean).map((message, i) => ({ logStreamName: '2026/07/28/[7]abc',
    timestamp: T0 + i, message, ingestionTime: T0 + i, eventId: `${i}` }));
  const exact = report(summarize(inputLines(Buffer.from(JSON.stringify({ events, searchedLogStreams: [] })))), o);
  const e = exact.baselines['per-environment'];
  assert.match(e.fillsSource, /^exact: 2 keys used in 1 environments/);
  assert.equal(e.globalFetches, 2); // db/password and /app/flag
  // 3 misses + 2 stale-served refresh attempts + 1 background refresh (refresh-ahead)
  assert.equal(e.stashFetches, 6);
  assert.equal(exact.callsAvoided, -4);
});

test('input: filter-log-events and get-log-events JSON, pages one after another, gzip, plain lines', () => {
  const want = report(summarize(TEXT), parseArgs(GIVEN));
  const noise = 'START RequestId: a1 Version: $LATEST';
  const filterPage = (rows) => JSON.stringify({ events: rows.map(([s, m], i) => ({ logStreamName: s, timestamp: T0 + i,
    message: `${m}\n`, ingestionTime: T0 + i, eventId: `e${i}` })), searchedLogStreams: [] }, null, 2);
  const getPage = JSON.stringify({ events: [noise, ...TEXT].map((m, i) => ({ timestamp: T0 + i, message: m,
    ingestionTime: T0 + i })), nextForwardToken: 'f/1', nextBackwardToken: 'b/1' });
  const two = `${filterPage(FLEET.slice(0, 3))}\n${filterPage(FLEET.slice(3))}\n`;
  const messages = JSON.stringify(TEXT);
  const plain = [noise, ...TEXT.map((l) => `2026-07-28T19:00:00.000Z\t${l}`), 'END RequestId: a1'].join('\n');
  const dir = mkdtempSync(path.join(tmpdir(), 'stash-report-'));
  const cases = { 'two-pages.json': two, 'get.json': getPage, 'messages.json': messages, 'plain.log': plain };
  for (const [name, body] of Object.entries(cases)) {
    writeFileSync(path.join(dir, name), body);
    writeFileSync(path.join(dir, `${name}.gz`), gzipSync(body));
  }
  for (const name of Object.keys(cases)) {
    for (const f of [name, `${name}.gz`]) {
      const j = spawnSync(process.execPath, [REPORT, '--json', ...GIVEN, path.join(dir, f)], { encoding: 'utf8' });
      assert.equal(j.status, 0, `${f}: ${j.stderr}`);
      const got = JSON.parse(j.stdout);
      assert.deepEqual(got.byFunction, JSON.parse(JSON.stringify(want.byFunction)), f);
      assert.deepEqual(got.series, JSON.parse(JSON.stringify(want.series)), f);
      assert.equal(got.lines.read, 6, f);
    }
  }
  // Duplicates counted once, other lines counted: the same events given twice, with noise.
  const j = spawnSync(process.execPath, [REPORT, '--json', ...GIVEN, path.join(dir, 'get.json'),
    path.join(dir, 'plain.log.gz'), path.join(dir, 'two-pages.json')], { encoding: 'utf8' });
  assert.equal(j.status, 0, j.stderr);
  const got = JSON.parse(j.stdout);
  assert.equal(got.cacheHits, 18);
  assert.equal(got.lines.duplicates, 12);
  assert.equal(got.lines.other, 3); // START twice, END once
  // A JSON page that is not the CLI's is read as lines (and skipped).
  assert.deepEqual(inputLines(Buffer.from('{"nextToken":"x"}')).map((l) => l.text), ['{"nextToken":"x"}']);
  // A broken gzip is a clear error.
  writeFileSync(path.join(dir, 'bad.gz'), Buffer.from([0x1f, 0x8b, 1, 2, 3]));
  const bad = spawnSync(process.execPath, [REPORT, path.join(dir, 'bad.gz')], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^stash-report: /);
  const flag = spawnSync(process.execPath, [REPORT, '--baseline', 'per-month'], { input: TEXT.join('\n'), encoding: 'utf8' });
  assert.equal(flag.status, 2);
  assert.match(flag.stderr, /--baseline/);
});

test('series: background refreshes are counted in the bucket and function they were started in', () => {
  // alpha's a2 (minute 1) started 2 refreshes, beta's b2 (minute 2) 1: each refresh made its call.
  const withRefreshes = (l, n) => {
    const d = JSON.parse(l);
    d._aws.CloudWatchMetrics[0].Metrics.push({ Name: 'CacheRefreshes', Unit: 'Count' });
    d.CacheRefreshes = n;
    d.UpstreamCalls += n;
    d.SecretsManagerCalls += n;
    return JSON.stringify(d);
  };
  const text = TEXT.map((l, i) => (i === 3 ? withRefreshes(l, 2) : i === 5 ? withRefreshes(l, 1) : l));
  const r = report(summarize(text), parseArgs(GIVEN));
  assert.equal(r.cacheRefreshes, 3);
  assert.deepEqual(r.series.overall.map((x) => x.cacheRefreshes), [0, 2, 1]);
  assert.deepEqual(r.series.byFunction.map((f) => [f.functionName, f.buckets.map((x) => x.cacheRefreshes)]),
    [['alpha', [0, 2, 0]], ['beta', [0, 0, 1]]]);
  const j = spawnSync(process.execPath, [REPORT, '--json', ...GIVEN], { input: text.join('\n'), encoding: 'utf8' });
  assert.equal(j.status, 0, j.stderr);
  assert.deepEqual(JSON.parse(j.stdout).series.overall.map((x) => x.cacheRefreshes), [0, 2, 1]);
});
