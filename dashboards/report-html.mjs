// report-html: the cost report as one self-contained HTML page (stash-report.mjs --html FILE).
// Inline CSS and SVG only: no script, no font, no image or style fetched from anywhere (a
// Content-Security-Policy of default-src 'none' says so to the browser too), so the file reads the
// same offline or attached to a ticket.  The per-function table sorts without script: one table is
// rendered per sort key and a radio button (the column headers are its labels) shows one of them.
import {
  BASELINES, bucketFor, bucketize, costRows, assumptionRows, FUNCTION_COLUMNS, functionRow,
  usd, pct, cnt, iso, n3,
} from './stash-report.mjs';

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1',
  '#ff9da7', '#9c755f', '#17becf'];
const REST_COLOR = '#666666';
const REFRESH_COLOR = '#17becf'; // the dashboard's colour for CacheRefreshes
const TOP = 10; // functions drawn one by one; the rest are summed into one line

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const fx = (x) => (Math.round(x * 10) / 10).toString();

// Compact number for axis ticks: 1200 -> 1.2k.
function short(x) {
  const a = Math.abs(x);
  if (a >= 1e6) return `${+(x / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(x / 1e3).toFixed(1)}k`;
  return `${+x.toFixed(a < 1 && a > 0 ? 2 : 1)}`;
}

// About five round ticks from 0 to max.
function niceTicks(max) {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  if (ticks[ticks.length - 1] < max) ticks.push(+(ticks[ticks.length - 1] + step).toPrecision(12));
  return ticks;
}

function timeLabel(ms, bucketMs) {
  const d = new Date(ms).toISOString();
  if (bucketMs >= 86400000) return d.slice(5, 10);
  if (bucketMs >= 6 * 3600000) return `${d.slice(5, 10)} ${d.slice(11, 13)}h`;
  return d.slice(11, 16);
}

// A chart frame: plot area, y grid and labels, x labels.  Returns {svg parts, x(i), y(v)}.
function frame({ w = 600, h = 270, n, yTicks, yFmt, xLabel, bucketMs, starts, title }) {
  const m = { l: 52, r: 14, t: 12, b: 40 };
  const pw = w - m.l - m.r;
  const ph = h - m.t - m.b;
  const yMax = yTicks[yTicks.length - 1];
  const y = (v) => m.t + ph - (v / yMax) * ph;
  const x = (i) => m.l + (n <= 1 ? pw / 2 : (i + 0.5) * (pw / n));
  const parts = [`<svg viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(title)}" xmlns="http://www.w3.org/2000/svg">`];
  for (const t of yTicks) {
    parts.push(`<line x1="${m.l}" x2="${w - m.r}" y1="${fx(y(t))}" y2="${fx(y(t))}" class="grid"/>`);
    parts.push(`<text x="${m.l - 6}" y="${fx(y(t) + 4)}" class="tick" text-anchor="end">${esc(yFmt(t))}</text>`);
  }
  if (starts) {
    const every = Math.max(1, Math.ceil(n / 8));
    for (let i = 0; i < n; i += every) {
      parts.push(`<text x="${fx(x(i))}" y="${h - m.b + 16}" class="tick" text-anchor="middle">${esc(timeLabel(starts[i], bucketMs))}</text>`);
    }
  }
  parts.push(`<line x1="${m.l}" x2="${w - m.r}" y1="${m.t + ph}" y2="${m.t + ph}" class="axis"/>`);
  if (xLabel) parts.push(`<text x="${m.l + pw / 2}" y="${h - 6}" class="axis-label" text-anchor="middle">${esc(xLabel)}</text>`);
  return { parts, x, y, m, pw, ph, w, h };
}

function legend(items) {
  return `<ul class="legend">${items.map(([name, color, dashed]) =>
    `<li><svg width="18" height="10" aria-hidden="true"><line x1="0" x2="18" y1="5" y2="5" stroke="${color}" stroke-width="3"${dashed ? ' stroke-dasharray="4 3"' : ''}/></svg>${esc(name)}</li>`).join('')}</ul>`;
}

// Hit ratio per bucket, one line per function (top ten by calls avoided) and the rest summed.  A
// bucket without a lookup has no point: an idle function shows a gap, not 100 %.
function hitRatioChart(r, bz) {
  const fns = r.byFunction.map((f) => f.functionName);
  const top = fns.slice(0, TOP);
  const rest = fns.slice(TOP);
  const lines = top.map((name, i) => ({ name, color: PALETTE[i], buckets: bz.byFn.get(name) }));
  if (rest.length) {
    const summed = bz.starts.map((startMs, i) => {
      const b = { startMs, cacheHits: 0, cacheMisses: 0, staleServed: 0 };
      for (const name of rest) {
        const x = bz.byFn.get(name)[i];
        b.cacheHits += x.cacheHits;
        b.cacheMisses += x.cacheMisses;
        b.staleServed += x.staleServed;
      }
      return b;
    });
    lines.push({ name: `the other ${rest.length} functions`, color: REST_COLOR, dashed: true, buckets: summed });
  }
  const n = bz.starts.length;
  const f = frame({ n, yTicks: [0, 20, 40, 60, 80, 100], yFmt: (v) => `${v} %`, bucketMs: bz.bucketMs,
    starts: bz.starts, xLabel: `time (UTC), ${bz.label} buckets`, title: 'hit ratio over time per function' });
  for (const l of lines) {
    const pts = l.buckets.map((b) => {
      const lookups = b.cacheHits + b.cacheMisses + b.staleServed;
      return lookups ? 100 * b.cacheHits / lookups : null;
    });
    let d = '';
    pts.forEach((v, i) => {
      if (v === null) return;
      d += `${i > 0 && pts[i - 1] !== null ? 'L' : 'M'}${fx(f.x(i))},${fx(f.y(v))}`;
    });
    if (d) {
      f.parts.push(`<path d="${d}" fill="none" stroke="${l.color}" stroke-width="2"${l.dashed ? ' stroke-dasharray="5 4"' : ''}/>`);
    }
    pts.forEach((v, i) => {
      if (v !== null) f.parts.push(`<circle cx="${fx(f.x(i))}" cy="${fx(f.y(v))}" r="2.5" fill="${l.color}"/>`);
    });
  }
  f.parts.push('</svg>');
  return `${f.parts.join('')}${legend(lines.map((l) => [l.name, l.color, l.dashed]))}`;
}

// Upstream calls made against calls avoided (per-request: hits + single-flight waits, less the hits
// that started a background refresh), stacked.  Those hits are drawn between the two: as in the
// totals, a hit whose refresh-ahead went upstream did not avoid a call.
function callsChart(bz) {
  const n = bz.starts.length;
  const made = bz.all.map((b) => b.upstreamCalls);
  // A refresh is started by a hit of the same record, so a bucket never has more refreshes than
  // hits; the min only keeps a malformed line from drawing a negative bar.
  const refreshed = bz.all.map((b) => Math.min(b.cacheRefreshes, b.cacheHits + b.singleFlightWaits));
  const avoided = bz.all.map((b, i) => b.cacheHits + b.singleFlightWaits - refreshed[i]);
  const ticks = niceTicks(Math.max(1, ...made.map((v, i) => v + refreshed[i] + avoided[i])));
  const f = frame({ n, yTicks: ticks, yFmt: short, bucketMs: bz.bucketMs, starts: bz.starts,
    xLabel: `time (UTC), ${bz.label} buckets`, title: 'upstream calls made and avoided over time' });
  const bw = Math.max(1, Math.min(40, (f.pw / n) * 0.8));
  for (let i = 0; i < n; i++) {
    const x0 = f.x(i) - bw / 2;
    const yMade = f.y(made[i]);
    const yRef = f.y(made[i] + refreshed[i]);
    const yTop = f.y(made[i] + refreshed[i] + avoided[i]);
    if (made[i]) f.parts.push(`<rect x="${fx(x0)}" y="${fx(yMade)}" width="${fx(bw)}" height="${fx(f.y(0) - yMade)}" fill="#e15759"/>`);
    if (refreshed[i]) f.parts.push(`<rect x="${fx(x0)}" y="${fx(yRef)}" width="${fx(bw)}" height="${fx(yMade - yRef)}" fill="${REFRESH_COLOR}"/>`);
    if (avoided[i]) f.parts.push(`<rect x="${fx(x0)}" y="${fx(yTop)}" width="${fx(bw)}" height="${fx(yRef - yTop)}" fill="#59a14f"/>`);
  }
  f.parts.push('</svg>');
  return `${f.parts.join('')}${legend([['upstream calls made', '#e15759'],
    ['hits that started a background refresh', REFRESH_COLOR],
    ['calls avoided (hits + single-flight waits, less those)', '#59a14f']])}`;
}

// Fetch latencies split into hits and the rest.  FetchLatency holds one value per request,
// unlabelled; a hit never waits for the network, so in each record its CacheHits fastest values
// are taken as the hits (in proportion when the values were sampled or cut).
export function splitFetchLatency(records) {
  const hits = [];
  const others = [];
  for (const r of records) {
    const v = [...r.FetchLatency].sort((a, b) => a - b);
    if (!v.length) continue;
    const total = Math.max(r.requests, r.CacheHits + r.CacheMisses + r.CacheStaleServed + r.singleFlightWaits);
    const nHit = v.length === total || total === 0 ? Math.min(r.CacheHits, v.length)
      : Math.round(v.length * r.CacheHits / total);
    hits.push(...v.slice(0, nHit));
    others.push(...v.slice(nHit));
  }
  return { hits, others };
}

// Histogram of fetch latency on a log axis: 5 bins per decade.
function latencyChart(records) {
  const { hits, others } = splitFetchLatency(records);
  const allv = [...hits, ...others].filter((v) => v > 0);
  const w = 600;
  const h = 270;
  if (!allv.length) return '<p class="empty">No FetchLatency values in the input.</p>';
  const per = 5;
  const lo = Math.floor(Math.log10(Math.min(...allv)) * per);
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...allv)) * per + 1e-9));
  const nb = hi - lo;
  const bin = (v) => Math.min(nb - 1, Math.max(0, Math.floor(Math.log10(Math.max(v, 10 ** (lo / per))) * per - lo)));
  const hc = new Array(nb).fill(0);
  const oc = new Array(nb).fill(0);
  for (const v of hits) hc[bin(v)]++;
  for (const v of others) oc[bin(v)]++;
  const ticks = niceTicks(Math.max(1, ...hc, ...oc));
  const f = frame({ w, h, n: nb, yTicks: ticks, yFmt: short, xLabel: 'FetchLatency, ms (log scale)',
    title: 'fetch latency distribution, hits against misses' });
  const slot = f.pw / nb;
  for (let i = 0; i < nb; i++) {
    const x0 = f.m.l + i * slot;
    for (const [c, color, off] of [[hc[i], '#59a14f', 0.08], [oc[i], '#e15759', 0.5]]) {
      if (c) f.parts.push(`<rect x="${fx(x0 + slot * off)}" y="${fx(f.y(c))}" width="${fx(slot * 0.42)}" height="${fx(f.y(0) - f.y(c))}" fill="${color}"/>`);
    }
  }
  for (let k = Math.ceil(lo / per); k <= Math.floor(hi / per); k++) {
    const xk = f.m.l + (k * per - lo) * slot;
    f.parts.push(`<line x1="${fx(xk)}" x2="${fx(xk)}" y1="${f.y(0)}" y2="${f.y(0) + 5}" class="axis"/>`);
    f.parts.push(`<text x="${fx(xk)}" y="${f.y(0) + 17}" class="tick" text-anchor="middle">${esc(short(10 ** k))}</text>`);
  }
  f.parts.push('</svg>');
  return `${f.parts.join('')}${legend([[`hits (${hits.length})`, '#59a14f'], [`misses, stale served and waits (${others.length})`, '#e15759']])}`;
}

// The saving in its parts, as signed horizontal bars, and the net.
function savingChart(u) {
  const parts = [
    ['Secrets Manager calls', u.savedSecretsManager],
    ['Parameter Store calls', u.savedParameterStore],
    ['billed duration', u.savedDuration],
    ['EMF log ingestion', -u.costEmfIngestion],
    ['custom metrics', -u.costCustomMetrics],
    ...(u.costDashboards ? [['dashboards', -u.costDashboards]] : []),
    ['extension overhead', -u.costExtension],
    ['net', u.net],
  ];
  const w = 600;
  const rowH = 30;
  const h = parts.length * rowH + 20;
  const lw = 170;
  const vw = 90;
  const max = Math.max(1e-12, ...parts.map(([, v]) => Math.abs(v)));
  const neg = parts.some(([, v]) => v < 0);
  const pos = parts.some(([, v]) => v > 0);
  const pw = w - lw - vw - 10;
  const zero = lw + (neg && pos ? pw / 2 : neg ? pw : 0);
  const scale = (neg && pos ? pw / 2 : pw) / max;
  const out = [`<svg viewBox="0 0 ${w} ${h}" role="img" aria-label="saving broken into its parts" xmlns="http://www.w3.org/2000/svg">`];
  parts.forEach(([name, v], i) => {
    const y = 10 + i * rowH;
    const len = Math.abs(v) * scale;
    const x0 = v >= 0 ? zero : zero - len;
    const color = name === 'net' ? '#4e79a7' : v >= 0 ? '#59a14f' : '#e15759';
    out.push(`<text x="${lw - 8}" y="${y + 18}" class="${name === 'net' ? 'label strong' : 'label'}" text-anchor="end">${esc(name)}</text>`);
    out.push(`<rect x="${fx(x0)}" y="${y + 5}" width="${fx(Math.max(len, 0.5))}" height="${rowH - 10}" fill="${color}"/>`);
    out.push(`<text x="${w - 4}" y="${y + 18}" class="${name === 'net' ? 'label strong' : 'label'}" text-anchor="end">${esc(usd(v))}</text>`);
  });
  out.push(`<line x1="${fx(zero)}" x2="${fx(zero)}" y1="6" y2="${h - 6}" class="axis"/>`);
  out.push('</svg>');
  return out.join('');
}

// One table per sort key; the column headers are labels of the radio buttons that pick one.
function functionTables(r) {
  const keys = [
    ['name', (f) => f.functionName, 1],
    ['invocations', (f) => f.invocations, -1],
    ['hits', (f) => f.cacheHits, -1],
    ['misses', (f) => f.cacheMisses, -1],
    ['ratio', (f) => f.hitRatio ?? -1, -1],
    ['refreshes', (f) => f.cacheRefreshes, -1],
    ['upstream', (f) => f.upstreamCalls, -1],
    ['avoided', (f) => f.callsAvoided, -1],
    ['net', (f) => f.usd.net, -1],
  ];
  const radios = keys.map(([k]) =>
    `<input type="radio" name="sort" id="sort-${k}" class="sort"${k === 'avoided' ? ' checked' : ''}>`).join('');
  const tables = keys.map(([k, get, dir], ki) => {
    const rows = [...r.byFunction].sort((a, b) => {
      const x = get(a);
      const y = get(b);
      const c = typeof x === 'string' ? x.localeCompare(y) : x - y;
      return dir * c || a.functionName.localeCompare(b.functionName);
    });
    const head = FUNCTION_COLUMNS.map((c, i) =>
      `<th scope="col"${i ? ' class="num"' : ''}><label for="sort-${keys[i][0]}">${esc(c)}${i === ki ? (dir > 0 ? ' ▲' : ' ▼') : ''}</label></th>`).join('');
    const body = rows.map((f) => `<tr>${functionRow(f).map((v, i) =>
      (i ? `<td class="num">${esc(v)}</td>` : `<th scope="row">${esc(v)}</th>`)).join('')}</tr>`).join('');
    return `<table class="fn by-${k}"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  }).join('');
  return `${radios}<div class="tables">${tables}</div>`;
}

const CSS = `
:root{color-scheme:light;--ink:#1d2733;--muted:#5b6673;--line:#d8dde3;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1260px;margin:0 auto;padding:24px 28px 40px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 10px}
h3{font-size:14px;margin:0 0 6px}
h3.gap{margin-top:14px}
p.sub{color:var(--muted);margin:0}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:14px;margin-top:18px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:28px;font-weight:650;margin:2px 0}
.card .d{color:var(--muted);font-size:12.5px}
.pos{color:#2f7d32}.neg{color:#b3261e}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.panel{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px}
.panel p.note{color:var(--muted);font-size:12.5px;margin:6px 0 0}
svg{width:100%;height:auto;display:block}
svg .grid{stroke:#e8ebef;stroke-width:1}
svg .axis{stroke:#8a949f;stroke-width:1}
svg .tick{fill:#5b6673;font-size:11px}
svg .axis-label{fill:#5b6673;font-size:11.5px}
svg .label{fill:#1d2733;font-size:12.5px}
svg .strong{font-weight:700}
ul.legend{list-style:none;margin:6px 0 0;padding:0;display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:var(--muted)}
ul.legend li{display:flex;align-items:center;gap:5px}
ul.legend svg{width:18px;height:10px;display:inline}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:#eef1f4;font-weight:600;font-size:12.5px;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody th{font-weight:500}
input.sort{position:absolute;opacity:0;pointer-events:none}
table.fn{display:none}
table.fn label{cursor:pointer;text-decoration:underline dotted}
${['name', 'invocations', 'hits', 'misses', 'ratio', 'refreshes', 'upstream', 'avoided', 'net'].map((k) =>
    `#sort-${k}:checked~.tables .by-${k}`).join(',')}{display:table}
input.sort:focus-visible~.tables{outline:2px solid #4e79a7}
.wrap{border:1px solid var(--line);border-radius:8px;overflow:hidden}
p.empty{color:var(--muted)}
footer{color:var(--muted);font-size:12px;margin-top:26px}
@media (max-width:900px){.cards{grid-template-columns:1fr 1fr}.grid2{grid-template-columns:1fr}}
@media print{body{background:#fff}.panel,.card{break-inside:avoid}}
`;

function duration(ms) {
  if (ms === null || ms < 0) return '-';
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}

export function renderHtml(r, t) {
  const bucket = bucketFor(t.lastMs === null ? 0 : t.lastMs - t.firstMs);
  const bz = { ...bucketize(t, bucket.ms, r.byFunction.map((f) => f.functionName)), bucketMs: bucket.ms, label: bucket.label };
  const other = BASELINES.find((b) => b !== r.baseline);
  const sign = (x) => (x >= 0 ? 'pos' : 'neg');
  const lookups = r.cacheHits + r.cacheMisses + r.staleServed;
  const title = `stash cache report: ${r.functions.length === 1 ? r.functions[0] : `${r.functions.length} functions`}`;
  const a = r.assumptions;
  const cards = [
    ['calls avoided', cnt(r.callsAvoided), `${r.baseline} baseline; ${r.upstreamCalls} upstream calls made; ` +
      `${other}: ${cnt(r.baselines[other].callsAvoided)}`],
    ['hit ratio', pct(r.hitRatio), `${r.cacheHits} hits of ${lookups} lookups, ${r.singleFlightWaits} single-flight waits, ` +
      `${r.cacheRefreshes} background refreshes`],
    // With a projection the month is the figure to read: a short sample pays a whole hour of
    // custom metrics, so its own net is pessimistic.
    r.monthly
      ? ['net saving a month', usd(r.monthly.net), `at ${r.monthly.invocations} invocations, ${r.baseline} (chosen); ` +
        `${other}: ${usd(r.monthly.netByBaseline[other])}; these lines: ${usd(r.usd.net)}`, sign(r.monthly.net)]
      : ['net saving', usd(r.usd.net), `${r.baseline} (chosen); ${other}: ${usd(r.baselines[other].usd.net)}`, sign(r.usd.net)],
    ['period', duration(t.lastMs - t.firstMs), `${iso(r.window.firstMs)} to ${iso(r.window.lastMs)}; ${r.invocations} invocations`],
  ];
  const cardHtml = cards.map(([k, v, d, cls]) => `<div class="card"><div class="k">${esc(k)}</div>` +
    `<div class="v${cls ? ` ${cls}` : ''}">${esc(v)}</div><div class="d">${esc(d)}</div></div>`).join('');
  const baseRows = BASELINES.map((b) => {
    const x = r.baselines[b];
    return `<tr><th scope="row">${esc(b)}${b === r.baseline ? ' (chosen)' : ''}</th><td class="num">${esc(cnt(x.callsAvoided))}</td>` +
      `<td class="num ${sign(x.usd.net)}">${esc(usd(x.usd.net))}</td>${r.monthly ? `<td class="num">${esc(usd(r.monthly.netByBaseline[b]))}</td>` : ''}` +
      `<td>${esc(x.means)}</td></tr>`;
  }).join('');
  const cost = costRows(r.usd, r.monthly).map(([k, w, m]) => `<tr><th scope="row">${esc(k)}</th><td class="num">${esc(usd(w))}</td>` +
    `${r.monthly ? `<td class="num">${esc(usd(m))}</td>` : ''}</tr>`).join('');
  const assumptions = assumptionRows(r).map(([k, v, s]) => `<tr><th scope="row">${esc(k)}</th><td>${esc(v)}</td><td>${esc(s)}</td></tr>`).join('');
  const perFn = r.byFunction.map((f) => `<tr><th scope="row">${esc(f.functionName)}</th><td class="num">${esc(f.assumptions.memoryMb)} MB</td>` +
    `<td class="num">${esc(n3(f.assumptions.avoidedCallMs))} ms</td><td class="num">${esc(n3(f.assumptions.hitMs))} ms</td>` +
    `<td class="num">${esc(n3(f.assumptions.smShare))}</td></tr>`).join('');
  const notes = r.notes.length ? `<ul>${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : '';
  const l = r.lines;
  const fnList = r.functions.length <= 6 ? r.functions.join(', ')
    : `${r.functions.slice(0, 5).join(', ')} and ${r.functions.length - 5} more`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>${esc(title)}</h1>
<p class="sub">Namespace ${esc(r.namespace)} · ${esc(fnList)} · ${esc(iso(r.window.firstMs))} to ${esc(iso(r.window.lastMs))} · baseline <strong>${esc(r.baseline)}</strong></p>
<section class="cards">${cardHtml}</section>

<h2>Against what: both baselines</h2>
<div class="wrap"><table><thead><tr><th scope="col">baseline</th><th scope="col" class="num">calls avoided</th><th scope="col" class="num">net, these lines</th>${r.monthly ? '<th scope="col" class="num">net a month</th>' : ''}<th scope="col">meaning</th></tr></thead><tbody>${baseRows}</tbody></table></div>

<h2>Per function</h2>
<p class="sub">Click a column header to sort. Figures for the ${esc(r.baseline)} baseline; each function is costed with its own memory size and latencies.</p>
<div class="wrap">${functionTables(r)}</div>

<h2>Over time and by latency</h2>
<div class="grid2">
<div class="panel"><h3>Hit ratio over time, per function${r.byFunction.length > TOP ? ` (top ${TOP} by calls avoided, the rest summed)` : ''}</h3>${hitRatioChart(r, bz)}<p class="note">A bucket with no lookup has no point: an idle function shows a gap, not 100 %.</p></div>
<div class="panel"><h3>Upstream calls made and avoided</h3>${callsChart(bz)}<p class="note">Avoided here is per request (hits + single-flight waits). A hit that started a background refresh (refresh-ahead) is not counted as avoided: its refresh may have gone upstream.</p></div>
<div class="panel"><h3>Fetch latency, hits against misses</h3>${latencyChart(t.records)}<p class="note">In each record the CacheHits fastest FetchLatency values are counted as hits (a hit never waits for the network); misses include stale serves and single-flight waits.</p></div>
<div class="panel"><h3>The saving in its parts (${esc(r.baseline)}, ${r.monthly ? `a month at ${esc(r.monthly.invocations)} invocations` : 'these lines'})</h3>${savingChart(r.monthly ?? r.usd)}</div>
</div>

<h2>Cost (USD, ${esc(r.baseline)})</h2>
<div class="wrap"><table><thead><tr><th scope="col">item</th><th scope="col" class="num">these lines</th>${r.monthly ? `<th scope="col" class="num">${esc(r.monthly.invocations)} invocations a month</th>` : ''}</tr></thead><tbody>${cost}</tbody></table></div>

<h2>Every assumption and price</h2>
<div class="wrap"><table><thead><tr><th scope="col">assumption</th><th scope="col">value</th><th scope="col">source</th></tr></thead><tbody>${assumptions}</tbody></table></div>
<h3 class="gap">Per function</h3>
<div class="wrap"><table><thead><tr><th scope="col">function</th><th scope="col" class="num">memory</th><th scope="col" class="num">avoided call</th><th scope="col" class="num">hit</th><th scope="col" class="num">Secrets Manager share</th></tr></thead><tbody>${perFn}</tbody></table></div>
${notes ? `<h3 class="gap">Notes</h3>${notes}` : ''}
<footer>Read ${esc(l.read)} EMF lines (${esc(l.perKey)} per-key, ${esc(l.continuation)} continuation, ${esc(l.bytes)} bytes); ${esc(l.duplicates)} duplicates counted once; ${esc(l.other)} other lines skipped. Avoided call: ${esc(a.avoidedCallSource)}. Prices are AWS list prices (us-east-1) from AWS's pricing pages: check them before quoting. Generated by dashboards/stash-report.mjs.</footer>
</main>
</body>
</html>
`;
}
