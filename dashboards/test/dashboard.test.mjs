// The dashboard body and the Logs Insights queries: the body's structure (CloudWatch's dashboard
// body structure and syntax, CloudWatch API Reference), and every metric or field they name is one stash's
// writer emits.  The names come from lines written by the writer itself (build/tools/emf_sample),
// not from a list kept here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { makeDashboard, writerMetricNames } from '../make-dashboard.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD = path.resolve(ROOT, process.env.BUILD ?? 'build');
const DASH = path.join(ROOT, 'dashboards');

// What the writer emits: metric names (with units and dimension sets) and root members.
function emitted() {
  const metrics = new Map();
  const dimSets = new Set();
  const members = new Set();
  for (const s of ['invocation', 'aggregate', 'sampled']) {
    const out = execFileSync(path.join(BUILD, 'tools', 'emf_sample'), [s], { encoding: 'utf8' });
    for (const line of out.split('\n').filter(Boolean)) {
      const doc = JSON.parse(line);
      for (const k of Object.keys(doc)) members.add(k);
      for (const d of doc._aws.CloudWatchMetrics) {
        for (const set of d.Dimensions) dimSets.add(JSON.stringify(set));
        for (const m of d.Metrics) metrics.set(m.Name, m.Unit);
      }
    }
  }
  return { metrics, dimSets, members };
}
const EMITTED = emitted();

const STATS = /^(SampleCount|Average|Sum|Minimum|Maximum|p\d{1,2}(\.\d+)?|p100)$/;
const VIEWS = new Set(['timeSeries', 'singleValue', 'gauge', 'bar', 'pie', 'table']);
const RENDER = new Set(['id', 'label', 'color', 'stat', 'period', 'visible', 'yAxis', 'region', 'accountId']);
const FUNCS = /^[A-Z_]+$/; // metric math functions are upper case: IF, SUM, SEARCH, FILL...

// Errors of a dashboard body; refs collects [namespace, metricName, dimensionNames] it names.
export function validateBody(body, refs = []) {
  const err = [];
  const e = (where, msg) => err.push(`${where}: ${msg}`);
  for (const k of Object.keys(body)) {
    if (!['widgets', 'variables', 'start', 'end', 'periodOverride'].includes(k)) e('body', `unknown key ${k}`);
  }
  if (!Array.isArray(body.widgets) || body.widgets.length > 500) e('body', 'widgets: array of at most 500');
  if (body.start !== undefined && !/^-P(T?\d+[WDHMS])+$|^-PT?\d+[WDHMS]/.test(body.start)) e('body', `start ${body.start}`);
  if (body.periodOverride !== undefined && !['auto', 'inherit'].includes(body.periodOverride)) e('body', 'periodOverride');
  for (const [i, v] of (body.variables ?? []).entries()) {
    const w = `variables[${i}]`;
    if (!['property', 'pattern'].includes(v.type)) e(w, 'type');
    if (typeof v[v.type] !== 'string' || !v[v.type]) e(w, `needs "${v.type}"`);
    if (!['input', 'radio', 'select'].includes(v.inputType)) e(w, 'inputType');
    if (typeof v.id !== 'string' || !v.id) e(w, 'id');
    if (v.inputType !== 'input' && !v.values && !(v.search && v.populateFrom)) e(w, 'select/radio needs values or search+populateFrom');
    if (v.search) refs.push(...searchRefs(v.search, w, e));
  }
  const rects = [];
  for (const [i, wd] of (body.widgets ?? []).entries()) {
    const w = `widgets[${i}] ${wd?.properties?.title ?? wd?.type}`;
    if (!['metric', 'text', 'log', 'alarm', 'explorer'].includes(wd.type)) e(w, `type ${wd.type}`);
    if ((wd.x === undefined) !== (wd.y === undefined)) e(w, 'x and y go together');
    const width = wd.width ?? 6;
    const height = wd.height ?? 6;
    if (!Number.isInteger(width) || width < 1 || width > 24) e(w, `width ${width}`);
    if (!Number.isInteger(height) || height < 1 || height > 1000) e(w, `height ${height}`);
    if (wd.x !== undefined) {
      if (!Number.isInteger(wd.x) || wd.x < 0 || wd.x > 23) e(w, `x ${wd.x}`);
      if (!Number.isInteger(wd.y) || wd.y < 0) e(w, `y ${wd.y}`);
      if (wd.x + width > 24) e(w, `x + width = ${wd.x + width} passes the 24-column grid`);
      for (const r of rects) {
        if (wd.x < r.x + r.w && r.x < wd.x + width && wd.y < r.y + r.h && r.y < wd.y + height) {
          e(w, `overlaps ${r.name}`);
        }
      }
      rects.push({ x: wd.x, y: wd.y, w: width, h: height, name: w });
    }
    const p = wd.properties;
    if (!p || typeof p !== 'object') {
      e(w, 'properties required');
      continue;
    }
    if (wd.type === 'text' && typeof p.markdown !== 'string') e(w, 'markdown required');
    if (wd.type === 'log' && (typeof p.query !== 'string' || typeof p.region !== 'string')) e(w, 'query and region required');
    if (wd.type !== 'metric') continue;
    if (typeof p.region !== 'string' || !p.region) e(w, 'region required');
    if (p.period !== undefined && (!Number.isInteger(p.period) || p.period % 60)) e(w, `period ${p.period}`);
    if (p.stat !== undefined && !STATS.test(p.stat)) e(w, `stat ${p.stat}`);
    if (p.view !== undefined && !VIEWS.has(p.view)) e(w, `view ${p.view}`);
    if (!Array.isArray(p.metrics) || !p.metrics.length || p.metrics.length > 500) {
      e(w, 'metrics: 1 to 500 rows');
      continue;
    }
    const ids = new Set();
    const exprs = [];
    let prev = null;
    for (const [j, row] of p.metrics.entries()) {
      const r = `${w} metrics[${j}]`;
      if (!Array.isArray(row) || !row.length) {
        e(r, 'not a non-empty array');
        continue;
      }
      const last = row[row.length - 1];
      const props = last && typeof last === 'object' ? last : {};
      for (const k of Object.keys(props)) {
        if (!RENDER.has(k) && k !== 'expression') e(r, `unknown rendering property ${k}`);
      }
      if (props.stat !== undefined && !STATS.test(props.stat)) e(r, `stat ${props.stat}`);
      if (props.id !== undefined) {
        if (!/^[a-z][A-Za-z0-9_]*$/.test(props.id)) e(r, `id ${props.id} must start lower case`);
        if (ids.has(props.id)) e(r, `id ${props.id} twice`);
        ids.add(props.id);
      }
      if (props.expression !== undefined) {
        if (row.length !== 1 || typeof props.expression !== 'string') e(r, 'an expression row is [{expression, id}]');
        if (!props.id) e(r, 'expression without id');
        exprs.push([r, props.expression]);
        continue;
      }
      const tokens = row.slice(0, typeof last === 'object' ? -1 : row.length);
      if (tokens.length < 2 || tokens.length % 2 || !tokens.every((t) => typeof t === 'string' && t)) {
        e(r, 'want [Namespace, MetricName, (DimName, DimValue)*, {props}]');
        continue;
      }
      // "." repeats the previous row's token at the same place.
      const full = tokens.map((t, k) => (t === '.' ? prev?.[k] : t));
      if (full.some((t) => t === undefined)) {
        e(r, '"." with nothing above it');
        continue;
      }
      prev = full;
      refs.push([full[0], full[1], full.slice(2).filter((_, k) => k % 2 === 0), r]);
      if (!props.stat && !p.stat) e(r, 'no stat on the row or the widget');
    }
    for (const [r, x] of exprs) {
      const bare = x.replace(/'[^']*'/g, "''");
      for (const m of bare.matchAll(/\b([A-Za-z_][A-Za-z0-9_]*)\b(\s*\()?/g)) {
        if (m[2] || FUNCS.test(m[1])) continue;
        if (!ids.has(m[1])) e(r, `expression names '${m[1]}', not an id of this widget`);
      }
      for (const s of x.matchAll(/SEARCH\('([^']*)'/g)) refs.push(...searchRefs(s[1], r, e));
    }
  }
  return err;
}

// {Namespace,Dim,...} MetricName="X" -> [[Namespace, X, [Dim...]]]
function searchRefs(s, where, e) {
  const m = s.match(/^\{([^}]*)\}\s+MetricName="([^"]+)"$/);
  if (!m) {
    e(where, `search '${s}' is not {Namespace,Dims} MetricName="Name"`);
    return [];
  }
  const [ns, ...dims] = m[1].split(',');
  return [[ns, m[2], dims, where]];
}

const committed = JSON.parse(readFileSync(path.join(DASH, 'stash-dashboard.json'), 'utf8'));

test('stash-dashboard.json is what make-dashboard.mjs generates', () => {
  assert.deepEqual(committed, JSON.parse(JSON.stringify(makeDashboard().body)),
    'regenerate: node dashboards/make-dashboard.mjs > dashboards/stash-dashboard.json');
});

test('the dashboard body is well formed: widgets, 24-column grid, metric rows, variables', () => {
  assert.deepEqual(validateBody(committed), []);
  const types = committed.widgets.map((w) => w.type);
  assert.ok(types.filter((t) => t === 'metric').length >= 10);
  assert.equal(committed.variables[0].property, 'FunctionName');
});

test('every Stash metric the dashboard names is one the writer emits, with its dimension set', () => {
  const refs = [];
  assert.deepEqual(validateBody(committed, refs), []);
  const ours = refs.filter(([ns]) => ns === 'Stash');
  assert.ok(ours.length > 20);
  for (const [, name, dims, where] of ours) {
    assert.ok(EMITTED.metrics.has(name), `${where}: ${name} is not emitted by the writer`);
    assert.ok(EMITTED.dimSets.has(JSON.stringify(dims)), `${where}: dimensions ${dims} are not a set the writer uses`);
  }
  // And the dashboard shows every metric of the main line.
  const shown = new Set(ours.map((r) => r[1]));
  const missing = [...EMITTED.metrics.keys()].filter((n) => !shown.has(n));
  assert.deepEqual(missing, ['InitDuration'], 'only InitDuration (once per environment) is left to the Lambda console');
  for (const [ns] of refs) assert.ok(['Stash', 'AWS/Logs'].includes(ns), ns);
});

test('the generator reads the same metric names from telemetry/emf.c as the writer emits', () => {
  assert.deepEqual([...writerMetricNames()].sort(), [...EMITTED.metrics.keys()].sort());
});

test('the validator refuses what CloudWatch would', () => {
  const bad = (mutate) => {
    const b = structuredClone(committed);
    mutate(b);
    return validateBody(b);
  };
  assert.match(bad((b) => { b.widgets[1].x = 20; }).join(), /24-column grid/);
  assert.match(bad((b) => { b.widgets[2].y = 3; }).join(), /overlaps/);
  assert.match(bad((b) => { b.widgets[3].properties.metrics[0] = ['Stash', 'UpstreamCalls', 'FunctionName']; }).join(), /DimName, DimValue/);
  assert.match(bad((b) => { b.widgets[1].properties.metrics[4][0].expression = 'hits / nope'; }).join(), /'nope'/);
  assert.match(bad((b) => { b.widgets[1].properties.metrics[0][4].id = 'Hits'; }).join(), /lower case/);
  assert.match(bad((b) => { delete b.widgets[4].properties.region; }).join(), /region/);
  assert.match(bad((b) => { b.widgets[5].properties.stat = 'Median'; }).join(), /stat Median/);
  const typo = structuredClone(committed);
  typo.widgets[3].properties.metrics[1][1] = 'SecretManagerCalls';
  const refs = [];
  validateBody(typo, refs);
  assert.ok(refs.some((r) => r[1] === 'SecretManagerCalls' && !EMITTED.metrics.has(r[1])));
});

test('make-dashboard: dimensions, namespace and region options; bad arguments refused', () => {
  const { body } = makeDashboard({ namespace: 'Team/Stash', region: 'eu-west-1', fn: 'orders', dims: [['Env', 'prod']] });
  const refs = [];
  assert.deepEqual(validateBody(body, refs), []);
  for (const [ns, , dims] of refs.filter((r) => r[0] !== 'AWS/Logs')) {
    assert.equal(ns, 'Team/Stash');
    assert.deepEqual(dims, ['FunctionName', 'Env']);
  }
  assert.ok(body.widgets.filter((w) => w.type === 'metric').every((w) => w.properties.region === 'eu-west-1'));
  const run = (args) => spawnSync(process.execPath, [path.join(DASH, 'make-dashboard.mjs'), ...args], { encoding: 'utf8' });
  const ok = run(['--dimension', 'Env=prod', '--function', 'orders']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).variables[0].search, '{Stash,FunctionName,Env} MetricName="CacheHits"');
  for (const args of [['--namespace', 'AWS/Lambda'], ['--dimension', 'Env'], ['--period', '90'], ['--region', 'mars'], ['--bogus']]) {
    assert.equal(run(args).status, 2, args.join(' '));
  }
});

const everyFunction = (body) => body.widgets.find((w) => w.properties?.title === 'Hit ratio of every function (%)');
const visibleRows = (w) => w.properties.metrics.filter((r) => r[r.length - 1]?.visible !== false);

test('hit ratio: a period without a lookup has no point, never 100 %', () => {
  const main = committed.widgets.find((w) => w.properties?.title === 'Cache hit ratio (%)');
  const ratio = visibleRows(main);
  assert.equal(ratio.length, 1);
  // IF without a false branch drops the data point where the condition is false.
  assert.equal(ratio[0][0].expression, 'IF(lookups > 0, 100 * hits / lookups)');
  for (const w of committed.widgets) {
    for (const r of w.properties?.metrics ?? []) {
      assert.doesNotMatch(r[0]?.expression ?? '', /IF\([^)]*\)\s*,\s*100\)|,\s*100\)$/, `${w.properties.title}: 100 when idle`);
    }
  }
});

test('"Hit ratio of every function": one line per function, not one fleet-wide line', () => {
  // Without names: each metric's SEARCH returns one series per function; the visible ratio keeps
  // them apart (no SUM) and its empty label leaves each line the function's own label.
  const w = everyFunction(committed);
  const rows = w.properties.metrics;
  const search = Object.fromEntries(rows.filter((r) => /^SEARCH\(/.test(r[0].expression ?? ''))
    .map((r) => [r[0].id, r[0].expression.match(/MetricName="(\w+)"/)[1]]));
  assert.deepEqual(search, { h: 'CacheHits', m: 'CacheMisses', s: 'CacheStaleServed' });
  const vis = visibleRows(w);
  assert.equal(vis.length, 1);
  assert.equal(vis[0][0].expression, '100 * h / (h + m + s)');
  assert.equal(vis[0][0].label, '');
  for (const r of rows) assert.doesNotMatch(r[0].expression ?? '', /\b(SUM|AVG|MAX|MIN)\(/, 'an aggregate makes one fleet line');

  // With names: one expression per function over that function's own metrics.
  const names = ['orders-api', 'billing', 'auth_v2'];
  const { body } = makeDashboard({ functions: names, dims: [['Env', 'prod']] });
  assert.deepEqual(validateBody(body), []);
  const ew = everyFunction(body);
  const lines = visibleRows(ew);
  assert.deepEqual(lines.map((r) => r[0].label), names);
  const metricRows = ew.properties.metrics.filter((r) => typeof r[0] === 'string');
  lines.forEach((r, i) => {
    const ids = [...r[0].expression.matchAll(/\b([a-z]\d+)\b/g)].map((m) => m[1]);
    assert.deepEqual([...new Set(ids)].sort(), [`h${i}`, `m${i}`, `s${i}`], r[0].expression);
    assert.match(r[0].expression, /^IF\(h\d+ \+ m\d+ \+ s\d+ > 0, 100 \* h\d+ \/ \(h\d+ \+ m\d+ \+ s\d+\)\)$/);
    for (const id of ids) {
      const row = metricRows.find((m) => m[m.length - 1].id === id);
      assert.deepEqual(row.slice(2, -1), ['FunctionName', names[i], 'Env', 'prod'], id);
    }
  });
  const run = (args) => spawnSync(process.execPath, [path.join(DASH, 'make-dashboard.mjs'), ...args], { encoding: 'utf8' });
  const twice = run(['--functions', 'a,b', '--functions', 'a,']);
  assert.equal(twice.status, 0, twice.stderr);
  assert.deepEqual(visibleRows(everyFunction(JSON.parse(twice.stdout))).map((r) => r[0].label), ['a', 'b']);
  assert.equal(run(['--functions', 'a b']).status, 2);
  assert.equal(run(['--functions', Array.from({ length: 101 }, (_, i) => `f${i}`).join(',')]).status, 2);
  const ok = run(['--functions', 'orders-api, billing']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(visibleRows(everyFunction(JSON.parse(ok.stdout))).length, 2);
});

// Logs Insights commands, from "CloudWatch Logs Insights language query syntax"
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CWL_QuerySyntax.html, its table of
// commands, and its pages for unnest, dedup and the rest).  A word that is not one of them, such as
// "expand", is not a command CloudWatch runs.
const COMMANDS = new Set(['anomaly', 'addtotals', 'dedup', 'diff', 'display', 'fields', 'filter',
  'filterIndex', 'limit', 'lookup', 'parse', 'pattern', 'sort', 'SOURCE', 'stats', 'unmask', 'unnest']);

function queryText(f) {
  return readFileSync(path.join(DASH, 'queries', f), 'utf8')
    .split('\n').filter((l) => !l.trimStart().startsWith('#')).join('\n');
}

// Strings and regular expressions blanked, so a "|" or a word inside one is not read as syntax.
function blankLiterals(q) {
  return q.replace(/"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'/g, '""')
    .replace(/(\blike\s+|=~\s*)\/(?:\\.|[^/\\])*\//g, '$1//');
}

// The first word of each command of a query (commands are separated by "|").
export function queryCommands(q) {
  return blankLiterals(q).split('|').map((c) => c.trim().match(/^[A-Za-z]+/)?.[0] ?? c.trim());
}

const queryFiles = () => readdirSync(path.join(DASH, 'queries')).filter((f) => f.endsWith('.txt'));

test('Logs Insights queries use documented commands only', () => {
  const files = queryFiles();
  assert.ok(files.length >= 4, files.join());
  for (const f of files) {
    const cmds = queryCommands(queryText(f));
    assert.ok(cmds.length >= 2, `${f}: ${cmds}`);
    for (const c of cmds) assert.ok(COMMANDS.has(c), `${f}: '${c}' is not a Logs Insights command`);
  }
  // The check itself: an undocumented word is caught, a "|" inside a literal is not a command.
  assert.deepEqual(queryCommands('filter x > 1 | expand FetchLatency | limit 5'), ['filter', 'expand', 'limit']);
  assert.deepEqual(queryCommands('filter @message like /a|b/ and y = "c | d" | limit 5'), ['filter', 'limit']);
});

// Logs Insights: every field a query names is a member of the writer's lines, an @field, or a
// name the query itself defines with "as" or "into".
const KEYWORDS = new Set([...COMMANDS, 'by', 'as', 'into', 'and', 'or', 'not', 'asc', 'desc', 'in', 'like']);

test('Logs Insights queries name only fields the writer emits', () => {
  for (const f of queryFiles()) {
    const q = queryText(f);
    assert.ok(q.trim(), `${f} is empty`);
    const body = blankLiterals(q);
    const aliases = new Set([...body.matchAll(/\b(?:as|into)\s+([A-Za-z_]\w*)/g)].map((m) => m[1]));
    for (const m of body.matchAll(/(@?)\b([A-Za-z_]\w*)\b(\s*\()?/g)) {
      const [, at, name, call] = m;
      if (at || call || KEYWORDS.has(name) || aliases.has(name) || /^\d/.test(name)) continue;
      if (/^\d+[smhd]$/.test(name)) continue;
      assert.ok(EMITTED.members.has(name), `${f}: '${name}' is not in any line the writer emits`);
    }
  }
});
