#!/usr/bin/env node
// render-png: opens an HTML file in headless Chromium (Debian's /usr/bin/chromium) and writes a
// PNG of the whole page, recording every request the page makes and every console message or
// uncaught exception.  It fails (exit 1) on a request that leaves the page's own file or on any
// console error: the report must render offline, alone.
//
//   node dashboards/render-png.mjs REPORT.html OUT.png [--width 1280]
//
// Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: fd 3 carries
// commands in, fd 4 carries replies and events out, each message a JSON text ended by a NUL byte;
// https://chromedevtools.github.io/devtools-protocol/).  No npm package is needed.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { pathToFileURL } from 'node:url';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const MESSAGE_MAX = 64 << 20; // a screenshot of a long page is a few MB of base64

class Cdp {
  constructor(child) {
    this.child = child;
    this.next = 1;
    this.pending = new Map();
    this.listeners = [];
    this.buf = Buffer.alloc(0);
    child.stdio[4].on('data', (d) => this.onData(d));
    child.on('exit', (code, sig) => {
      for (const { reject } of this.pending.values()) reject(new Error(`chromium exited (${code ?? sig})`));
      this.pending.clear();
    });
  }

  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    if (this.buf.length > MESSAGE_MAX) {
      this.child.kill('SIGKILL');
      throw new Error('DevTools message past its ceiling');
    }
    let at;
    while ((at = this.buf.indexOf(0)) >= 0) {
      const msg = JSON.parse(this.buf.subarray(0, at).toString('utf8'));
      this.buf = this.buf.subarray(at + 1);
      if (msg.id !== undefined && this.pending.has(msg.id)) {
        const { resolve, reject, method } = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
        else resolve(msg.result);
      } else if (msg.method) {
        for (const l of this.listeners) l(msg);
      }
    }
  }

  send(method, params = {}, sessionId = undefined) {
    const id = this.next++;
    const msg = { id, method, params, ...(sessionId ? { sessionId } : {}) };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.child.stdio[3].write(`${JSON.stringify(msg)}\0`);
    });
  }

  waitFor(pred, ms, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
      const l = (msg) => {
        if (pred(msg)) {
          clearTimeout(timer);
          this.listeners = this.listeners.filter((x) => x !== l);
          resolve(msg);
        }
      };
      this.listeners.push(l);
    });
  }
}

// Renders file (an HTML path) and returns {png, requests, offPage, console, errors, probe}.
// probe: what the page shows, read through the protocol (the page runs no script of its own).
export async function renderPage(file, { width = 1280, timeoutMs = 60000, probe = null } = {}) {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (Debian package chromium; scripts/deps.sh installs it)`);
  const url = pathToFileURL(path.resolve(file)).href;
  const profile = mkdtempSync(path.join(tmpdir(), 'stash-chromium-'));
  // --no-sandbox: the tests run as root in a container, where Chromium's sandbox cannot start.
  const child = spawn(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--remote-debugging-pipe',
    `--user-data-dir=${profile}`, '--no-first-run', '--no-default-browser-check', '--disable-extensions',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-default-apps', '--mute-audio', '--hide-scrollbars', 'about:blank'],
  { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const cdp = new Cdp(child);
  const requests = [];
  const consoleMsgs = [];
  const errors = [];
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
    cdp.listeners.push((m) => {
      if (m.sessionId !== sessionId) return;
      if (m.method === 'Network.requestWillBeSent') requests.push(m.params.request.url);
      else if (m.method === 'Runtime.consoleAPICalled') {
        consoleMsgs.push(`${m.params.type}: ${m.params.args.map((a) => a.value ?? a.description ?? '').join(' ')}`);
      } else if (m.method === 'Runtime.exceptionThrown') {
        errors.push(`exception: ${m.params.exceptionDetails.exception?.description ?? m.params.exceptionDetails.text}`);
      } else if (m.method === 'Log.entryAdded') {
        const e = m.params.entry;
        if (e.level === 'error' || e.level === 'warning') errors.push(`${e.level} (${e.source}): ${e.text}${e.url ? ` ${e.url}` : ''}`);
      }
    });
    const s = (method, params) => cdp.send(method, params, sessionId);
    await s('Page.enable');
    await s('Runtime.enable');
    await s('Log.enable');
    await s('Network.enable');
    await s('Emulation.setDeviceMetricsOverride', { width, height: 900, deviceScaleFactor: 1, mobile: false });
    const loaded = cdp.waitFor((m) => m.sessionId === sessionId && m.method === 'Page.loadEventFired', timeoutMs, 'the load event');
    const nav = await s('Page.navigate', { url });
    if (nav.errorText) throw new Error(`navigate: ${nav.errorText}`);
    await loaded;
    const metrics = await s('Page.getLayoutMetrics');
    const height = Math.ceil((metrics.cssContentSize ?? metrics.contentSize).height);
    await s('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
    const shot = await s('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true });
    let probed = null;
    if (probe) {
      const res = await s('Runtime.evaluate', { expression: probe, returnByValue: true });
      if (res.exceptionDetails) throw new Error(`probe: ${res.exceptionDetails.text}`);
      probed = res.result.value;
    }
    await cdp.send('Browser.close').catch(() => {});
    const offPage = requests.filter((u) => u !== url);
    return { png: Buffer.from(shot.data, 'base64'), url, requests, offPage, console: consoleMsgs, errors, probe: probed };
  } catch (e) {
    e.message += stderr ? `\nchromium stderr: ${stderr}` : '';
    throw e;
  } finally {
    clearTimeout(killer);
    if (child.exitCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      await gone;
    }
    rmSync(profile, { recursive: true, force: true });
  }
}

// Width, height and pixel statistics of an 8-bit RGB/RGBA PNG (what Chromium writes): enough to
// tell a rendered page from a blank one without an image library.
export function pngStats(png) {
  if (png.length < 33 || png.toString('latin1', 1, 4) !== 'PNG') throw new Error('not a PNG');
  let off = 8;
  let w = 0;
  let h = 0;
  let depth = 0;
  let ctype = 0;
  const idat = [];
  while (off + 8 <= png.length) {
    const len = png.readUInt32BE(off);
    const type = png.toString('latin1', off + 4, off + 8);
    const data = png.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      w = data.readUInt32BE(0);
      h = data.readUInt32BE(4);
      depth = data[8];
      ctype = data[9];
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const bpp = { 2: 3, 6: 4 }[ctype];
  if (depth !== 8 || !bpp) throw new Error(`PNG colour type ${ctype} depth ${depth} not handled`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = w * bpp;
  let prev = Buffer.alloc(stride);
  const colors = new Set();
  let differing = 0;
  let bg = null;
  for (let y = 0; y < h; y++) {
    const f = raw[y * (stride + 1)];
    const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? line[i - bpp] : 0;
      const b = prev[i];
      const c = i >= bpp ? prev[i - bpp] : 0;
      let p;
      if (f === 0) p = 0;
      else if (f === 1) p = a;
      else if (f === 2) p = b;
      else if (f === 3) p = (a + b) >> 1;
      else {
        const q = a + b - c;
        const pa = Math.abs(q - a);
        const pb = Math.abs(q - b);
        const pc = Math.abs(q - c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      line[i] = (line[i] + p) & 0xff;
    }
    for (let x = 0; x < w; x += 1) {
      const k = (line[x * bpp] << 16) | (line[x * bpp + 1] << 8) | line[x * bpp + 2];
      if (bg === null) bg = k;
      if (k !== bg) differing++;
      if (colors.size < 4096) colors.add(k);
    }
    prev = line;
  }
  return { width: w, height: h, colors: colors.size, inkShare: differing / (w * h) };
}

async function main() {
  const args = process.argv.slice(2);
  let width = 1280;
  const files = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--width') width = Number(args[++i]);
    else files.push(args[i]);
  }
  if (files.length !== 2 || !Number.isInteger(width) || width < 320 || width > 4000) {
    process.stderr.write('usage: render-png REPORT.html OUT.png [--width 320..4000]\n');
    return 2;
  }
  const r = await renderPage(files[0], { width });
  writeFileSync(files[1], r.png);
  const st = pngStats(r.png);
  process.stdout.write(`${files[1]}: ${st.width}x${st.height}, ${r.requests.length} request(s)\n`);
  for (const u of r.offPage) process.stderr.write(`render-png: request off the page: ${u}\n`);
  for (const m of [...r.console, ...r.errors]) process.stderr.write(`render-png: console: ${m}\n`);
  return r.offPage.length || r.console.length || r.errors.length ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((rc) => { process.exitCode = rc; }, (e) => {
    process.stderr.write(`render-png: ${e.message}\n`);
    process.exitCode = 2;
  });
}
