// The HTML report in a real browser: Debian's Chromium, headless, driven over the DevTools
// protocol (dashboards/render-png.mjs).  A known input (the writer's own lines for one function,
// renamed copies for eleven more, so the hit-ratio chart has its "rest" line) is rendered to a
// PNG; the page must draw, log nothing to the console, and request nothing but itself.  The
// per-function table must sort without script: clicking a column header shows another order.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { summarize, report, parseArgs } from '../stash-report.mjs';
import { renderHtml } from '../report-html.mjs';
import { renderPage, pngStats } from '../render-png.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD = path.resolve(ROOT, process.env.BUILD ?? 'build');
const DIR = mkdtempSync(path.join(tmpdir(), 'stash-html-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

function fleetLines() {
  const out = execFileSync(path.join(BUILD, 'tools', 'emf_sample'), ['invocation'], { encoding: 'utf8' });
  const lines = out.split('\n').filter(Boolean);
  const all = [...lines];
  for (let i = 1; i <= 11; i++) {
    // Every other copy without invocation B, so the functions differ in hits.
    all.push(...lines.filter((l) => i % 2 === 1 || !l.includes('"req-b"'))
      .map((l) => l.replace('"FunctionName":"orders-api"', `"FunctionName":"fn-${String(i).padStart(2, '0')}<&>"`)));
  }
  return all;
}

// What the page shows, read through the protocol after load (the page itself runs no script).
const PROBE = `(() => {
  const visible = () => [...document.querySelectorAll('table.fn')].filter((t) => getComputedStyle(t).display !== 'none');
  const firstCol = (t) => [...t.querySelectorAll('tbody th')].map((th) => th.textContent);
  const before = visible();
  const heads = [...before[0].querySelectorAll('thead th')].map((th) => th.textContent);
  const col = heads.findIndex((h) => h.startsWith('refreshes'));
  const refreshCells = [...before[0].querySelectorAll('tbody tr')].map((tr) => tr.children[col]?.textContent);
  const card = [...document.querySelectorAll('.card')].find((c) => c.querySelector('.k').textContent === 'hit ratio');
  const refreshBars = document.querySelectorAll('main svg rect[fill="#17becf"]').length;
  document.querySelector('label[for="sort-refreshes"]').click();
  const byRefreshes = visible().map((t) => t.className);
  document.querySelector('label[for="sort-name"]').click();
  const after = visible();
  return {
    heads, refreshCells, refreshCard: card?.querySelector('.d').textContent, refreshBars, byRefreshes,
    scripts: document.scripts.length,
    svgs: document.querySelectorAll('main svg[role="img"]').length,
    visibleBefore: before.length, classBefore: before[0]?.className, namesBefore: firstCol(before[0]),
    visibleAfter: after.length, classAfter: after[0]?.className, namesAfter: firstCol(after[0]),
    legendRest: [...document.querySelectorAll('ul.legend li')].some((li) => li.textContent === 'the other 2 functions'),
    title: document.title,
  };
})()`;

test('HTML report renders in headless Chromium: a PNG, no console error, no request off the page', async () => {
  const t = summarize(fleetLines());
  const r = report(t, parseArgs(['--invocations-per-month', '1000000']));
  const html = renderHtml(r, t);
  assert.doesNotMatch(html, /<script|<link|<img|@import|url\(|@font-face|https?:\/\/(?!www\.w3\.org\/2000\/svg)/i,
    'nothing in the page may load anything');
  const file = path.join(DIR, 'report.html');
  writeFileSync(file, html);
  const got = await renderPage(file, { probe: PROBE });
  assert.deepEqual(got.offPage, [], 'requests off the page');
  assert.deepEqual(got.requests, [got.url], 'the page itself is the one request');
  assert.deepEqual(got.console, [], 'console messages');
  assert.deepEqual(got.errors, [], 'console errors and warnings');
  const st = pngStats(got.png);
  assert.equal(st.width, 1280);
  assert.ok(st.height > 1500 && st.height < 12000, `page height ${st.height}`);
  assert.ok(st.colors > 50, `${st.colors} colours: a blank page?`);
  assert.ok(st.inkShare > 0.05, `only ${(100 * st.inkShare).toFixed(1)} % of pixels differ from the background`);
  writeFileSync(path.join(DIR, 'report.png'), got.png);

  const p = got.probe;
  assert.equal(p.scripts, 0);
  assert.equal(p.svgs, 4, 'four charts');
  assert.equal(p.visibleBefore, 1);
  assert.equal(p.classBefore, 'fn by-avoided');
  assert.equal(p.visibleAfter, 1);
  assert.equal(p.classAfter, 'fn by-name');
  assert.equal(p.namesAfter.length, 12);
  assert.deepEqual(p.namesAfter, [...p.namesAfter].sort((a, b) => a.localeCompare(b)));
  assert.notDeepEqual(p.namesAfter, p.namesBefore);
  assert.ok(p.namesAfter.includes('fn-01<&>'), 'a function name with markup characters is shown as text');
  assert.ok(p.legendRest, 'top ten functions, the rest summed into one line');
  // Every copy keeps record C, whose hit started one background refresh: one per function, 12 in all.
  assert.deepEqual(p.heads, ['function', 'invocations', 'hits', 'misses', 'hit ratio', 'refreshes',
    'upstream calls', 'calls avoided ▼', 'net USD']);
  assert.deepEqual(p.refreshCells, new Array(12).fill('1'));
  assert.match(p.refreshCard, /, 12 background refreshes$/);
  assert.equal(p.refreshBars, 1, 'the refreshes drawn in the calls chart, in their one bucket');
  assert.deepEqual(p.byRefreshes, ['fn by-refreshes'], 'the refreshes column sorts');
});

test('the browser check fails a page that loads something or logs an error', async () => {
  const file = path.join(DIR, 'bad.html');
  writeFileSync(file, '<!doctype html><title>bad</title><img src="http://127.0.0.1:9/x.png">' +
    '<script>console.error("boom")</script><p>x</p>');
  const got = await renderPage(file);
  assert.ok(got.offPage.some((u) => u.startsWith('http://127.0.0.1:9/')), JSON.stringify(got.requests));
  assert.ok(got.console.some((m) => m.includes('boom')), JSON.stringify(got.console));
});

test('stash-report --html writes the same page as renderHtml', () => {
  const input = execFileSync(path.join(BUILD, 'tools', 'emf_sample'), ['invocation'], { encoding: 'utf8' });
  const file = path.join(DIR, 'cli.html');
  const out = execFileSync(process.execPath, [path.join(ROOT, 'dashboards', 'stash-report.mjs'), '--html', file,
    '--baseline', 'per-environment'], { input, encoding: 'utf8' });
  assert.match(out, /baseline\s+per-environment/);
  const html = readFileSync(file, 'utf8');
  const t = summarize(input.split('\n'));
  assert.equal(html, renderHtml(report(t, parseArgs(['--baseline', 'per-environment'])), t));
  assert.match(html, /baseline <strong>per-environment<\/strong>/);
  assert.match(html, /per-request/);
  assert.match(html, /single-flight waits, 1 background refreshes<\/div>/);
  // Per-function row: hits 147, misses 3, ratio, refreshes 1, upstream calls 6.
  assert.match(html, /<th scope="row">orders-api<\/th><td class="num">3<\/td><td class="num">147<\/td><td class="num">3<\/td><td class="num">[^<]+ %<\/td><td class="num">1<\/td><td class="num">6<\/td>/);
  assert.match(html, /<rect [^>]*fill="#17becf"\/>/);
});

test('HTML report without a background refresh: zero shown, no refresh bar drawn', () => {
  const input = execFileSync(path.join(BUILD, 'tools', 'emf_sample'), ['invocation'], { encoding: 'utf8' })
    .replaceAll('"CacheRefreshes":1', '"CacheRefreshes":0');
  const t = summarize(input.split('\n'));
  const r = report(t, parseArgs([]));
  assert.equal(r.cacheRefreshes, 0);
  const html = renderHtml(r, t);
  assert.match(html, /single-flight waits, 0 background refreshes<\/div>/);
  assert.match(html, /<td class="num">[^<]+ %<\/td><td class="num">0<\/td><td class="num">6<\/td>/);
  assert.doesNotMatch(html, /<rect [^>]*fill="#17becf"/);
});
