#!/usr/bin/env node
// stash-report: reads stash's EMF lines (from files or stdin; other lines are skipped) and prints
// what the cache did and what it saved, with the price list it used, so the figure can be checked.
//
//   node dashboards/stash-report.mjs [--json] [--memory-mb 512] [--arch x86_64|arm64]
//        [--ssm-throughput standard|high] [--namespace Stash] [FILE...]
//
// Without a cache every local request would have been one upstream call, so calls avoided =
// requests served - upstream calls made.  Time saved per avoided call = median upstream latency -
// median hit latency, billed at the function's memory size.  Prices: us-east-1 list prices
// (shared/reference/emf-cost-wire.md §4.1); pass flags where yours differ.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

const PRICES = {
  secretsManagerPerCall: 0.05 / 10000,
  ssmPerCallHigh: 0.05 / 10000,
  ssmPerCallStandard: 0,
  lambdaPerGbSecond: { x86_64: 0.0000166667, arm64: 0.0000133334 },
  logsPerGb: 0.5,
};

function parseArgs(argv) {
  const o = { json: false, memoryMb: 128, arch: 'x86_64', ssm: 'standard', namespace: 'Stash', files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--json') o.json = true;
    else if (a === '--memory-mb') o.memoryMb = Number(next());
    else if (a === '--arch') o.arch = next();
    else if (a === '--ssm-throughput') o.ssm = next();
    else if (a === '--namespace') o.namespace = next();
    else if (a === '--help' || a === '-h') o.help = true;
    else o.files.push(a);
  }
  if (!(o.memoryMb > 0)) throw new Error('--memory-mb must be a positive number');
  if (!(o.arch in PRICES.lambdaPerGbSecond)) throw new Error('--arch is x86_64 or arm64');
  if (o.ssm !== 'standard' && o.ssm !== 'high') throw new Error('--ssm-throughput is standard or high');
  return o;
}

function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function percentile(xs, p) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

// Expands an EMF metric value: a number, an array, or (aggregate mode) Values with Counts.
function values(v, counts) {
  if (typeof v === 'number') return [v];
  if (!Array.isArray(v)) return [];
  if (Array.isArray(counts) && counts.length === v.length) {
    return v.flatMap((x, i) => Array(Math.min(counts[i], 100000)).fill(x));
  }
  return v.filter((x) => typeof x === 'number');
}

export function summarize(lines, namespace = 'Stash') {
  const t = {
    lines: 0, bytes: 0, invocations: new Set(), coldStarts: 0,
    CacheHits: 0, CacheMisses: 0, CacheStaleServed: 0, UpstreamCalls: 0,
    SecretsManagerCalls: 0, ParameterStoreCalls: 0, UpstreamErrors: 0, UpstreamThrottles: 0,
    FetchLatency: [], UpstreamLatency: [], BilledDuration: [], ExtensionOverhead: [],
  };
  const counts = ['CacheHits', 'CacheMisses', 'CacheStaleServed', 'UpstreamCalls', 'SecretsManagerCalls',
    'ParameterStoreCalls', 'UpstreamErrors', 'UpstreamThrottles'];
  for (const line of lines) {
    const s = line.trim();
    if (!s.startsWith('{')) continue;
    let doc;
    try { doc = JSON.parse(s); } catch { continue; }
    const dirs = doc?._aws?.CloudWatchMetrics;
    if (!Array.isArray(dirs) || !dirs.some((d) => d.Namespace === namespace)) continue;
    t.lines++;
    t.bytes += Buffer.byteLength(s) + 1;
    if (doc.requestId) t.invocations.add(doc.requestId);
    if (doc.ColdStart === 1 && !Array.isArray(doc.ColdStart)) t.coldStarts++;
    for (const k of counts) for (const x of values(doc[k])) t[k] += x;
    for (const k of ['FetchLatency', 'UpstreamLatency', 'BilledDuration', 'ExtensionOverhead']) {
      t[k].push(...values(doc[k], doc[`${k}Counts`]));
    }
  }
  return t;
}

export function report(t, o) {
  const requests = t.FetchLatency.length || t.CacheHits + t.CacheMisses + t.CacheStaleServed;
  const avoided = Math.max(0, requests - t.UpstreamCalls);
  const smShare = t.UpstreamCalls ? t.SecretsManagerCalls / t.UpstreamCalls : 0.5;
  const avoidedSm = avoided * smShare;
  const avoidedSsm = avoided - avoidedSm;
  const hitMs = median(t.FetchLatency.length ? t.FetchLatency : [0]);
  const upMs = median(t.UpstreamLatency);
  const savedMsPerCall = upMs !== null ? Math.max(0, upMs - hitMs) : 0;
  const gb = o.memoryMb / 1024;
  const perGbS = PRICES.lambdaPerGbSecond[o.arch];
  const ssmPrice = o.ssm === 'high' ? PRICES.ssmPerCallHigh : PRICES.ssmPerCallStandard;
  const saved = {
    secretsManager: avoidedSm * PRICES.secretsManagerPerCall,
    parameterStore: avoidedSsm * ssmPrice,
    duration: (avoided * savedMsPerCall / 1000) * gb * perGbS,
  };
  const cost = { emfIngestion: (t.bytes / 1e9) * PRICES.logsPerGb };
  const net = saved.secretsManager + saved.parameterStore + saved.duration - cost.emfIngestion;
  return {
    emfLines: t.lines, invocations: t.invocations.size, coldStarts: t.coldStarts,
    requests, cacheHits: t.CacheHits, cacheMisses: t.CacheMisses, staleServed: t.CacheStaleServed,
    hitRatio: requests ? t.CacheHits / requests : null,
    upstreamCalls: t.UpstreamCalls, secretsManagerCalls: t.SecretsManagerCalls,
    parameterStoreCalls: t.ParameterStoreCalls, upstreamErrors: t.UpstreamErrors,
    upstreamThrottles: t.UpstreamThrottles, callsAvoided: avoided,
    fetchLatencyMs: { p50: median(t.FetchLatency), p99: percentile(t.FetchLatency, 99) },
    upstreamLatencyMs: { p50: upMs, p99: percentile(t.UpstreamLatency, 99) },
    extensionOverheadMs: { p50: median(t.ExtensionOverhead) },
    savedUsd: saved, costUsd: cost, netUsd: net,
    assumptions: { memoryMb: o.memoryMb, arch: o.arch, ssmThroughput: o.ssm, prices: PRICES },
  };
}

function fmt(x, d = 3) {
  return x === null || x === undefined || Number.isNaN(x) ? '-' : Number(x).toFixed(d);
}

function printText(r) {
  const usd = (x) => `$${x.toFixed(6)}`;
  console.log(`EMF lines read         ${r.emfLines} (${r.invocations} invocations, ${r.coldStarts} cold starts)`);
  console.log(`local requests         ${r.requests}`);
  console.log(`cache hits / misses    ${r.cacheHits} / ${r.cacheMisses}   stale served ${r.staleServed}   hit ratio ${r.hitRatio === null ? '-' : (100 * r.hitRatio).toFixed(1) + ' %'}`);
  console.log(`upstream calls         ${r.upstreamCalls} (Secrets Manager ${r.secretsManagerCalls}, Parameter Store ${r.parameterStoreCalls}; errors ${r.upstreamErrors}, throttles ${r.upstreamThrottles})`);
  console.log(`calls avoided          ${r.callsAvoided}`);
  console.log(`fetch latency          p50 ${fmt(r.fetchLatencyMs.p50)} ms   p99 ${fmt(r.fetchLatencyMs.p99)} ms`);
  console.log(`upstream latency       p50 ${fmt(r.upstreamLatencyMs.p50)} ms   p99 ${fmt(r.upstreamLatencyMs.p99)} ms`);
  console.log(`extension overhead     p50 ${fmt(r.extensionOverheadMs.p50)} ms`);
  console.log(`cost avoided           ${usd(r.savedUsd.secretsManager + r.savedUsd.parameterStore + r.savedUsd.duration)}` +
    ` (Secrets Manager ${usd(r.savedUsd.secretsManager)}, Parameter Store ${usd(r.savedUsd.parameterStore)}, billed duration ${usd(r.savedUsd.duration)})`);
  console.log(`cost of these metrics  ${usd(r.costUsd.emfIngestion)} log ingestion   net ${usd(r.netUsd)}`);
  console.log(`assumptions            ${r.assumptions.memoryMb} MB ${r.assumptions.arch}, SSM ${r.assumptions.ssmThroughput} throughput, us-east-1 list prices`);
}

async function readLines(files) {
  const out = [];
  const streams = files.length ? files.map((f) => createReadStream(f)) : [process.stdin];
  for (const s of streams) {
    for await (const line of createInterface({ input: s, crlfDelay: Infinity })) out.push(line);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`stash-report: ${e.message}`);
    process.exit(2);
  }
  if (o.help) {
    console.log('usage: stash-report [--json] [--memory-mb N] [--arch x86_64|arm64] [--ssm-throughput standard|high] [--namespace NS] [FILE...]');
    process.exit(0);
  }
  const r = report(summarize(await readLines(o.files), o.namespace), o);
  if (o.json) console.log(JSON.stringify(r, null, 2));
  else printText(r);
}
