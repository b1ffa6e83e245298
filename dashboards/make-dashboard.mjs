#!/usr/bin/env node
// make-dashboard: the CloudWatch dashboard body for stash's EMF metrics
// (CloudWatch API Reference, "Dashboard Body Structure and Syntax"), on stdout.
//
//   node dashboards/make-dashboard.mjs [--namespace Stash] [--region us-east-1]
//        [--function my-function] [--dimension Name=Value ...] [--period 300]
//        [--functions a,b,c] > body.json
//   aws cloudwatch put-dashboard --dashboard-name stash --dashboard-body file://body.json
//
// dashboards/stash-dashboard.json is this script's output with the defaults (a test keeps them
// equal).  A "FunctionName" property variable at the top of the dashboard picks the function;
// --function is only the value shown before a choice is made.  --dimension must repeat what
// STASH_METRICS_DIMENSIONS says, because a CloudWatch metric is found by its exact dimension set.
// Metric names are checked against telemetry/emf.c when it is there, so a renamed metric fails here
// instead of drawing an empty graph.
//
// "Hit ratio of every function" draws one line per function.  CloudWatch's metric math table
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html, "Basic
// arithmetic functions") lists arithmetic between two time series, or between an array of time
// series and one series or a scalar; it does not list arithmetic between two arrays.  So with
// --functions (the names, e.g. from `aws cloudwatch list-metrics --namespace Stash --metric-name
// CacheHits`) each function gets its own expression over its own three metrics, using documented
// operators only.  Without names, one SEARCH per metric returns every function's series and the
// ratio is taken between those arrays, which the console draws as one line per function but which
// the table above does not document: prefer --functions.  Either way a period without a lookup has
// no point (IF without a false branch drops it; so does a division by zero), never 100 %.
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const EMF_C = fileURLToPath(new URL('../telemetry/emf.c', import.meta.url));

// Metric names the writer emits, read from its source: add_count/add_array/add_number calls.
export function writerMetricNames(src = readFileSync(EMF_C, 'utf8')) {
  const names = new Set();
  for (const m of src.matchAll(/\badd_(?:count|array|number)\(\s*&?\w+\s*,\s*"([A-Za-z]+)"/g)) {
    names.add(m[1]);
  }
  return names;
}

const FUNCTIONS_MAX = 100;

// The "every function" widget's rows: one visible ratio per function when the names are known,
// else the SEARCH arrays and one ratio over them.
function everyFunctionRows(o, dimSchema) {
  const extra = o.dims.flat();
  if (o.functions.length) {
    return o.functions.flatMap((fn, i) => {
      const dims = ['FunctionName', fn, ...extra];
      return [
        [o.namespace, 'CacheHits', ...dims, { id: `h${i}`, visible: false, stat: 'Sum' }],
        [o.namespace, 'CacheMisses', ...dims, { id: `m${i}`, visible: false, stat: 'Sum' }],
        [o.namespace, 'CacheStaleServed', ...dims, { id: `s${i}`, visible: false, stat: 'Sum' }],
        [{ expression: `IF(h${i} + m${i} + s${i} > 0, 100 * h${i} / (h${i} + m${i} + s${i}))`, id: `r${i}`, label: fn }],
      ];
    });
  }
  const search = (name) => `SEARCH('{${dimSchema}} MetricName="${name}"', 'Sum', ${o.period})`;
  return [
    [{ expression: search('CacheHits'), id: 'h', visible: false }],
    [{ expression: search('CacheMisses'), id: 'm', visible: false }],
    [{ expression: search('CacheStaleServed'), id: 's', visible: false }],
    [{ expression: '100 * h / (h + m + s)', id: 'ratio', label: '' }],
  ];
}

export function parseArgs(argv) {
  const o = { namespace: 'Stash', region: 'us-east-1', fn: 'my-function', dims: [], period: 300, functions: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--namespace') o.namespace = next();
    else if (a === '--region') o.region = next();
    else if (a === '--function') o.fn = next();
    else if (a === '--period') o.period = Number(next());
    else if (a === '--functions') o.functions.push(...next().split(',').map((x) => x.trim()).filter(Boolean));
    else if (a === '--dimension') {
      const v = next();
      const eq = v.indexOf('=');
      if (eq <= 0 || eq === v.length - 1) throw new Error(`--dimension is Name=Value, got '${v}'`);
      o.dims.push([v.slice(0, eq).trim(), v.slice(eq + 1).trim()]);
    } else if (a === '--help' || a === '-h') o.help = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!/^[A-Za-z0-9 ._#:/-]{1,255}$/.test(o.namespace) || o.namespace.startsWith('AWS/')) {
    throw new Error('--namespace: 1-255 of [A-Za-z0-9 ._#:/-], not AWS/...');
  }
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(o.region)) throw new Error(`--region '${o.region}' is not a region name`);
  if (!Number.isInteger(o.period) || o.period < 60 || o.period % 60) throw new Error('--period is a multiple of 60');
  if (!o.fn) throw new Error('--function is empty');
  for (const f of o.functions) {
    if (!/^[\x21-\x7e]{1,1024}$/.test(f)) throw new Error(`--functions: '${f}' is not a FunctionName value`);
  }
  // list-metrics names a function once per dimension set (per-key metrics too): once is enough.
  o.functions = [...new Set(o.functions)];
  if (o.functions.length > FUNCTIONS_MAX) throw new Error(`--functions: at most ${FUNCTIONS_MAX} names (4 rows each, 500 per widget)`);
  return o;
}

export function makeDashboard(opts = {}) {
  const o = { namespace: 'Stash', region: 'us-east-1', fn: 'my-function', dims: [], period: 300, functions: [], ...opts };
  const used = new Set();
  const dimPairs = [['FunctionName', o.fn], ...o.dims].flat();
  const metric = (name, props = {}) => {
    used.add(name);
    return [o.namespace, name, ...dimPairs, props];
  };
  const dimSchema = [o.namespace, 'FunctionName', ...o.dims.map((d) => d[0])].join(',');
  const widget = (x, y, width, height, title, props) => ({
    type: 'metric', x, y, width, height,
    properties: { title, region: o.region, view: 'timeSeries', stacked: false, period: o.period, ...props },
  });
  const pct = (names) => names.flatMap((n) => [
    metric(n, { stat: 'p50', label: `${n} p50` }),
    metric(n, { stat: 'p99', label: `${n} p99` }),
  ]);

  const widgets = [
    {
      type: 'text', x: 0, y: 0, width: 24, height: 2,
      properties: {
        markdown: `## stash: secrets and parameters cache\nGenerated by \`dashboards/make-dashboard.mjs\`; do not edit in the console. ` +
          `Metrics from stash's EMF lines, namespace \`${o.namespace}\`, picked by the FunctionName variable above. ` +
          'Hit ratio = hits / (hits + misses + stale served); single-flight waits and background refreshes are neither. ' +
          'Logs Insights queries: `dashboards/queries/`; cost report: `dashboards/stash-report.mjs`.',
      },
    },
    widget(0, 2, 12, 6, 'Cache hit ratio (%)', {
      stat: 'Sum',
      metrics: [
        metric('CacheHits', { id: 'hits', visible: false }),
        metric('CacheMisses', { id: 'misses', visible: false }),
        metric('CacheStaleServed', { id: 'stale', visible: false }),
        [{ expression: 'hits + misses + stale', id: 'lookups', visible: false, label: 'lookups' }],
        [{ expression: 'IF(lookups > 0, 100 * hits / lookups)', id: 'ratio', label: 'hit ratio % (no point when idle)' }],
      ],
      yAxis: { left: { min: 0, max: 100, label: '%', showUnits: false } },
      annotations: { horizontal: [{ label: 'target 95 %', value: 95, fill: 'below', color: '#d62728' }] },
    }),
    widget(12, 2, 12, 6, 'Hits, misses, stale served', {
      stat: 'Sum', stacked: true,
      metrics: [
        metric('CacheHits', { label: 'hits', color: '#2ca02c' }),
        metric('CacheMisses', { label: 'misses', color: '#ff7f0e' }),
        metric('CacheStaleServed', { label: 'stale served', color: '#d62728' }),
      ],
    }),
    widget(0, 8, 8, 6, 'Upstream calls by API', {
      stat: 'Sum',
      metrics: [
        metric('UpstreamCalls', { label: 'all upstream calls' }),
        metric('SecretsManagerCalls', { label: 'GetSecretValue' }),
        metric('ParameterStoreCalls', { label: 'GetParameter' }),
      ],
    }),
    widget(8, 8, 8, 6, 'Upstream errors and throttles', {
      stat: 'Sum',
      metrics: [
        metric('UpstreamErrors', { label: 'errors (throttles included)', color: '#d62728' }),
        metric('UpstreamThrottles', { label: 'throttled', color: '#9467bd' }),
      ],
    }),
    widget(16, 8, 8, 6, 'Cold starts', {
      stat: 'Sum',
      metrics: [metric('ColdStart', { label: 'cold starts' })],
    }),
    widget(0, 14, 12, 6, 'Fetch latency vs upstream latency (ms)', {
      metrics: pct(['FetchLatency', 'UpstreamLatency']),
      yAxis: { left: { min: 0, label: 'ms', showUnits: false } },
    }),
    widget(12, 14, 12, 6, 'Extension overhead (ms, billed)', {
      metrics: pct(['ExtensionOverhead']),
      yAxis: { left: { min: 0, label: 'ms', showUnits: false } },
    }),
    widget(0, 20, 12, 6, 'Duration vs billed duration (ms)', {
      metrics: pct(['Duration', 'BilledDuration']),
      yAxis: { left: { min: 0, label: 'ms', showUnits: false } },
    }),
    widget(12, 20, 12, 6, 'Max memory used (MB)', {
      metrics: [
        metric('MaxMemoryUsed', { stat: 'Maximum', label: 'max' }),
        metric('MaxMemoryUsed', { stat: 'p50', label: 'p50' }),
      ],
      yAxis: { left: { min: 0, label: 'MB', showUnits: false } },
    }),
    widget(0, 26, 12, 6, 'Hit ratio of every function (%)', {
      metrics: everyFunctionRows(o, dimSchema),
      yAxis: { left: { min: 0, max: 100, label: '%', showUnits: false } },
    }),
    widget(12, 26, 12, 6, 'EMF lines CloudWatch could not use (should stay at 0)', {
      stat: 'Sum',
      metrics: [
        [{ expression: `SEARCH('{AWS/Logs,LogGroupName} MetricName="EMFValidationErrors"', 'Sum', ${o.period})`, id: 'valid', label: 'validation errors' }],
        [{ expression: `SEARCH('{AWS/Logs,LogGroupName} MetricName="EMFParsingErrors"', 'Sum', ${o.period})`, id: 'parse', label: 'parsing errors' }],
      ],
    }),
    // Refresh-ahead: a refresh is started by a hit, so it is not a lookup and stays out of the
    // hit ratio; its upstream call is in UpstreamCalls, drawn beside it.
    widget(0, 32, 12, 6, 'Background refreshes (refresh-ahead) and upstream calls', {
      stat: 'Sum',
      metrics: [
        metric('CacheRefreshes', { label: 'background refreshes started', color: '#17becf' }),
        metric('UpstreamCalls', { label: 'all upstream calls', color: '#7f7f7f' }),
      ],
    }),
  ];
  for (const n of ['CacheHits', 'CacheMisses', 'CacheStaleServed']) used.add(n);

  const body = {
    start: '-PT24H',
    periodOverride: 'inherit',
    variables: [{
      type: 'property',
      property: 'FunctionName',
      inputType: 'select',
      id: 'FunctionName',
      label: 'Function',
      defaultValue: '__FIRST',
      visible: true,
      search: `{${dimSchema}} MetricName="CacheHits"`,
      populateFrom: 'FunctionName',
    }],
    widgets,
  };
  return { body, used };
}

function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`make-dashboard: ${e.message}\n`);
    return 2;
  }
  if (o.help) {
    process.stdout.write('usage: make-dashboard [--namespace NS] [--region R] [--function NAME] [--dimension Name=Value]... [--period S] [--functions A,B,...]\n');
    return 0;
  }
  const { body, used } = makeDashboard(o);
  if (existsSync(EMF_C)) {
    const known = writerMetricNames();
    const unknown = [...used].filter((n) => !known.has(n));
    if (unknown.length) {
      process.stderr.write(`make-dashboard: telemetry/emf.c does not emit ${unknown.join(', ')}\n`);
      return 1;
    }
  }
  process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main();
}
