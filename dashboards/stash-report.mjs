#!/usr/bin/env node
// stash-report: reads stash's EMF lines and prints what the cache did and what it saved, per
// function and in all, with every price and assumption it used, so a reader can check the figure
// or redo it with their own numbers.
//
//   node dashboards/stash-report.mjs [options] [FILE...]      (--help lists the options)
//
// Input (files or stdin, each may be gzip-compressed): plain log lines (any text before the JSON,
// such as an export's timestamp, is skipped), or the JSON the AWS CLI prints for
// `aws logs filter-log-events` / `get-log-events` (an object with "events", several such objects
// one after the other, or a list of events or of messages).  Lines that are not stash's EMF are
// skipped and counted; a line seen twice is counted once.  An event's logStreamName names the
// execution environment (Lambda writes one log stream per environment).
//
// What it reads (telemetry/emf.h): one line per invocation (invocation mode) or per interval
// (aggregate mode), the init record (phase "init": requests served before the first INVOKE), the
// continuation lines of a record split past 100 values (emfPart >= 2: array values only, never a
// count), and the per-key lines (dimension Key: counts already in the main line, read only for the
// Secrets Manager / Parameter Store split and for the per-environment baseline).
//
// Cost model (prices from the AWS pricing pages named below), every input a flag, computed for
// each function with its own memory size and latencies; the totals are the sums:
//   calls avoided  = per-request baseline: cache hits + single-flight waits (each would have been
//                    an upstream call); per-environment baseline: the calls a value fetched once
//                    per environment and kept in a global would make, minus stash's fetches
//   saved_sm       = avoided Secrets Manager calls * price per call
//   saved_ssm      = avoided Parameter Store calls * price per call (0 on standard throughput)
//   saved_dur      = calls avoided * avoided-call ms - (per-request: calls avoided, per-environment:
//                    hits and waits) * hit ms, times memory GB * price per GB-s
//   cost_emf       = bytes of EMF lines * price per GB + custom metrics (prorated by hour) * price
//   cost_ext       = ExtensionOverhead ms * memory GB * price per GB-s
//   net            = saved_sm + saved_ssm + saved_dur - cost_emf - cost_ext
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { pathToFileURL } from 'node:url';

// us-east-1 list prices from aws.amazon.com/{secrets-manager,systems-manager,lambda,cloudwatch}/pricing.
// They change: check them.
export const DEFAULTS = Object.freeze({
  namespace: 'Stash',
  arch: 'x86_64',
  ssmThroughput: 'standard',
  baseline: 'per-request',
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

export const BASELINES = ['per-request', 'per-environment'];
const AGG_VALUES_MAX = 500; // EMF_AGG_VALUES_MAX in telemetry/emf.h
const INPUT_MAX = 256 << 20; // bytes of one input (after gunzip): past it, a clear error, not a crash
const COUNTS = ['CacheHits', 'CacheMisses', 'CacheStaleServed', 'CacheRefreshes', 'UpstreamCalls',
  'SecretsManagerCalls', 'ParameterStoreCalls', 'UpstreamErrors', 'UpstreamThrottles', 'ColdStart'];
const SERIES = ['FetchLatency', 'UpstreamLatency', 'Duration', 'BilledDuration', 'InitDuration',
  'ExtensionOverhead', 'MaxMemoryUsed'];
const PROPS = ['requests', 'singleFlightWaits', 'bypass', 'invocations', 'initRecords',
  'valuesSampledOut', 'fetchLatencyDropped', 'upstreamLatencyDropped', 'keysDropped'];
// Time buckets of the series: the smallest that keeps the span within BUCKETS_MAX buckets.
const BUCKET_SIZES = [[60000, '1 minute'], [300000, '5 minutes'], [900000, '15 minutes'],
  [3600000, '1 hour'], [6 * 3600000, '6 hours'], [86400000, '1 day']];
const BUCKETS_MAX = 60;

const HELP = `usage: stash-report [options] [FILE...]   (no FILE: stdin; FILE may be gzip; at most 256 MiB each)
  --json | --markdown            output format on stdout (default: text)
  --html FILE                    also write a self-contained HTML report (charts, tables) to FILE
  --baseline per-request|per-environment
                                 what stash is compared with (default ${DEFAULTS.baseline}: every request
                                 would call upstream; per-environment: each value fetched once per
                                 environment and kept in a global). Every output shows both.
  --namespace NS                 EMF namespace to read (default ${DEFAULTS.namespace})
  --function NAME                only this FunctionName (default: every function in the input)
  --invocations-per-month N      also project the figures to N invocations a month
  --memory-mb N                  function memory (default: memorySizeMB from each function's lines, else ${DEFAULTS.memoryMbFallback})
  --arch x86_64|arm64            Lambda price per GB-s (default ${DEFAULTS.arch})
  --ssm-throughput standard|high|advanced
                                 Parameter Store calls are free on standard throughput (default)
  --avoided-call-ms N            time one avoided call would have taken (default: median
                                 UpstreamLatency of warm-connection calls, those of warm invocations)
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
    '--html': (v) => {
      if (!v) throw new Error('--html needs a file name');
      o.html = v;
    },
    '--baseline': (v) => {
      if (!BASELINES.includes(v)) throw new Error('--baseline is per-request or per-environment');
      o.baseline = v;
    },
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

// Top-level JSON values of a text holding one or several (the AWS CLI's pages printed one after
// the other), or null if it is not such a text.
function jsonValues(text) {
  const out = [];
  let depth = 0;
  let inStr = false;
  let esc = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inStr) {
      if (esc) esc = false;
      else if (ch === '\\') esc = true;
      else if (ch === '"') inStr = false;
      continue;
    }
    if (ch === '"') inStr = true;
    else if (ch === '{' || ch === '[') {
      if (depth++ === 0) start = i;
    } else if (ch === '}' || ch === ']') {
      if (--depth < 0) return null;
      if (depth === 0) {
        try {
          out.push(JSON.parse(text.slice(start, i + 1)));
        } catch {
          return null;
        }
      }
    } else if (depth === 0 && !/\s/.test(ch)) return null;
  }
  return depth === 0 && out.length ? out : null;
}

function eventLines(ev, out) {
  if (typeof ev === 'string') {
    for (const l of ev.split('\n')) out.push({ text: l });
  } else if (ev && typeof ev === 'object' && typeof ev.message === 'string') {
    const stream = typeof ev.logStreamName === 'string' ? ev.logStreamName : undefined;
    for (const l of ev.message.split('\n')) out.push({ text: l, stream });
  } else {
    out.push({ text: JSON.stringify(ev) }); // not an event: counted as another line
  }
}

// The log lines of one input (a Buffer): gunzipped if gzip, unpacked if it is the AWS CLI's JSON
// for filter-log-events or get-log-events, else split into lines.  Each line: {text, stream?}.
export function inputLines(buf) {
  let b = buf;
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) {
    try {
      b = gunzipSync(b, { maxOutputLength: INPUT_MAX });
    } catch (e) {
      throw new Error(e.code === 'ERR_BUFFER_TOO_LARGE' ? `gzip input larger than ${INPUT_MAX} bytes unpacked` : `gzip: ${e.message}`);
    }
  }
  if (b.length > INPUT_MAX) throw new Error(`input larger than ${INPUT_MAX} bytes`);
  const text = b.toString('utf8').replace(/^\uFEFF/, '');
  const head = text.trimStart()[0];
  if (head === '{' || head === '[') {
    const docs = jsonValues(text);
    const isPage = (d) => d && typeof d === 'object' && !Array.isArray(d) && Array.isArray(d.events);
    const isList = (d) => Array.isArray(d) && d.every((e) => typeof e === 'string' ||
      (e && typeof e === 'object' && typeof e.message === 'string'));
    if (docs && docs.every((d) => isPage(d) || isList(d))) {
      const out = [];
      for (const d of docs) for (const ev of isPage(d) ? d.events : d) eventLines(ev, out);
      return out;
    }
  }
  return text.split(/\r?\n/).map((l) => ({ text: l }));
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


function newRecord(phase, fn, ts, stream, cold) {
  const r = { phase, fn, ts, stream, cold, firstLines: 0, parts: 0 };
  for (const k of COUNTS) r[k] = 0;
  for (const k of PROPS) r[k] = 0;
  for (const k of SERIES) r[k] = [];
  return r;
}

function newTally(namespace) {
  return {
    namespace, functions: new Map(), lines: 0, perKeyLines: 0, continuationLines: 0, duplicates: 0,
    otherLines: 0, bytes: 0, firstMs: null, lastMs: null, metricHours: new Map(), memorySizes: new Map(),
    perKey: { SecretsManager: 0, ParameterStore: 0, hits: 0 }, envKeys: new Set(), perKeyNoStream: 0,
    records: new Map(),
  };
}

// One EMF line (already parsed, not a duplicate) into a tally.
function addLine(t, p, dirs, stream) {
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
    const lookups = hits + sum(values(doc.CacheMisses)) + sum(values(doc.CacheStaleServed));
    if (stream === undefined) t.perKeyNoStream++;
    else if (lookups > 0) t.envKeys.add(JSON.stringify([stream, doc.Service, doc.Key]));
    return;
  }
  const phase = typeof doc.phase === 'string' ? doc.phase : 'invoke';
  const key = JSON.stringify([doc.FunctionName, ts, phase, doc.requestId ?? '',
    doc.intervalStartMs ?? '', doc.functionVersion ?? '', stream ?? '']);
  if (!t.records.has(key)) {
    const at = typeof doc.intervalStartMs === 'number' ? Math.min(ts, doc.intervalStartMs) : ts;
    t.records.set(key, newRecord(phase, doc.FunctionName, Number.isFinite(at) ? at : null, stream,
      doc.coldStart === true));
  }
  const r = t.records.get(key);
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

// Reads lines (strings, or {text, stream} from inputLines) into records (a record = its first
// line plus its continuation lines) and the line level facts the costs need (bytes, custom
// metrics and the hours each received data), in all and per function (t.byFn).
export function summarize(lines, namespace = DEFAULTS.namespace, fn = undefined) {
  const seen = new Set();
  const t = newTally(namespace);
  t.byFn = new Map();
  for (const line of lines) {
    const raw = typeof line === 'string' ? line : line.text;
    const stream = typeof line === 'string' ? undefined : line.stream;
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
    const name = String(p.doc.FunctionName);
    if (!t.byFn.has(name)) t.byFn.set(name, newTally(namespace));
    addLine(t, p, dirs, stream);
    addLine(t.byFn.get(name), p, dirs, stream);
  }
  for (const x of [t, ...t.byFn.values()]) x.records = [...x.records.values()];
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

// The bucket size for a span of time: a minute up to a day.
export function bucketFor(spanMs) {
  for (const [ms, label] of BUCKET_SIZES) {
    if (spanMs / ms < BUCKETS_MAX) return { ms, label };
  }
  const [ms, label] = BUCKET_SIZES[BUCKET_SIZES.length - 1];
  return { ms, label };
}

// Per bucket (UTC-aligned, every bucket from the first to the last, empty ones included):
// counts of the records that start in it.  fns: function names to split by (null: all together).
export function bucketize(t, bucketMs, fns = null) {
  if (t.firstMs === null) return { starts: [], all: [], byFn: new Map() };
  const first = Math.floor(t.firstMs / bucketMs) * bucketMs;
  const n = Math.floor(t.lastMs / bucketMs) - first / bucketMs + 1;
  const starts = Array.from({ length: n }, (_, i) => first + i * bucketMs);
  const empty = () => starts.map((startMs) => ({ startMs, cacheHits: 0, cacheMisses: 0,
    upstreamCalls: 0, staleServed: 0, singleFlightWaits: 0, cacheRefreshes: 0 }));
  const all = empty();
  const byFn = new Map((fns ?? []).map((f) => [f, empty()]));
  for (const r of t.records) {
    if (r.ts === null) continue;
    const i = Math.min(n - 1, Math.max(0, Math.floor((r.ts - first) / bucketMs)));
    for (const b of [all[i], byFn.get(r.fn)?.[i]]) {
      if (!b) continue;
      b.cacheHits += r.CacheHits;
      b.cacheMisses += r.CacheMisses;
      b.upstreamCalls += r.UpstreamCalls;
      b.staleServed += r.CacheStaleServed;
      b.singleFlightWaits += r.singleFlightWaits;
      b.cacheRefreshes += r.CacheRefreshes;
    }
  }
  return { starts, all, byFn };
}

const USD_KEYS = ['savedSecretsManager', 'savedParameterStore', 'savedDuration', 'costEmfIngestion',
  'costCustomMetrics', 'costExtension'];

function withNet(u) {
  u.net = u.savedSecretsManager + u.savedParameterStore + u.savedDuration -
    u.costEmfIngestion - u.costCustomMetrics - u.costExtension;
  return u;
}

// The calls a value fetched once per environment and kept in a global would have made: one per
// key an environment used.  Exact when every line names its environment (a log stream) and the
// per-key lines are complete, else the misses of the records that begin an environment.
function environmentFills(t, all, c) {
  const mainNoStream = all.some((r) => r.stream === undefined);
  const perKeyComplete = t.perKeyLines > 0 && c.keysDropped === 0 && t.perKey.hits === c.CacheHits;
  if (!mainNoStream && perKeyComplete && t.perKeyNoStream === 0) {
    const envs = new Set(all.map((r) => r.stream)).size;
    return { fills: t.envKeys.size, environments: envs,
      source: `exact: ${t.envKeys.size} keys used in ${envs} environments (log streams and per-key lines)` };
  }
  const starts = all.filter((r) => r.phase === 'init' || r.cold ||
    (r.phase === 'aggregate' && (r.initRecords > 0 || r.ColdStart > 0)));
  const fills = sum(starts.map((r) => r.CacheMisses));
  const agg = starts.some((r) => r.phase === 'aggregate');
  return { fills, environments: c.ColdStart,
    source: `estimated: the ${fills} misses of init records and cold-start invocations` +
      `${agg ? ' (aggregate lines: of the intervals holding a cold start, an overestimate)' : ''}` +
      '; exact with log-stream names (filter-log-events JSON) and STASH_METRICS_PER_KEY' };
}

// Every figure of one set of records (one function, or all of them pooled).
function reportOne(t, o) {
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
  // A hit that started a background refresh (refresh-ahead) still made that refresh's call:
  // counted as one call not avoided (at most; a refresh that found another fill running made none).
  const refreshes = c.CacheRefreshes;
  const avoidedReq = c.CacheHits + waits - refreshes;

  // Which service the avoided calls would have gone to.
  let smShare;
  let shareSource;
  const perKeyComplete = t.perKeyLines > 0 && c.keysDropped === 0 && t.perKey.hits === c.CacheHits;
  const apiCalls = c.SecretsManagerCalls + c.ParameterStoreCalls;
  if (o.smShare !== undefined) {
    smShare = o.smShare;
    shareSource = 'given (--sm-share)';
  } else if (perKeyComplete) {
    smShare = c.CacheHits ? t.perKey.SecretsManager / c.CacheHits : 0.5;
    shareSource = 'per-key lines (exact for hits; waits split in the same ratio)';
  } else if (apiCalls > 0) {
    smShare = c.SecretsManagerCalls / apiCalls;
    shareSource = 'upstream call mix (SecretsManagerCalls / all calls)';
    if (t.perKeyLines > 0) notes.push('per-key lines are incomplete (keys dropped), not used for the split');
  } else {
    smShare = 0.5;
    shareSource = 'no upstream call seen: assumed half and half (set --sm-share)';
  }
  const smHits = perKeyComplete && o.smShare === undefined ? t.perKey.SecretsManager : c.CacheHits * smShare;
  const avoidedSm = smHits + (waits - refreshes) * smShare;
  const avoidedSsm = avoidedReq - avoidedSm;

  // Time an avoided call would have cost: a call on a warm connection (the first call of an
  // environment also pays the TCP and TLS handshakes, which a function keeping its SDK client in a
  // global pays once too), less what a hit costs.
  const warmCalls = all.filter((r) => r.phase === 'invoke' && !r.cold).flatMap((r) => r.UpstreamLatency);
  let avoidedCallMs = o.avoidedCallMs;
  let avoidedCallSource = 'given (--avoided-call-ms)';
  if (avoidedCallMs === undefined) {
    if (warmCalls.length) {
      avoidedCallMs = median(warmCalls);
      avoidedCallSource = `warm connection: median UpstreamLatency of ${warmCalls.length} calls in warm invocations` +
        ' (calls of init records and cold starts left out)';
    } else if (all.some((r) => r.phase === 'aggregate') && series.UpstreamLatency.length) {
      avoidedCallMs = median(series.UpstreamLatency);
      avoidedCallSource = `median UpstreamLatency of all ${series.UpstreamLatency.length} calls` +
        ' (aggregate lines do not tell warm-connection calls from cold ones)';
    } else if (series.UpstreamLatency.length) {
      // Every call paid a new connection: the fastest is the nearest to a warm call, and still
      // above one, so the saving is overstated rather than invented.
      avoidedCallMs = Math.min(...series.UpstreamLatency);
      avoidedCallSource = `no call in a warm invocation: the fastest of ${series.UpstreamLatency.length} calls, ` +
        'all on new connections (a warm call is faster; set --avoided-call-ms)';
    } else {
      avoidedCallMs = 0;
      avoidedCallSource = 'no upstream call seen: 0 (set --avoided-call-ms)';
    }
  }
  const pureHit = all.filter((r) => r.phase === 'invoke' && r.firstLines === 1 && r.CacheHits > 0 &&
    r.CacheMisses === 0 && r.CacheStaleServed === 0 && r.singleFlightWaits === 0 &&
    r.fetchLatencyDropped === 0 && r.FetchLatency.length === r.CacheHits).flatMap((r) => r.FetchLatency);
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
  const msUsd = (ms) => (ms / 1000) * gb * prices.lambdaPerGbSecond;
  const costs = {
    costEmfIngestion: (t.bytes / 1e9) * prices.logsIngestionPerGb,
    costCustomMetrics: metricHours * prices.customMetricPerMonth / DEFAULTS.hoursPerMonth,
    costExtension: msUsd(extMsTotal),
  };
  const perRequest = withNet({
    savedSecretsManager: avoidedSm * prices.secretsManagerPer10k / 10000,
    savedParameterStore: avoidedSsm * prices.parameterStorePer10k / 10000,
    savedDuration: msUsd(avoidedReq * savedMsPerCall),
    ...costs,
  });
  // Per environment: a global makes the fills; stash makes every miss, every stale-served
  // refresh attempt and every background refresh.  A global read costs nothing, a hit costs hitMs.
  const env = environmentFills(t, all, c);
  const fetches = c.CacheMisses + c.CacheStaleServed + refreshes;
  const avoidedEnv = env.fills - fetches;
  const perEnvironment = withNet({
    savedSecretsManager: avoidedEnv * smShare * prices.secretsManagerPer10k / 10000,
    savedParameterStore: avoidedEnv * (1 - smShare) * prices.parameterStorePer10k / 10000,
    savedDuration: msUsd(avoidedEnv * avoidedCallMs - avoidedReq * hitMs),
    ...costs,
  });
  const baselines = {
    'per-request': { callsAvoided: avoidedReq, callsAvoidedSecretsManager: avoidedSm,
      callsAvoidedParameterStore: avoidedSsm, usd: perRequest,
      means: 'without stash, every request would have called Secrets Manager or Parameter Store' },
    'per-environment': { callsAvoided: avoidedEnv, callsAvoidedSecretsManager: avoidedEnv * smShare,
      callsAvoidedParameterStore: avoidedEnv * (1 - smShare), usd: perEnvironment,
      globalFetches: env.fills, stashFetches: fetches, environments: env.environments, fillsSource: env.source,
      means: 'without stash, each value fetched once per environment and kept in a global (never refreshed): ' +
        'only the cost of stash\'s freshness (refreshes, hits served over HTTP) is counted' },
  };
  const chosen = baselines[o.baseline ?? DEFAULTS.baseline];

  if (metricHours && t.lastMs - t.firstMs < 3600000) {
    notes.push('custom metrics are billed for each hour they receive data: a sample shorter than an hour ' +
      'still pays a full hour of them, so its net is pessimistic; --invocations-per-month gives the monthly view');
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
    staleServed: c.CacheStaleServed, cacheRefreshes: refreshes, singleFlightWaits: waits,
    bypass: c.bypass,
    hitRatio: lookups ? c.CacheHits / lookups : null,
    upstreamCalls: c.UpstreamCalls, secretsManagerCalls: c.SecretsManagerCalls,
    parameterStoreCalls: c.ParameterStoreCalls, upstreamErrors: c.UpstreamErrors,
    upstreamThrottles: c.UpstreamThrottles,
    callsAvoided: chosen.callsAvoided, callsAvoidedSecretsManager: chosen.callsAvoidedSecretsManager,
    callsAvoidedParameterStore: chosen.callsAvoidedParameterStore,
    latencyMs: {
      fetch: ms(series.FetchLatency), upstream: ms(series.UpstreamLatency),
      extensionOverhead: ms(series.ExtensionOverhead), duration: ms(series.Duration),
      billedDuration: ms(series.BilledDuration), initDuration: ms(series.InitDuration),
    },
    maxMemoryUsedMb: series.MaxMemoryUsed.length ? Math.max(...series.MaxMemoryUsed) : null,
    billedMsTotal: billed.total, extensionOverheadMsTotal: extMsTotal,
    customMetrics: t.metricHours.size, customMetricHours: metricHours,
    baseline: o.baseline ?? DEFAULTS.baseline,
    baselines,
    usd: { ...chosen.usd },
    monthly: null,
    assumptions: {
      baseline: o.baseline ?? DEFAULTS.baseline,
      memoryMb, memorySource, arch, ssmThroughput,
      smShare, smShareSource: shareSource,
      avoidedCallMs, avoidedCallSource, hitMs, hitSource, savedMsPerCall,
      prices, hoursPerMonth: DEFAULTS.hoursPerMonth,
      flagsGiven: Object.keys(o.given),
    },
    notes,
    // For the monthly projection.
    _ssmCalls: c.ParameterStoreCalls,
  };
}

function sumUsd(list) {
  const u = {};
  for (const k of USD_KEYS) u[k] = sum(list.map((x) => x[k]));
  return withNet(u);
}

export function report(t, opts = {}) {
  const o = { ...opts, given: opts.given ?? {} };
  const byFn = t.byFn ?? new Map([[String([...t.functions.keys()][0]), t]]);
  const per = [...byFn.entries()].map(([name, sub]) => [name, reportOne(sub, o)]);
  const r = reportOne(t, o);
  // Each function is costed with its own memory and latencies; the totals are their sums.
  if (per.length > 1) {
    for (const b of BASELINES) r.baselines[b].usd = sumUsd(per.map(([, x]) => x.baselines[b].usd));
    r.usd = { ...r.baselines[r.baseline].usd };
    r.notes = r.notes.filter((n) => !n.startsWith('several memory sizes'));
    r.notes.push(`lines of ${per.length} functions (${per.map(([n]) => n).join(', ')}): each is costed with its own ` +
      'memory size and latencies, the totals are their sums; --function NAME reports one');
    const mems = new Set(per.map(([, x]) => x.assumptions.memoryMb));
    if (mems.size > 1) {
      r.assumptions.memorySource = `per function: ${per.map(([n, x]) => `${n} ${x.assumptions.memoryMb} MB`).join(', ')}`;
    }
  }
  r.byFunction = per.map(([name, x]) => ({
    functionName: name, invocations: x.invocations, cacheHits: x.cacheHits, cacheMisses: x.cacheMisses,
    staleServed: x.staleServed, cacheRefreshes: x.cacheRefreshes,
    singleFlightWaits: x.singleFlightWaits, hitRatio: x.hitRatio,
    upstreamCalls: x.upstreamCalls, callsAvoided: x.callsAvoided,
    usd: { net: x.usd.net, ...Object.fromEntries(USD_KEYS.map((k) => [k, x.usd[k]])) },
    netByBaseline: Object.fromEntries(BASELINES.map((b) => [b, x.baselines[b].usd.net])),
    assumptions: { memoryMb: x.assumptions.memoryMb, avoidedCallMs: x.assumptions.avoidedCallMs,
      hitMs: x.assumptions.hitMs, smShare: x.assumptions.smShare },
  })).sort((a, b) => b.callsAvoided - a.callsAvoided || a.functionName.localeCompare(b.functionName));

  const bucket = bucketFor(t.lastMs === null ? 0 : t.lastMs - t.firstMs);
  const names = r.byFunction.map((f) => f.functionName);
  const bz = bucketize(t, bucket.ms, names);
  const cols = (b) => ({ startMs: b.startMs, cacheHits: b.cacheHits, cacheMisses: b.cacheMisses,
    upstreamCalls: b.upstreamCalls, cacheRefreshes: b.cacheRefreshes });
  r.series = { bucketMs: bucket.ms, bucket: bucket.label, overall: bz.all.map(cols),
    byFunction: names.map((n) => ({ functionName: n, buckets: bz.byFn.get(n).map(cols) })) };

  const ssmCalls = r._ssmCalls;
  delete r._ssmCalls;
  if (o.invocationsPerMonth !== undefined) {
    if (!r.invocations) throw new Error('--invocations-per-month needs lines with at least one invocation');
    const k = o.invocationsPerMonth / r.invocations;
    const dashboards = o.dashboards ?? DEFAULTS.dashboards;
    const prices = r.assumptions.prices;
    const m = {
      invocations: o.invocationsPerMonth,
      scale: k,
      callsAvoided: r.callsAvoided * k,
      upstreamCalls: r.upstreamCalls * k,
      savedSecretsManager: r.usd.savedSecretsManager * k,
      savedParameterStore: r.usd.savedParameterStore * k,
      savedDuration: r.usd.savedDuration * k,
      costEmfIngestion: r.usd.costEmfIngestion * k,
      customMetrics: r.customMetrics,
      costCustomMetrics: r.customMetrics * prices.customMetricPerMonth,
      dashboards,
      costDashboards: dashboards * prices.dashboardPerMonth,
      costExtension: r.usd.costExtension * k,
      // Parameter Store load without the cache, for the throughput tier question.
      ssmTpsWithoutCache: ((ssmCalls + r.baselines['per-request'].callsAvoidedParameterStore) * k) /
        (DEFAULTS.hoursPerMonth * 3600),
    };
    m.net = m.savedSecretsManager + m.savedParameterStore + m.savedDuration -
      m.costEmfIngestion - m.costCustomMetrics - m.costDashboards - m.costExtension;
    m.netByBaseline = Object.fromEntries(BASELINES.map((b) => {
      const u = r.baselines[b].usd;
      return [b, (u.savedSecretsManager + u.savedParameterStore + u.savedDuration - u.costEmfIngestion -
        u.costExtension) * k - m.costCustomMetrics - m.costDashboards];
    }));
    r.monthly = m;
    if (r.assumptions.ssmThroughput === 'standard' && m.ssmTpsWithoutCache > DEFAULTS.ssmStandardTps / 4) {
      r.notes.push(`without the cache Parameter Store would average ${m.ssmTpsWithoutCache.toFixed(1)} TPS ` +
        `(standard throughput: ${DEFAULTS.ssmStandardTps} TPS shared, bursts above it are throttled); ` +
        'if that means buying higher throughput, rerun with --ssm-throughput high');
    }
  }
  return r;
}

export const usd = (x) => (x === null || x === undefined ? '-' : `${x < 0 ? '-' : ''}$${Math.abs(x).toFixed(x !== 0 && Math.abs(x) < 0.01 ? 6 : 2)}`);
export const n3 = (x) => (x === null || x === undefined ? '-' : `${round(x, 3)}`);
export const cnt = (x) => (Number.isInteger(x) ? `${x}` : x.toFixed(1));
export const pct = (x) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)} %`);
export const iso = (ms) => (ms === null ? '-' : new Date(ms).toISOString());

export function costRows(u, monthly) {
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

export function assumptionRows(r) {
  const a = r.assumptions;
  const p = a.prices;
  const env = r.baselines['per-environment'];
  return [
    ['baseline', a.baseline, r.baselines[a.baseline].means],
    ['per-environment fills', `${env.globalFetches} calls a global would make, stash made ${env.stashFetches}`, env.fillsSource],
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

// Both baselines in one line each: the chosen one first.
export function baselineRows(r) {
  const order = [r.baseline, ...BASELINES.filter((b) => b !== r.baseline)];
  return order.map((b) => {
    const x = r.baselines[b];
    return [b === r.baseline ? `${b} (chosen)` : b, x.callsAvoided, x.usd.net,
      r.monthly ? r.monthly.netByBaseline[b] : undefined];
  });
}

// Background refreshes sit next to the upstream calls their refreshes made, after the hit ratio
// they are no part of (a refresh is started by a hit, it is not a lookup).
export const FUNCTION_COLUMNS = ['function', 'invocations', 'hits', 'misses', 'hit ratio', 'refreshes',
  'upstream calls', 'calls avoided', 'net USD'];
export function functionRow(f) {
  return [f.functionName, `${f.invocations}`, `${f.cacheHits}`, `${f.cacheMisses}`, pct(f.hitRatio),
    `${f.cacheRefreshes}`, `${f.upstreamCalls}`, cnt(f.callsAvoided), usd(f.usd.net)];
}

export function renderText(r) {
  const out = [];
  const L = (k, v) => out.push(`${k.padEnd(26)}${v}`);
  L('functions', r.functions.join(', '));
  L('namespace', `${r.namespace}   ${iso(r.window.firstMs)} .. ${iso(r.window.lastMs)}`);
  L('baseline', `${r.baseline} (--baseline per-request|per-environment)`);
  L('EMF lines', `${r.lines.read} (${r.lines.perKey} per-key, ${r.lines.continuation} continuation), ${r.lines.bytes} bytes; ` +
    `${r.lines.duplicates} duplicates, ${r.lines.other} other lines skipped`);
  L('invocations', `${r.invocations} (cold starts ${r.coldStarts}, init records ${r.initRecords})`);
  L('local requests', `${r.requests}`);
  L('hits / misses / stale', `${r.cacheHits} / ${r.cacheMisses} / ${r.staleServed}   hit ratio ${pct(r.hitRatio)}   single-flight waits ${r.singleFlightWaits}`);
  L('background refreshes', `${r.cacheRefreshes} (refresh-ahead: started by hits late in a TTL)`);
  L('upstream calls', `${r.upstreamCalls} (Secrets Manager ${r.secretsManagerCalls}, Parameter Store ${r.parameterStoreCalls}; errors ${r.upstreamErrors}, throttles ${r.upstreamThrottles})`);
  L('calls avoided', `${cnt(r.callsAvoided)} (Secrets Manager ${cnt(r.callsAvoidedSecretsManager)}, Parameter Store ${cnt(r.callsAvoidedParameterStore)})`);
  const lat = r.latencyMs;
  for (const [k, name] of [['fetch', 'FetchLatency'], ['upstream', 'UpstreamLatency'],
    ['extensionOverhead', 'ExtensionOverhead'], ['duration', 'Duration'], ['billedDuration', 'BilledDuration']]) {
    L(name, `p50 ${n3(lat[k].p50)} ms   p99 ${n3(lat[k].p99)} ms   (${lat[k].n} values)`);
  }
  L('MaxMemoryUsed', r.maxMemoryUsedMb === null ? '-' : `${r.maxMemoryUsedMb} MB`);
  out.push('');
  out.push(`${'baseline'.padEnd(26)}${'calls avoided'.padStart(14)}${'net, these lines'.padStart(18)}${r.monthly ? 'net / month'.padStart(16) : ''}`);
  for (const [b, calls, net, m] of baselineRows(r)) {
    out.push(`${b.padEnd(26)}${cnt(calls).padStart(14)}${usd(net).padStart(18)}${r.monthly ? usd(m).padStart(16) : ''}`);
  }
  out.push('');
  const rows = [FUNCTION_COLUMNS, ...r.byFunction.map(functionRow)];
  const w = FUNCTION_COLUMNS.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) out.push(row.map((v, i) => (i ? v.padStart(w[i]) : v.padEnd(w[i]))).join('  '));
  out.push('');
  out.push(`${`USD (${r.baseline})`.padEnd(34)}${'these lines'.padStart(14)}${r.monthly ? `${r.monthly.invocations} inv/month`.padStart(22) : ''}`);
  for (const [k, wv, m] of costRows(r.usd, r.monthly)) {
    out.push(`${k.padEnd(34)}${usd(wv).padStart(14)}${r.monthly ? usd(m).padStart(22) : ''}`);
  }
  out.push('');
  out.push('assumptions:');
  for (const [k, v, src] of assumptionRows(r)) out.push(`  ${k}: ${v} (${src})`);
  for (const n of r.notes) out.push(`note: ${n}`);
  return `${out.join('\n')}\n`;
}

export function renderMarkdown(r) {
  const lat = r.latencyMs;
  const md = (s) => String(s).replace(/\|/g, '\\|');
  const out = [
    `### stash cache report: ${r.functions.map(md).join(', ')} (${md(r.namespace)})`,
    '',
    `${r.invocations} invocations (cold starts: ${r.coldStarts}) from ${iso(r.window.firstMs)} to ${iso(r.window.lastMs)}, read from ${r.lines.read} EMF lines. ` +
      `Baseline: **${r.baseline}**.`,
    '',
    '| baseline | calls avoided | net, these lines |' + (r.monthly ? ' net / month |' : ''),
    '|---|---:|---:|' + (r.monthly ? '---:|' : ''),
    ...baselineRows(r).map(([b, c, n, m]) => `| ${b} | ${cnt(c)} | ${usd(n)} |${r.monthly ? ` ${usd(m)} |` : ''}`),
    '',
    '| what | value |',
    '|---|---|',
    `| local requests | ${r.requests} |`,
    `| cache hits / misses / stale served | ${r.cacheHits} / ${r.cacheMisses} / ${r.staleServed} |`,
    `| background refreshes (refresh-ahead) | ${r.cacheRefreshes} |`,
    `| hit ratio | ${pct(r.hitRatio)} |`,
    `| single-flight waits | ${r.singleFlightWaits} |`,
    `| upstream calls (Secrets Manager / Parameter Store) | ${r.upstreamCalls} (${r.secretsManagerCalls} / ${r.parameterStoreCalls}) |`,
    `| upstream errors / throttles | ${r.upstreamErrors} / ${r.upstreamThrottles} |`,
    `| calls avoided (${r.baseline}) | ${cnt(r.callsAvoided)} |`,
    `| FetchLatency p50 / p99 | ${n3(lat.fetch.p50)} / ${n3(lat.fetch.p99)} ms |`,
    `| UpstreamLatency p50 / p99 | ${n3(lat.upstream.p50)} / ${n3(lat.upstream.p99)} ms |`,
    `| ExtensionOverhead p50 / p99 | ${n3(lat.extensionOverhead.p50)} / ${n3(lat.extensionOverhead.p99)} ms |`,
    '',
    `| ${FUNCTION_COLUMNS.join(' | ')} |`,
    `|---|${FUNCTION_COLUMNS.slice(1).map(() => '---:').join('|')}|`,
    ...r.byFunction.map((f) => `| ${functionRow(f).map(md).join(' | ')} |`),
    '',
    `| USD (${r.baseline}) | these lines |${r.monthly ? ` ${r.monthly.invocations} invocations / month |` : ''}`,
    `|---|---:|${r.monthly ? '---:|' : ''}`,
    ...costRows(r.usd, r.monthly).map(([k, w, m]) => `| ${k} | ${usd(w)} |${r.monthly ? ` ${usd(m)} |` : ''}`),
    '',
    '| assumption | value | source |',
    '|---|---|---|',
    ...assumptionRows(r).map(([k, v, s]) => `| ${k} | ${md(v)} | ${md(s)} |`),
  ];
  if (r.notes.length) out.push('', ...r.notes.map((n) => `- ${n}`));
  out.push('', 'Prices are AWS list prices (us-east-1) from AWS\'s pricing pages; check them before quoting.');
  return `${out.join('\n')}\n`;
}

async function readAll(stream) {
  const chunks = [];
  let n = 0;
  for await (const c of stream) {
    n += c.length;
    if (n > INPUT_MAX) throw new Error(`input larger than ${INPUT_MAX} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

export async function readInputs(files) {
  const out = [];
  const names = files.length ? files : ['-'];
  for (const f of names) {
    if (f !== '-' && statSync(f).size > INPUT_MAX) throw new Error(`${f}: larger than ${INPUT_MAX} bytes`);
    const buf = f === '-' ? await readAll(process.stdin) : readFileSync(f);
    for (const l of inputLines(buf)) out.push(l);
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
    lines = await readInputs(o.files);
  } catch (e) {
    process.stderr.write(`stash-report: ${e.message}\n`);
    return 2;
  }
  const t = summarize(lines, o.namespace, o.fn);
  if (!t.lines) {
    process.stderr.write(`stash-report: no EMF line of namespace '${o.namespace}'` +
      `${o.fn === undefined ? '' : ` and function '${o.fn}'`} in the input ` +
      `(${t.otherLines} other lines skipped)\n`);
    return 1;
  }
  let r;
  try {
    r = report(t, o);
    if (o.html) {
      const { renderHtml } = await import('./report-html.mjs');
      writeFileSync(o.html, renderHtml(r, t));
    }
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
  // Not a top-level await: --html imports report-html.mjs, which imports this module back.
  main().then((rc) => { process.exitCode = rc; });
}
