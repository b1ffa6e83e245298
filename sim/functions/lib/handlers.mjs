// sim/functions/lib/handlers.mjs: the sample functions' logic, written once and bound to a source
// of values: lib/extension.mjs (through stash or AWS's extension) or lib/direct.mjs (the AWS SDK,
// no cache).  The entry files (load-test.mjs, load-test-direct.mjs, ...) only pick the source, so
// the with/without comparison runs the same code.  No handler returns or logs a value: only sizes
// and timings.
//
// Configuration (environment, as a Lambda function's would be):
//   SECRET_ID    the secret read by load-test and fetch-timing      (default demo/db-password)
//   PARAM_NAME   the parameter read by load-test                    (default /demo/app/config)
//   WORK_MS      load-test busy work per invoke in ms, 0-60000      (default 0; event.work_ms wins)
//   SECRET_IDS   the three secrets init-three-secrets needs, comma-separated
//                                    (default demo/db-password,demo/api-key,demo/signing-key)
const num = (v, what) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || n > 60000) {
        throw new RangeError(`${what} must be a number of ms in 0..60000, got ${JSON.stringify(v)}`);
    }
    return n;
};

/* Spins the CPU for ms milliseconds: the "configurable work" of the load-test function. */
function busy(ms) {
    const end = performance.now() + ms;
    let x = 0;
    while (performance.now() < end) {
        x = (x * 1103515245 + 12345) % 2147483648;
    }
    return x;
}

/* load-test: a parameter and a secret on every invoke, then work. */
export function loadTest(src) {
    const secretId = process.env.SECRET_ID || 'demo/db-password';
    const paramName = process.env.PARAM_NAME || '/demo/app/config';
    const defaultWork = num(process.env.WORK_MS || 0, 'WORK_MS');
    return async (event) => {
        const work = event && event.work_ms !== undefined ? num(event.work_ms, 'work_ms')
                                                           : defaultWork;
        const t0 = performance.now();
        const param = await src.getParameter(paramName);
        const secret = await src.getSecret(secretId);
        const fetchMs = performance.now() - t0;
        busy(work);
        return { parameterBytes: param.length, secretBytes: secret.length,
                 fetchMs: Number(fetchMs.toFixed(3)), workMs: work };
    };
}

/* fetch-timing: logs how long one secret read took; the first invoke of an environment is cold. */
export function fetchTiming(src, label) {
    const secretId = process.env.SECRET_ID || 'demo/db-password';
    let invokes = 0;
    return async () => {
        invokes++;
        const t0 = performance.now();
        const secret = await src.getSecret(secretId);
        const ms = performance.now() - t0;
        const phase = invokes === 1 ? 'cold' : 'warm';
        console.log(`fetch-timing ${label}: ${phase} fetch of ${secretId} took ${ms.toFixed(3)} ms`);
        return { ms: Number(ms.toFixed(3)), phase, invoke: invokes, secretBytes: secret.length };
    };
}

/* init-three-secrets: three secrets read during init (awaited before the handler exists). */
export async function initThreeSecrets(src, label) {
    const ids = (process.env.SECRET_IDS || 'demo/db-password,demo/api-key,demo/signing-key')
        .split(',').map((s) => s.trim()).filter((s) => s.length);
    if (ids.length !== 3) {
        throw new RangeError(`SECRET_IDS must name three secrets, got ${ids.length}`);
    }
    const t0 = performance.now();
    const values = [];
    for (const id of ids) {
        values.push(await src.getSecret(id));
    }
    const initFetchMs = Number((performance.now() - t0).toFixed(3));
    console.log(`init-three-secrets ${label}: read 3 secrets during init in ${initFetchMs} ms`);
    const bytes = values.reduce((n, v) => n + v.length, 0);
    return async () => ({ secrets: values.length, bytes, initFetchMs });
}

/* ttl-load: one parameter on every invoke, then a wait (a timer: no CPU) until BUSY_MS have
 * passed since the invoke began, so every invoke holds its environment about as long whatever
 * the fetch took, and the environments needed follow the arrival rate alone.  Logs one line per
 * invoke with its start (epoch ms) and fetch time, which is how a reader counts, per environment,
 * how often it was invoked. */
export function ttlLoad(src) {
    const paramName = process.env.PARAM_NAME || '/demo/app/config';
    const busyMs = num(process.env.BUSY_MS || 0, 'BUSY_MS');
    return async () => {
        const start = Date.now();
        const t0 = performance.now();
        const param = await src.getParameter(paramName);
        const fetchMs = performance.now() - t0;
        const left = busyMs - (performance.now() - t0);
        if (left > 0) {
            await new Promise((res) => setTimeout(res, left));
        }
        console.log(`ttl-load: start ${start} fetch ${fetchMs.toFixed(3)} ms`);
        return { parameterBytes: param.length, fetchMs: Number(fetchMs.toFixed(3)) };
    };
}
