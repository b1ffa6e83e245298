// The alarms beside the dashboard (dashboards/alarms/): the CloudFormation template read with
// PyYAML (the short-form intrinsic tags given constructors), the Terraform file read with
// HashiCorp's HCL parser (@cdktf/hcl2json, HCL compiled to WebAssembly).  Both must define the
// same four alarms with thresholds as parameters, every reference must resolve, and every metric
// and dimension they name must be one stash's EMF writer emits (read from its own lines).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD = path.resolve(ROOT, process.env.BUILD ?? 'build');
const DIR = path.join(ROOT, 'dashboards', 'alarms');
const require = createRequire(path.join(ROOT, 'tests', 'node', 'package.json'));
const { parse: parseHcl } = require('@cdktf/hcl2json');

// Metric names and dimension sets of the writer's own lines.
function emitted() {
  const metrics = new Set();
  const dimSets = new Set();
  let namespace = null;
  for (const s of ['invocation', 'aggregate']) {
    const out = execFileSync(path.join(BUILD, 'tools', 'emf_sample'), [s], { encoding: 'utf8' });
    for (const line of out.split('\n').filter(Boolean)) {
      for (const d of JSON.parse(line)._aws.CloudWatchMetrics) {
        namespace = d.Namespace;
        for (const set of d.Dimensions) dimSets.add(JSON.stringify(set));
        for (const m of d.Metrics) metrics.add(m.Name);
      }
    }
  }
  return { metrics, dimSets, namespace };
}
const EMITTED = emitted();

// CloudFormation YAML to JSON: each short-form tag becomes its long form (Ref, Fn::Sub, ...).
const PY = `
import json, sys, yaml
class L(yaml.SafeLoader): pass
def long(tag, name):
    def c(loader, node):
        if isinstance(node, yaml.ScalarNode):
            v = loader.construct_scalar(node)
            if name == 'Fn::GetAtt': v = v.split('.', 1)
        elif isinstance(node, yaml.SequenceNode): v = loader.construct_sequence(node, deep=True)
        else: v = loader.construct_mapping(node, deep=True)
        return {name: v}
    L.add_constructor(tag, c)
long('!Ref', 'Ref')
for t in ['Sub', 'If', 'Not', 'Equals', 'And', 'Or', 'GetAtt', 'Join', 'Select', 'Split', 'FindInMap', 'ImportValue', 'Base64', 'Cidr', 'GetAZs']:
    long('!' + t, 'Fn::' + t)
long('!Condition', 'Condition')
json.dump(yaml.load(sys.stdin, Loader=L), sys.stdout)
`;
function loadCfn(text) {
  const r = spawnSync('python3', ['-c', PY], { input: text, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyYAML: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const CFN = loadCfn(readFileSync(path.join(DIR, 'stash-alarms.yaml'), 'utf8'));
const TF = await parseHcl('stash-alarms.tf', readFileSync(path.join(DIR, 'stash-alarms.tf'), 'utf8'));

// Every {Ref}, {Fn::Sub} "${Name}" and {Fn::If} condition in a value.
function cfnRefs(v, out = { refs: [], conds: [] }) {
  if (Array.isArray(v)) v.forEach((x) => cfnRefs(x, out));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === 'Ref') out.refs.push(x);
      else if (k === 'Fn::Sub') {
        const s = Array.isArray(x) ? x[0] : x;
        for (const m of s.matchAll(/\$\{([^}!]+)\}/g)) out.refs.push(m[1].split('.')[0]);
      } else if (k === 'Fn::If') out.conds.push(x[0]);
      else if (k === 'Fn::GetAtt') out.refs.push(x[0]);
      cfnRefs(x, out);
    }
  }
  return out;
}

// One alarm, in a shape both files map to: metrics {id: [name, stat, dims]}, expression, etc.
function cfnAlarm(p) {
  const param = (x) => (x && typeof x === 'object' && 'Ref' in x ? { param: x.Ref } : x);
  const dims = (list) => list.map((d) => [d.Name, param(d.Value)]);
  const a = { comparison: p.ComparisonOperator, threshold: param(p.Threshold), missing: p.TreatMissingData, metrics: {} };
  if (p.Metrics) {
    for (const q of p.Metrics) {
      if (q.Expression) a.expression = [q.Id, q.Expression, q.ReturnData];
      else a.metrics[q.Id] = [q.MetricStat.Metric.MetricName, q.MetricStat.Stat, dims(q.MetricStat.Metric.Dimensions), param(q.MetricStat.Metric.Namespace)];
    }
  } else {
    a.metrics.m = [p.MetricName, p.ExtendedStatistic ?? p.Statistic, dims(p.Dimensions), param(p.Namespace)];
  }
  return a;
}
function tfAlarm(r) {
  const param = (x) => {
    const m = typeof x === 'string' && x.match(/^\$\{var\.(\w+)\}$/);
    return m ? { param: m[1] } : x;
  };
  const dims = (o) => Object.entries(o).map(([k, v]) => [k, param(v)]);
  const a = { comparison: r.comparison_operator, threshold: param(r.threshold), missing: r.treat_missing_data, metrics: {} };
  if (r.metric_query) {
    for (const q of r.metric_query) {
      if (q.expression) a.expression = [q.id, q.expression, q.return_data];
      else {
        const m = q.metric[0];
        a.metrics[q.id] = [m.metric_name, m.stat, dims(m.dimensions), param(m.namespace)];
      }
    }
  } else {
    a.metrics.m = [r.metric_name, r.extended_statistic ?? r.statistic, dims(r.dimensions), param(r.namespace)];
  }
  return a;
}

const cfnAlarms = Object.values(CFN.Resources).map((r) => cfnAlarm(r.Properties));
const tfAlarms = Object.values(TF.resource.aws_cloudwatch_metric_alarm).map((l) => tfAlarm(l[0]));

// The four alarms by what they watch.
function kinds(alarms) {
  const k = {};
  for (const a of alarms) {
    const names = Object.values(a.metrics).map((m) => m[0]).sort().join('+');
    k[names] = a;
  }
  return k;
}

test('CloudFormation: four alarms, thresholds are parameters, every reference resolves', () => {
  assert.equal(CFN.AWSTemplateFormatVersion, '2010-09-09');
  const res = Object.entries(CFN.Resources);
  assert.equal(res.length, 4);
  for (const [, r] of res) assert.equal(r.Type, 'AWS::CloudWatch::Alarm');
  const known = new Set([...Object.keys(CFN.Parameters), ...Object.keys(CFN.Resources), 'AWS::NoValue', 'AWS::Region', 'AWS::AccountId']);
  const { refs, conds } = cfnRefs([CFN.Resources, CFN.Outputs, CFN.Conditions]);
  for (const r of refs) assert.ok(known.has(r), `!Ref/!Sub ${r} names nothing`);
  for (const c of conds) assert.ok(c in CFN.Conditions, `condition ${c}`);
  const k = kinds(cfnAlarms);
  assert.deepEqual(Object.keys(k).sort(), ['CacheHits+CacheMisses+CacheStaleServed', 'ExtensionOverhead',
    'UpstreamCalls+UpstreamErrors', 'UpstreamThrottles']);
  const P = CFN.Parameters;
  const hr = k['CacheHits+CacheMisses+CacheStaleServed'];
  assert.equal(hr.comparison, 'LessThanThreshold');
  assert.deepEqual(hr.threshold, { param: 'HitRatioThresholdPercent' });
  assert.equal(hr.expression[1], 'IF(hits + misses + stale > 0, 100 * hits / (hits + misses + stale))');
  const th = k.UpstreamThrottles;
  assert.equal(th.comparison, 'GreaterThanThreshold');
  assert.deepEqual(th.threshold, { param: 'ThrottlesThreshold' });
  assert.equal(P.ThrottlesThreshold.Default, 0); // above 0
  const er = k['UpstreamCalls+UpstreamErrors'];
  assert.equal(er.expression[1], 'IF(calls > 0, 100 * errors / calls)');
  assert.deepEqual(er.threshold, { param: 'ErrorRatePercentThreshold' });
  const ov = k.ExtensionOverhead;
  assert.equal(ov.metrics.m[1], 'p99');
  assert.deepEqual(ov.threshold, { param: 'OverheadP99ThresholdMs' });
  for (const a of cfnAlarms) {
    assert.equal(a.missing, 'notBreaching');
    assert.equal(P[a.threshold.param].Type, 'Number');
    assert.equal(typeof P[a.threshold.param].Default, 'number');
  }
});

test('Terraform: the same four alarms, thresholds are variables with the same defaults', () => {
  const vars = Object.fromEntries(Object.entries(TF.variable).map(([k, v]) => [k, v[0]]));
  const text = readFileSync(path.join(DIR, 'stash-alarms.tf'), 'utf8');
  for (const m of text.matchAll(/\bvar\.(\w+)/g)) assert.ok(m[1] in vars, `var.${m[1]} is not declared`);
  for (const m of text.matchAll(/aws_cloudwatch_metric_alarm\.(\w+)\./g)) {
    assert.ok(m[1] in TF.resource.aws_cloudwatch_metric_alarm, `resource ${m[1]}`);
  }
  const c = kinds(cfnAlarms);
  const t = kinds(tfAlarms);
  assert.deepEqual(Object.keys(t).sort(), Object.keys(c).sort());
  const cfnToTf = (name) => name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
  for (const [kind, ca] of Object.entries(c)) {
    const ta = t[kind];
    assert.equal(ta.comparison, ca.comparison, kind);
    assert.equal(ta.missing, ca.missing, kind);
    assert.equal(ta.threshold.param, cfnToTf(ca.threshold.param), kind);
    assert.equal(vars[ta.threshold.param].default, CFN.Parameters[ca.threshold.param].Default, `${kind} default`);
    assert.deepEqual(ta.expression, ca.expression, kind);
    const strip = (ms) => Object.fromEntries(Object.entries(ms).map(([id, m]) => [id, [m[0], m[1], m[2].map((d) => d[0])]]));
    assert.deepEqual(strip(ta.metrics), strip(ca.metrics), kind);
  }
  assert.equal(vars.namespace.default, CFN.Parameters.Namespace.Default);
  assert.equal(vars.period_seconds.default, CFN.Parameters.PeriodSeconds.Default);
  assert.equal(vars.evaluation_periods.default, CFN.Parameters.EvaluationPeriods.Default);
});

test('alarm metrics and dimensions are ones the EMF writer emits', () => {
  for (const [file, alarms, ns] of [['yaml', cfnAlarms, CFN.Parameters.Namespace.Default],
    ['tf', tfAlarms, TF.variable.namespace[0].default]]) {
    assert.equal(ns, EMITTED.namespace, `${file}: default namespace`);
    for (const a of alarms) {
      for (const [id, [name, stat, dims]] of Object.entries(a.metrics)) {
        assert.ok(EMITTED.metrics.has(name), `${file}: ${name} is not emitted`);
        assert.ok(EMITTED.dimSets.has(JSON.stringify(dims.map((d) => d[0]))), `${file}: ${name} dimensions ${dims}`);
        assert.match(stat, /^(Sum|p99)$/, `${file} ${id}`);
      }
      if (a.expression) {
        const [id, expr, ret] = a.expression;
        assert.equal(ret, true, `${file}: ${id} returns the data`);
        const used = [...expr.replace(/\b[A-Z_]+\(/g, '(').matchAll(/\b([a-z]\w*)\b/g)].map((m) => m[1]);
        for (const u of used) assert.ok(u in a.metrics, `${file}: ${expr} names ${u}`);
        // An alarm's expression returns one series: no SEARCH, no METRICS().
        assert.doesNotMatch(expr, /SEARCH|METRICS/);
      }
    }
  }
});

test('the parsers refuse what is broken', async () => {
  assert.throws(() => loadCfn('Resources:\n  A: !Bogus x\n'), /PyYAML/);
  await assert.rejects(parseHcl('bad.tf', 'resource "aws_cloudwatch_metric_alarm" "x" {\n  threshold = \n'));
});
