#!/usr/bin/env node
// stash-report: reads stash's EMF lines (files or stdin; any other line is skipped) and prints what
// the cache did and what it saved, with every price and assumption it used, so a reader can check
// the figure or redo it with their own numbers.
//
//   node dashboards/stash-report.mjs [options] [FILE...]      (--help lists the options)
//
// What it reads (telemetry/emf.h): one line per invocation (invocation mode) or per interval
// (aggregate mode), the init record (phase "init": requests served before the first INVOKE), the
// continuation lines of a record split past 100 values (emfPart >= 2: array values only, never a
// count), and the per-key lines (dimension Key: counts already in the main line, read only for the
// Secrets Manager / Parameter Store split).  A line may carry a prefix before its JSON (a log
// export's timestamp); a line seen twice is counted once.
//
// Cost model (shared/reference/emf-cost-wire.md section 4.2), every input a flag:
//   calls avoided  = cache hits + single-flight waits (each would have been an upstream call)
//   saved_sm       = avoided Secrets Manager calls * price per call
//   saved_ssm      = avoided Parameter Store calls * price per call (0 on standard throughput)
//   saved_dur      = calls avoided * (avoided-call ms - hit ms) * memory GB * price per GB-s
//   cost_emf       = bytes of EMF lines * price per GB + custom metrics (prorated by hour) * price
//   cost_ext       = ExtensionOverhead ms * memory GB * price per GB-s
//   net            = saved_sm + saved_ssm + saved_dur - cost_emf - cost_ext
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

// us-east-1 list prices as of the reference notes (emf-cost-wire.md section 4.1).  Check them.
export const DEFAULTS = Object.freeze({
  namespace: 'Stash',
  arch: 'x86_64',
  ssmThroughput: 'standard',
  smPer10k: 0.05, // Secrets Manager, USD per 10,000 API calls
  ssmPer10k: 0.05, // Parameter Store higher throughput / advanced, USD per 10,000 interactions
  gbSecond: { x86_64: 0.0000166667, arm64: 0.0000133334 }, // Lambda duration, first tier
  logsPerGb: 0.5, // CloudWatch Logs ingestion, standard class, first tier
  metricMonth: 0.3, // custom metric per month, first 10,000
  dashboardMonth: 3.0, // per dashboard per month past the free tier
  dashboards: 0,
  hoursPerMonth: 730,
  memoryMbFallback: 128,
  ssmStandardTps: 40, // default Parameter Store throughput, shared by GetParameter(s)(ByPath)
});

const AGG_VALUES_MAX = 500; // EMF_AGG_VALUES_MAX in telemetry/emf.h
const COUNTS = ['CacheHits', 'CacheMisses', 'CacheStaleServed', 'UpstreamCalls',
  'SecretsManagerCalls', 'ParameterStoreCalls', 'UpstreamErrors', 'UpstreamThrottles', 'ColdStart'];
const SERIES = ['FetchLatency', 'UpstreamLatency', 'Duration', 'BilledDuration', 'InitDuration',
  'ExtensionOverhead', 'MaxMemoryUsed'];
const PROPS = ['requests', 'singleFlightWaits', 'bypass', 'invocations', 'initRecords',
  'valuesSampledOut', 'fetchLatencyDropped', 'upstreamLatencyDropped', 'keysDropped'];

const HELP = `usage: stash-report [options] [FILE...]   (no FILE: stdin)
  --json | --markdown            output format (default: text)
  --namespace NS                 EMF namespace to read (default ${DEFAULTS.namespace})
  --function NAME                only this FunctionName (default: every function in the input)
  --invocations-per-month N      also project the figures to N invocations a month
  --memory-mb N                  function memory (default: memorySizeMB from the lines, else ${DEFAULTS.memoryMbFallback})
  --arch x86_64|arm64            Lambda price per GB-s (default ${DEFAULTS.arch})
  --ssm-throughput standard|high|advanced
                                 Parameter Store calls are free on standard throughput (default)
  --avoided-call-ms N            time one avoided call would have taken (default: mean UpstreamLatency)
  --hit-ms N                     time a cache hit takes (default: median FetchLatency of all-hit invocations)
  --sm-share F                   share (0..1) of avoided calls that were Secrets Manager
                                 (default: from per-key lines, else the upstream call mix)
  --sm-price-per-10k USD         (default ${DEFAULTS.smPer10k})
  --ssm-price-per-10k USD        when not on standard throughput (default ${DEFAULTS.ssmPer10k})
  --gb-second-price USD          (default ${DEFAULTS.gbSecond.x86_64} x86_64, ${DEFAULTS.gbSecond.arm64} arm64)
  --logs-price-per-gb USD        EMF ingestion (default ${DEFAULTS.logsPerGb})
  --metric-price USD             per custom metric per month (default ${DEFAULTS.metricMonth})
  --dashboards N                 dashboards to charge in the projection (default ${DEFAULTS.dashboards})
  --dashboard-price USD          per dashboard per month (default ${DEFAULTS.dashboardMonth})`;

function num(name, v, { min = 0, max = Infinity, integer = false } = {}) {
  const x = Number(v);
  if (v === undefined || v === '' || !Number.isFinite(x) || x < min || x > max ||
      (integer && !Number.isInteger(x))) {
    throw new Error(`${name} needs a number${integer ? ' (integer)' : ''} in [${min}, ${max}], got '${v}'`);
  }
  return x;
}

export function parseArgs(argv) {
  const o = { format: 'text', namespace: DEFAULTS.namespace, files: [], given: {} };
  const flags = {
    '--namespace': (v) => { o.namespace = v; },
    '--function': (v) => { o.fn = v; },
    '--invocations-per-month': (v) => { o.invocationsPerMonth = num('--invocations-per-month', v, { min: 1 }); },
    '--memory-mb': (v) => { o.memoryMb = num('--memory-mb', v, { min: 1, max: 32768 }); },
    '--arch': (v) => {
      if (!(v in DEFAULTS.gbSecond)) throw new Error('--arch is x86_64 or arm64');
      o.arch = v;
    },
    '--ssm-throughput': (v) => {
      if (!['standard', 'high', 'advanced'].includes(v)) {
        throw new Error('--ssm-throughput is standard, high or advanced');
      }
      o.ssmThroughput = v;
    },
    '--avoided-call-ms': (v) => { o.avoidedCallMs = num('--avoided-call-ms', v); },
    '--hit-ms': (v) => { o.hitMs = num('--hit-ms', v); },
    '--sm-share': (v) => { o.smShare = num('--sm-share', v, { max: 1 }); },
    '--sm-price-per-10k': (v) => { o.smPer10k = num('--sm-price-per-10k', v); },
    '--ssm-price-per-10k': (v) => { o.ssmPer10k = num('--ssm-price-per-10k', v); },
    '--gb-second-price': (v) => { o.gbSecond = num('--gb-second-price', v); },
    '--logs-price-per-gb': (v) => { o.logsPerGb = num('--logs-price-per-gb', v); },
    '--metric-price': (v) => { o.metricMonth = num('--metric-price', v); },
    '--dashboards': (v) => { o.dashboards = num('--dashboards', v, { integer: true }); },
    '--dashboard-price': (v) => { o.dashboardMonth = num('--dashboard-price', v); },
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let inline;
    if (a.startsWith('--') && a.includes('=')) {
      inline = a.slice(a.indexOf('=') + 1);
      a = a.slice(0, a.indexOf('='));
    }
    if (a === '--json') o.format = 'json';
    else if (a === '--markdown') o.format = 'markdown';
    else if (a === '--help' || a === '-h') o.help = true;
    else if (a in flags) {
      if (inline === undefined && i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      flags[a](inline ?? argv[++i]);
      o.given[a.slice(2)] = true;
    } else if (a.startsWith('-') && a !== '-') throw new Error(`unknown option ${a} (--help)`);
    else o.files.push(a);
  }
  return o;
}

// The EMF document in a line, or null.  Lambda or a log export may put text before the JSON.
export function parseLine(raw) {
  const s = raw.trim();
  const at = s.startsWith('{') ? 0 : s.indexOf('{');
  if (at < 0) return null;
  const text = s.slice(at);
  let doc;
  try {
    doc = JSON.parse(text);
  } catch {
    return null;
  }
  if (!doc || typeof doc !== 'object' || !Array.isArray(doc?._aws?.CloudWatchMetrics)) return null;
  return { doc, text };
}

function values(v) {
  if (typeof v === 'number' && Number.isFinite(v)) return [v];
  if (Array.isArray(v)) return v.filter((x) => typeof x === 'number' && Number.isFinite(x));
  return [];
}

function sum(xs) {
  return xs.reduce((a, b) => a + b, 0);
}

function mean(xs) {
  return xs.length ? sum(xs) / xs.length : null;
}

// Nearest-rank percentile (what CloudWatch's pNN means for raw values).
export function percentile(xs, p) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function newRecord(phase) {
  const r = { phase, firstLines: 0, parts: 0 };
  for (const k of COUNTS) r[k] = 0;
  for (const k of PROPS) r[k] = 0;
  for (const k of SERIES) r[k] = [];
  return r;
}

// Reads lines into records (a record = its first line plus its continuation lines) and the line
// level facts the costs need (bytes, custom metrics and the hours each received data).
export function summarize(lines, namespace = DEFAULTS.namespace, fn = undefined) {
  const seen = new Set();
  const records = new Map();
  const t = {
    namespace, functions: new Map(), lines: 0, perKeyLines: 0, continuationLines: 0, duplicates: 0, otherLines: 0,
    bytes: 0, firstMs: null, lastMs: null, metricHours: new Map(), memorySizes: new Map(),
    perKey: { SecretsManager: 0, ParameterStore: 0, hits: 0 }, records: [],
  };
  for (const raw of lines) {
    const p = parseLine(raw);
    const dirs = p?.doc._aws.CloudWatchMetrics.filter((d) => d && d.Namespace === namespace);
    if (!p || !dirs.length || (fn !== undefined && p.doc.FunctionName !== fn)) {
      if (raw.trim()) t.otherLines++;
      continue;
    }
    if (seen.has(p.text)) {
      t.duplicates++;
      continue;
    }
    seen.add(p.text);
    const doc = p.doc;
    t.functions.set(doc.FunctionName, (t.functions.get(doc.FunctionName) ?? 0) + 1);
    const ts = Number(doc._aws.Timestamp);
    t.lines++;
    t.bytes += Buffer.byteLength(p.text) + 1; // the writer's "\n" is logged too
    if (Number.isFinite(ts)) {
      // An aggregate line is stamped at the end of its interval: the window starts at its start.
      const from = typeof doc.intervalStartMs === 'number' ? Math.min(ts, doc.intervalStartMs) : ts;
      t.firstMs = t.firstMs === null ? from : Math.min(t.firstMs, from);
      t.lastMs = t.lastMs === null ? ts : Math.max(t.lastMs, ts);
    }
    // Every (metric name, dimension values) pair is one custom metric, billed per hour with data.
    let perKey = false;
    for (const d of dirs) {
      for (const set of Array.isArray(d.Dimensions) ? d.Dimensions : []) {
        if (set.includes('Key')) perKey = true;
        const dims = set.map((k) => `${k}=${doc[k]}`).join(',');
        for (const m of Array.isArray(d.Metrics) ? d.Metrics : []) {
          const id = `${m.Name}{${dims}}`;
          if (!t.metricHours.has(id)) t.metricHours.set(id, new Set());
          if (Number.isFinite(ts)) t.metricHours.get(id).add(Math.floor(ts / 3600000));
        }
      }
    }
    if (perKey) {
      t.perKeyLines++;
      const hits = sum(values(doc.CacheHits));
      if (doc.Service === 'SecretsManager' || doc.Service === 'ParameterStore') {
        t.perKey[doc.Service] += hits;
        t.perKey.hits += hits;
      }
      continue;
    }
    const phase = typeof doc.phase === 'string' ? doc.phase : 'invoke';
    const key = JSON.stringify([doc.FunctionName, ts, phase, doc.requestId ?? '',
      doc.intervalStartMs ?? '', doc.functionVersion ?? '']);
    if (!records.has(key)) records.set(key, newRecord(phase));
    const r = records.get(key);
    r.parts++;
    if (doc.emfPart === undefined) {
      r.firstLines++;
      for (const k of COUNTS) r[k] += sum(values(doc[k]));
      for (const k of PROPS) r[k] += sum(values(doc[k]));
      if (typeof doc.memorySizeMB === 'number') {
        t.memorySizes.set(doc.memorySizeMB, (t.memorySizes.get(doc.memorySizeMB) ?? 0) + 1);
      }
    } else {
      t.continuationLines++;
    }
    for (const k of SERIES) r[k].push(...values(doc[k]));
  }
  t.records = [...records.values()];
  return t;
}

// Lambda figures come one per invocation; an aggregate line past AGG_VALUES_MAX holds a sample, so
// its total is the sample's mean times the number of invocations that had the figure.
function seriesTotal(records, name) {
  let total = 0;
  let n = 0;
  let estimated = false;
  for (const r of records) {
    const v = r[name];
    if (!v.length) continue;
    let count = v.length;
    if (r.phase === 'aggregate' && r.valuesSampledOut > 0 && v.length >= AGG_VALUES_MAX) {
      count = Math.max(v.length, name === 'InitDuration' ? r.ColdStart : r.invocations);
      estimated = true;
    }
    total += mean(v) * count;
    n += count;
  }
  return { total, n, estimated };
}

function round(x, d = 6) {
  if (x === null || x === undefined) return null;
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

export function report(t, opts = {}) {
  const o = { ...opts, given: opts.given ?? {} };
  const notes = [];
  const all = t.records;
  const c = {};
  for (const k of [...COUNTS, ...PROPS]) c[k] = sum(all.map((r) => r[k]));
  const invocations = sum(all.map((r) => (r.phase === 'invoke' ? r.firstLines : 0))) +
    sum(all.filter((r) => r.phase === 'aggregate').map((r) => r.invocations));
  const initRecords = sum(all.map((r) => (r.phase === 'init' ? r.firstLines : 0))) +
    sum(all.filter((r) => r.phase === 'aggregate').map((r) => r.initRecords));
  const series = {};
  for (const k of SERIES) series[k] = all.flatMap((r) => r[k]);
  const lookups = c.CacheHits + c.CacheMisses + c.CacheStaleServed;
  const waits = c.singleFlightWaits;
  const avoided = c.CacheHits + waits;

  // Which service the avoided calls would have gone to.
  let smShare;
  let smHits;
  let shareSource;
  const perKeyComplete = t.perKeyLines > 0 && c.keysDropped === 0 && t.perKey.hits === c.CacheHits;
  const apiCalls = c.SecretsManagerCalls + c.ParameterStoreCalls;
  if (o.smShare !== undefined) {
    smShare = o.smShare;
    smHits = c.CacheHits * smShare;
    shareSource = 'given (--sm-share)';
  } else if (perKeyComplete) {
    smShare = c.CacheHits ? t.perKey.SecretsManager / c.CacheHits : 0.5;
    smHits = t.perKey.SecretsManager;
    shareSource = 'per-key lines (exact for hits; waits split in the same ratio)';
  } else if (apiCalls > 0) {
    smShare = c.SecretsManagerCalls / apiCalls;
    smHits = c.CacheHits * smShare;
    shareSource = 'upstream call mix (SecretsManagerCalls / all calls)';
    if (t.perKeyLines > 0) notes.push('per-key lines are incomplete (keys dropped), not used for the split');
  } else {
    smShare = 0.5;
    smHits = c.CacheHits * smShare;
    shareSource = 'no upstream call seen: assumed half and half (set --sm-share)';
  }
  const avoidedSm = smHits + waits * smShare;
  const avoidedSsm = avoided - avoidedSm;

  // Time an avoided call would have cost, less what a hit costs.
  const pureHit = all.filter((r) => r.phase === 'invoke' && r.firstLines === 1 && r.CacheHits > 0 &&
    r.CacheMisses === 0 && r.CacheStaleServed === 0 && r.singleFlightWaits === 0 &&
    r.fetchLatencyDropped === 0 && r.FetchLatency.length === r.CacheHits).flatMap((r) => r.FetchLatency);
  let avoidedCallMs = o.avoidedCallMs;
  let avoidedCallSource = 'given (--avoided-call-ms)';
  if (avoidedCallMs === undefined) {
    avoidedCallMs = mean(series.UpstreamLatency) ?? 0;
    avoidedCallSource = series.UpstreamLatency.length
      ? `mean UpstreamLatency of ${series.UpstreamLatency.length} calls`
      : 'no upstream call seen: 0 (set --avoided-call-ms)';
  }
  let hitMs = o.hitMs;
  let hitSource = 'given (--hit-ms)';
  if (hitMs === undefined) {
    if (pureHit.length) {
      hitMs = median(pureHit);
      hitSource = `median FetchLatency of ${pureHit.length} requests in all-hit invocations`;
    } else {
      hitMs = median(series.FetchLatency) ?? 0;
      hitSource = 'median FetchLatency of all requests (no all-hit invocation seen)';
    }
  }
  const savedMsPerCall = Math.max(0, avoidedCallMs - hitMs);

  // Memory and prices.
  let memoryMb = o.memoryMb;
  let memorySource = 'given (--memory-mb)';
  if (memoryMb === undefined) {
    const common = [...t.memorySizes.entries()].sort((a, b) => b[1] - a[1])[0];
    memoryMb = common ? common[0] : DEFAULTS.memoryMbFallback;
    memorySource = common ? 'memorySizeMB in the lines' : 'not in the lines: default (set --memory-mb)';
    if (t.memorySizes.size > 1) notes.push(`several memory sizes in the lines; used the most common, ${memoryMb} MB`);
  }
  const arch = o.arch ?? DEFAULTS.arch;
  const ssmThroughput = o.ssmThroughput ?? DEFAULTS.ssmThroughput;
  const prices = {
    secretsManagerPer10k: o.smPer10k ?? DEFAULTS.smPer10k,
    parameterStorePer10k: ssmThroughput === 'standard' ? 0 : (o.ssmPer10k ?? DEFAULTS.ssmPer10k),
    lambdaPerGbSecond: o.gbSecond ?? DEFAULTS.gbSecond[arch],
    logsIngestionPerGb: o.logsPerGb ?? DEFAULTS.logsPerGb,
    customMetricPerMonth: o.metricMonth ?? DEFAULTS.metricMonth,
    dashboardPerMonth: o.dashboardMonth ?? DEFAULTS.dashboardMonth,
  };
  const gb = memoryMb / 1024;
  const ext = seriesTotal(all, 'ExtensionOverhead');
  const extMean = ext.n ? ext.total / ext.n : null;
  // Invocations whose report did not arrive had overhead too: charge them the mean.
  const extMsTotal = extMean === null ? 0 : extMean * Math.max(invocations, ext.n);
  if (ext.n < invocations && ext.n > 0) {
    notes.push(`ExtensionOverhead measured on ${ext.n} of ${invocations} invocations; the rest charged the mean`);
  }
  if (ext.n === 0 && invocations > 0) notes.push('no ExtensionOverhead in the lines (telemetry off?): its cost is not counted');
  const billed = seriesTotal(all, 'BilledDuration');
  const metricHours = sum([...t.metricHours.values()].map((h) => h.size));

  const window = {
    savedSecretsManager: avoidedSm * prices.secretsManagerPer10k / 10000,
    savedParameterStore: avoidedSsm * prices.parameterStorePer10k / 10000,
    savedDuration: avoided * (savedMsPerCall / 1000) * gb * prices.lambdaPerGbSecond,
    costEmfIngestion: (t.bytes / 1e9) * prices.logsIngestionPerGb,
    costCustomMetrics: metricHours * prices.customMetricPerMonth / DEFAULTS.hoursPerMonth,
    costExtension: (extMsTotal / 1000) * gb * prices.lambdaPerGbSecond,
  };
  window.net = window.savedSecretsManager + window.savedParameterStore + window.savedDuration -
    window.costEmfIngestion - window.costCustomMetrics - window.costExtension;

  let monthly = null;
  if (o.invocationsPerMonth !== undefined) {
    if (!invocations) throw new Error('--invocations-per-month needs lines with at least one invocation');
    const k = o.invocationsPerMonth / invocations;
    const dashboards = o.dashboards ?? DEFAULTS.dashboards;
    monthly = {
      invocations: o.invocationsPerMonth,
      scale: k,
      callsAvoided: avoided * k,
      upstreamCalls: c.UpstreamCalls * k,
      savedSecretsManager: window.savedSecretsManager * k,
      savedParameterStore: window.savedParameterStore * k,
      savedDuration: window.savedDuration * k,
      costEmfIngestion: window.costEmfIngestion * k,
      customMetrics: t.metricHours.size,
      costCustomMetrics: t.metricHours.size * prices.customMetricPerMonth,
      dashboards,
      costDashboards: dashboards * prices.dashboardPerMonth,
      costExtension: window.costExtension * k,
      // Parameter Store load without the cache, for the throughput tier question.
      ssmTpsWithoutCache: ((c.ParameterStoreCalls + avoidedSsm) * k) / (DEFAULTS.hoursPerMonth * 3600),
    };
    monthly.net = monthly.savedSecretsManager + monthly.savedParameterStore + monthly.savedDuration -
      monthly.costEmfIngestion - monthly.costCustomMetrics - monthly.costDashboards - monthly.costExtension;
    if (ssmThroughput === 'standard' && monthly.ssmTpsWithoutCache > DEFAULTS.ssmStandardTps / 4) {
      notes.push(`without the cache Parameter Store would average ${monthly.ssmTpsWithoutCache.toFixed(1)} TPS ` +
        `(standard throughput: ${DEFAULTS.ssmStandardTps} TPS shared, bursts above it are throttled); ` +
        'if that means buying higher throughput, rerun with --ssm-throughput high');
    }
  }
  if (metricHours && t.lastMs - t.firstMs < 3600000) {
    notes.push('custom metrics are billed for each hour they receive data: a sample shorter than an hour ' +
      'still pays a full hour of them, so its net is pessimistic; --invocations-per-month gives the monthly view');
  }
  if (t.functions.size > 1) {
    notes.push(`lines of ${t.functions.size} functions summed (${[...t.functions.keys()].join(', ')}); ` +
      '--function NAME reports one');
  }
  if (t.duplicates) notes.push(`${t.duplicates} duplicate lines ignored`);
  if (c.valuesSampledOut) notes.push(`aggregate lines sampled ${c.valuesSampledOut} values out; percentiles come from the sample`);

  const ms = (xs) => ({ n: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99), mean: round(mean(xs), 3) });
  return {
    namespace: t.namespace,
    functions: [...t.functions.keys()],
    window: { firstMs: t.firstMs, lastMs: t.lastMs },
    lines: { read: t.lines, perKey: t.perKeyLines, continuation: t.continuationLines,
      duplicates: t.duplicates, other: t.otherLines, bytes: t.bytes },
    invocations, initRecords, coldStarts: c.ColdStart,
    requests: c.requests, cacheHits: c.CacheHits, cacheMisses: c.CacheMisses,
    staleServed: c.CacheStaleServed, singleFlightWaits: waits, bypass: c.bypass,
    hitRatio: lookups ? c.CacheHits / lookups : null,
    upstreamCalls: c.UpstreamCalls, secretsManagerCalls: c.SecretsManagerCalls,
    parameterStoreCalls: c.ParameterStoreCalls, upstreamErrors: c.UpstreamErrors,
    upstreamThrottles: c.UpstreamThrottles,
    callsAvoided: avoided, callsAvoidedSecretsManager: avoidedSm, callsAvoidedParameterStore: avoidedSsm,
    latencyMs: {
      fetch: ms(series.FetchLatency), upstream: ms(series.UpstreamLatency),
      extensionOverhead: ms(series.ExtensionOverhead), duration: ms(series.Duration),
      billedDuration: ms(series.BilledDuration), initDuration: ms(series.InitDuration),
    },
    maxMemoryUsedMb: series.MaxMemoryUsed.length ? Math.max(...series.MaxMemoryUsed) : null,
    billedMsTotal: billed.total, extensionOverheadMsTotal: extMsTotal,
    customMetrics: t.metricHours.size, customMetricHours: metricHours,
    usd: window, monthly,
    assumptions: {
      memoryMb, memorySource, arch, ssmThroughput,
      smShare, smShareSource: shareSource,
      avoidedCallMs, avoidedCallSource, hitMs, hitSource, savedMsPerCall,
      prices, hoursPerMonth: DEFAULTS.hoursPerMonth,
      flagsGiven: Object.keys(o.given),
    },
    notes,
  };
}

const usd = (x) => (x === null || x === undefined ? '-' : `${x < 0 ? '-' : ''}$${Math.abs(x).toFixed(x !== 0 && Math.abs(x) < 0.01 ? 6 : 2)}`);
const n3 = (x) => (x === null || x === undefined ? '-' : `${round(x, 3)}`);
const cnt = (x) => (Number.isInteger(x) ? `${x}` : x.toFixed(1));
const pct = (x) => (x === null ? '-' : `${(100 * x).toFixed(1)} %`);
const iso = (ms) => (ms === null ? '-' : new Date(ms).toISOString());

function costRows(u, monthly) {
  const rows = [
    ['Secrets Manager calls avoided', u.savedSecretsManager, monthly?.savedSecretsManager],
    ['Parameter Store calls avoided', u.savedParameterStore, monthly?.savedParameterStore],
    ['billed duration saved', u.savedDuration, monthly?.savedDuration],
    ['EMF log ingestion', -u.costEmfIngestion, monthly && -monthly.costEmfIngestion],
    ['custom metrics', -u.costCustomMetrics, monthly && -monthly.costCustomMetrics],
  ];
  if (monthly) rows.push(['dashboards', 0, -monthly.costDashboards]);
  rows.push(['extension overhead (billed)', -u.costExtension, monthly && -monthly.costExtension]);
  rows.push(['net saved', u.net, monthly?.net]);
  return rows;
}

function assumptionRows(r) {
  const a = r.assumptions;
  const p = a.prices;
  return [
    ['memory', `${a.memoryMb} MB`, a.memorySource],
    ['architecture', a.arch, `Lambda ${p.lambdaPerGbSecond} USD per GB-s`],
    ['Secrets Manager price', `${p.secretsManagerPer10k} USD / 10,000 calls`, 'list price, us-east-1'],
    ['Parameter Store price', `${p.parameterStorePer10k} USD / 10,000 calls`, `${a.ssmThroughput} throughput`],
    ['share of avoided calls to Secrets Manager', n3(a.smShare), a.smShareSource],
    ['an avoided call would take', `${n3(a.avoidedCallMs)} ms`, a.avoidedCallSource],
    ['a cache hit takes', `${n3(a.hitMs)} ms`, a.hitSource],
    ['log ingestion', `${p.logsIngestionPerGb} USD / GB`, 'standard class, first tier'],
    ['custom metric', `${p.customMetricPerMonth} USD / month`, `prorated per hour with data (${a.hoursPerMonth} h a month)`],
    ['dashboard', `${p.dashboardPerMonth} USD / month`, 'projection only'],
  ];
}

export function renderText(r) {
  const out = [];
  const L = (k, v) => out.push(`${k.padEnd(26)}${v}`);
  L('functions', r.functions.join(', '));
  L('namespace', `${r.namespace}   ${iso(r.window.firstMs)} .. ${iso(r.window.lastMs)}`);
  L('EMF lines', `${r.lines.read} (${r.lines.perKey} per-key, ${r.lines.continuation} continuation), ${r.lines.bytes} bytes`);
  L('invocations', `${r.invocations} (cold starts ${r.coldStarts}, init records ${r.initRecords})`);
  L('local requests', `${r.requests}`);
  L('hits / misses / stale', `${r.cacheHits} / ${r.cacheMisses} / ${r.staleServed}   hit ratio ${pct(r.hitRatio)}   single-flight waits ${r.singleFlightWaits}`);
  L('upstream calls', `${r.upstreamCalls} (Secrets Manager ${r.secretsManagerCalls}, Parameter Store ${r.parameterStoreCalls}; errors ${r.upstreamErrors}, throttles ${r.upstreamThrottles})`);
  L('calls avoided', `${r.callsAvoided} (Secrets Manager ${cnt(r.callsAvoidedSecretsManager)}, Parameter Store ${cnt(r.callsAvoidedParameterStore)})`);
  const lat = r.latencyMs;
  for (const [k, name] of [['fetch', 'FetchLatency'], ['upstream', 'UpstreamLatency'],
    ['extensionOverhead', 'ExtensionOverhead'], ['duration', 'Duration'], ['billedDuration', 'BilledDuration']]) {
    L(name, `p50 ${n3(lat[k].p50)} ms   p99 ${n3(lat[k].p99)} ms   (${lat[k].n} values)`);
  }
  L('MaxMemoryUsed', r.maxMemoryUsedMb === null ? '-' : `${r.maxMemoryUsedMb} MB`);
  out.push('');
  out.push(`${'USD'.padEnd(34)}${'these lines'.padStart(14)}${r.monthly ? `${r.monthly.invocations} inv/month`.padStart(22) : ''}`);
  for (const [k, w, m] of costRows(r.usd, r.monthly)) {
    out.push(`${k.padEnd(34)}${usd(w).padStart(14)}${r.monthly ? usd(m).padStart(22) : ''}`);
  }
  out.push('');
  out.push('assumptions:');
  for (const [k, v, src] of assumptionRows(r)) out.push(`  ${k}: ${v} (${src})`);
  for (const n of r.notes) out.push(`note: ${n}`);
  return `${out.join('\n')}\n`;
}

export function renderMarkdown(r) {
  const lat = r.latencyMs;
  const out = [
    `### stash cache report: ${r.functions.join(', ')} (${r.namespace})`,
    '',
    `${r.invocations} invocations (cold starts: ${r.coldStarts}) from ${iso(r.window.firstMs)} to ${iso(r.window.lastMs)}, read from ${r.lines.read} EMF lines.`,
    '',
    '| what | value |',
    '|---|---|',
    `| local requests | ${r.requests} |`,
    `| cache hits / misses / stale served | ${r.cacheHits} / ${r.cacheMisses} / ${r.staleServed} |`,
    `| hit ratio | ${pct(r.hitRatio)} |`,
    `| single-flight waits | ${r.singleFlightWaits} |`,
    `| upstream calls (Secrets Manager / Parameter Store) | ${r.upstreamCalls} (${r.secretsManagerCalls} / ${r.parameterStoreCalls}) |`,
    `| upstream errors / throttles | ${r.upstreamErrors} / ${r.upstreamThrottles} |`,
    `| calls avoided | ${r.callsAvoided} |`,
    `| FetchLatency p50 / p99 | ${n3(lat.fetch.p50)} / ${n3(lat.fetch.p99)} ms |`,
    `| UpstreamLatency p50 / p99 | ${n3(lat.upstream.p50)} / ${n3(lat.upstream.p99)} ms |`,
    `| ExtensionOverhead p50 / p99 | ${n3(lat.extensionOverhead.p50)} / ${n3(lat.extensionOverhead.p99)} ms |`,
    '',
    `| USD | these lines |${r.monthly ? ` ${r.monthly.invocations} invocations / month |` : ''}`,
    `|---|---:|${r.monthly ? '---:|' : ''}`,
    ...costRows(r.usd, r.monthly).map(([k, w, m]) => `| ${k} | ${usd(w)} |${r.monthly ? ` ${usd(m)} |` : ''}`),
    '',
    '| assumption | value | source |',
    '|---|---|---|',
    ...assumptionRows(r).map(([k, v, s]) => `| ${k} | ${v} | ${s} |`),
  ];
  if (r.notes.length) out.push('', ...r.notes.map((n) => `- ${n}`));
  out.push('', 'Prices are AWS list prices (us-east-1) as of the reference notes; check them before quoting.');
  return `${out.join('\n')}\n`;
}

async function readLines(files) {
  const out = [];
  const streams = files.length ? files.map((f) => (f === '-' ? process.stdin : createReadStream(f))) : [process.stdin];
  for (const s of streams) {
    for await (const line of createInterface({ input: s, crlfDelay: Infinity })) out.push(line);
  }
  return out;
}

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`stash-report: ${e.message}\n`);
    return 2;
  }
  if (o.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  let lines;
  try {
    lines = await readLines(o.files);
  } catch (e) {
    process.stderr.write(`stash-report: ${e.message}\n`);
    return 2;
  }
  const t = summarize(lines, o.namespace, o.fn);
  if (!t.lines) {
    process.stderr.write(`stash-report: no EMF line of namespace '${o.namespace}'` +
      `${o.fn === undefined ? '' : ` and function '${o.fn}'`} in the input\n`);
    return 1;
  }
  let r;
  try {
    r = report(t, o);
  } catch (e) {
    process.stderr.write(`stash-report: ${e.message}\n`);
    return 2;
  }
  if (o.format === 'json') process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else if (o.format === 'markdown') process.stdout.write(renderMarkdown(r));
  else process.stdout.write(renderText(r));
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
