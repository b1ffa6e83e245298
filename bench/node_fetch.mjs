// bench/node_fetch.mjs: one secret read four ways from one Node process, as a function would:
//   fetch_stash  Node's built-in fetch against stash, with the token header (the seed's way)
//   fetch_floor  the same fetch against the floor (a bare responder with the same body)
//   powertools   Powertools for AWS Lambda Parameters (SecretsProvider.get), in-process cache
//   sdk_direct   AWS SDK v3 GetSecretValue straight to fake-aws, no cache
// --rounds rounds of --n reads of each target, interleaved read by read (plus a warm-up round
// that is not counted), so drift on a shared machine hits them alike.  One JSON line per target and round on
// stdout, in bench/run.sh's raw format: {"section":"hit_latency","name":..,"metrics":{p50_us..}}.
//
//   node bench/node_fetch.mjs --n N --rounds R --stash URL --floor URL --secret ID --endpoint URL
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) {
    args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
}
const n = Number(args.n || 1000);
const rounds = Number(args.rounds || 3);
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(process.env.STASH_NODE_DIR ||
                                        path.join(here, '..', 'tests', 'node'), 'package.json'));
const sm = require('@aws-sdk/client-secrets-manager');
const { SecretsProvider } = require('@aws-lambda-powertools/parameters/secrets');

const region = process.env.AWS_REGION || 'us-east-1';
const headers = { 'X-Aws-Parameters-Secrets-Token': process.env.AWS_SESSION_TOKEN || '' };
const smClient = new sm.SecretsManagerClient({ region, endpoint: args.endpoint });
const powertools = new SecretsProvider({ clientConfig: { region, endpoint: args.endpoint } });

async function viaFetch(url) {
    const r = await fetch(url, { headers });
    const body = await r.text();
    if (r.status !== 200) {
        throw new Error(`${url} answered ${r.status}`);
    }
    return JSON.parse(body).SecretString;
}

const targets = {
    fetch_stash: () => viaFetch(args.stash),
    fetch_floor: () => viaFetch(args.floor),
    // maxAge as stash's default TTL, so after the first read every call is an in-process hit.
    powertools: () => powertools.get(args.secret, { maxAge: 300 }),
    sdk_direct: async () => (await smClient.send(
        new sm.GetSecretValueCommand({ SecretId: args.secret }))).SecretString,
};

function stats(ns) {
    const v = ns.slice().sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((x) => Number(x) / 1e3);
    const pct = (p) => v[Math.round(p * (v.length - 1))];
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const r1 = (x) => Number(x.toFixed(1));
    return { requests: v.length, p50_us: r1(pct(0.5)), p90_us: r1(pct(0.9)), p99_us: r1(pct(0.99)),
             min_us: r1(v[0]), max_us: r1(v[v.length - 1]), mean_us: r1(mean) };
}

let seed = 12345;
function shuffle(a) {
    for (let i = a.length - 1; i > 0; i--) {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        const j = seed % (i + 1);
        [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
}

function check(name, value, sizes) {
    if (typeof value !== 'string' || (sizes[name] !== undefined && value.length !== sizes[name])) {
        throw new Error(`${name}: a read returned no value or a different one`);
    }
    sizes[name] = value.length;
}

// One round: n reads of each target, interleaved read by read, so a burst of load from elsewhere
// on the machine lands on every target alike; the order is shuffled every read (a seeded PRNG, so
// runs compare) so each target follows each other one equally often: whatever runs right after
// the SDK call pays for the SDK's leftover asynchronous work, and with a fixed (or rotating)
// order that was always the same target.
async function round(names, count, sizes) {
    const lat = Object.fromEntries(names.map((k) => [k, []]));
    for (let i = 0; i < count; i++) {
        const order = shuffle(names.slice());
        for (const name of order) {
            const t0 = process.hrtime.bigint();
            const value = await targets[name]();
            lat[name].push(process.hrtime.bigint() - t0);
            check(name, value, sizes);
        }
    }
    return lat;
}

// Phase 1, the hit-latency comparison: fetch against stash and against the floor, nothing else.
// Phase 2, the peers: all four in one process; fetch against stash is recorded again as
// node_fetch_stash_mixed (the same read, next to the SDK's traffic).
const sizes = {};
const all = Object.keys(targets);
await round(all, Math.min(n, 200), sizes); // warm-up: JIT, connections, Powertools' first fetch
for (let r = 0; r < rounds; r++) {
    const lat = await round(['fetch_stash', 'fetch_floor'], n, sizes);
    for (const [name, ns] of Object.entries(lat)) {
        console.log(JSON.stringify({ section: 'hit_latency', name: `node_${name}`,
                                     metrics: stats(ns) }));
    }
}
for (let r = 0; r < rounds; r++) {
    const lat = await round(all, n, sizes);
    for (const [name, ns] of Object.entries(lat)) {
        const label = name === 'fetch_stash' ? 'node_fetch_stash_mixed' : `node_${name}`;
        if (name !== 'fetch_floor') {
            console.log(JSON.stringify({ section: 'peers', name: label, metrics: stats(ns) }));
        }
    }
}
