// sim/functions/runtime.mjs: a small Lambda Runtime API client, so the sample functions are plain
// handlers, as they are on Lambda's managed Node.js runtime.
//
//   node sim/functions/runtime.mjs HANDLER_FILE [EXPORT]      (EXPORT defaults to "handler")
//
// Protocol (Runtime API 2018-06-01, the AWS Lambda Developer Guide's "Lambda runtime API"), against
// http://$AWS_LAMBDA_RUNTIME_API:
//   init:    import HANDLER_FILE; its top-level await is the function's init.  If the import throws
//            or the export is not a function: POST /runtime/init/error, then exit 1.
//   loop:    GET /runtime/invocation/next (blocks until an invoke; no client-side timeout, since the
//            environment may sit idle for long), call handler(event, context), then
//            POST /runtime/invocation/{id}/response with the JSON result, or
//            POST /runtime/invocation/{id}/error with {errorMessage, errorType, stackTrace} and the
//            Lambda-Runtime-Function-Error-Type header when it throws.
// A transport error on next is retried a few times with a short pause, then the process exits 1
// (the platform treats that as a runtime failure and resets the environment).
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const MAX_BODY = 6 * 1024 * 1024 + 100; // the Runtime API's own ceiling on an event

function call(method, route, body, headers = {}) {
    const [host, port] = api.split(':');
    const payload = body === undefined ? undefined : Buffer.from(body);
    return new Promise((resolve, reject) => {
        const req = http.request({
            host, port: Number(port) || 80, method, agent,
            path: `/2018-06-01/runtime${route}`,
            headers: payload ? { 'Content-Length': payload.length, ...headers } : headers,
        }, (res) => {
            const chunks = [];
            let size = 0;
            res.on('data', (c) => {
                size += c.length;
                if (size > MAX_BODY) {
                    req.destroy(new Error(`runtime API answer over ${MAX_BODY} bytes`));
                    return;
                }
                chunks.push(c);
            });
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
                                          body: Buffer.concat(chunks) }));
            res.on('error', reject);
        });
        req.on('error', reject);
        req.end(payload);
    });
}

function errorBody(err) {
    const e = err instanceof Error ? err : new Error(String(err));
    return {
        errorType: e.name || 'Error',
        errorMessage: e.message,
        stackTrace: (e.stack || '').split('\n').slice(1).map((l) => l.trim()),
    };
}

function errorType(prefix, err) {
    const name = (err && err.name) || 'Error';
    return /^[A-Z][a-zA-Z]+$/.test(name) ? `${prefix}.${name}` : `${prefix}.Unknown`;
}

async function postInitError(err) {
    console.error(`runtime: init failed: ${err && err.stack ? err.stack : err}`);
    try {
        await call('POST', '/init/error', JSON.stringify(errorBody(err)),
                   { 'Content-Type': 'application/json',
                     'Lambda-Runtime-Function-Error-Type': errorType('Runtime', err) });
    } catch (e) {
        console.error(`runtime: could not report the init error: ${e.message}`);
    }
    process.exit(1);
}

async function next() {
    for (let attempt = 1; ; attempt++) {
        try {
            const r = await call('GET', '/invocation/next');
            if (r.status === 200) {
                return r;
            }
            throw new Error(`next answered ${r.status}: ${r.body.toString().slice(0, 200)}`);
        } catch (e) {
            if (attempt >= 3) {
                throw e;
            }
            await new Promise((res) => setTimeout(res, 50 * attempt));
        }
    }
}

function contextFor(h) {
    const deadline = Number(h['lambda-runtime-deadline-ms']) || 0;
    return {
        awsRequestId: h['lambda-runtime-aws-request-id'],
        invokedFunctionArn: h['lambda-runtime-invoked-function-arn'],
        functionName: process.env.AWS_LAMBDA_FUNCTION_NAME || 'function',
        memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
        logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
        deadlineMs: deadline,
        getRemainingTimeInMillis: () => (deadline ? Math.max(0, deadline - Date.now()) : 0),
    };
}

async function main() {
    if (!api) {
        console.error('runtime: AWS_LAMBDA_RUNTIME_API is not set (run me under lambda-sim)');
        process.exit(2);
    }
    const file = process.argv[2];
    const exportName = process.argv[3] || 'handler';
    if (!file) {
        await postInitError(new Error('usage: runtime.mjs HANDLER_FILE [EXPORT]'));
    }
    let handler;
    try {
        const mod = await import(pathToFileURL(path.resolve(file)).href);
        handler = mod[exportName];
        if (typeof handler !== 'function') {
            const e = new Error(`${file} does not export a function named ${exportName}`);
            e.name = 'HandlerNotFound';
            throw e;
        }
    } catch (e) {
        await postInitError(e);
    }
    for (;;) {
        const inv = await next();
        const id = inv.headers['lambda-runtime-aws-request-id'];
        let event;
        try {
            const text = inv.body.toString();
            event = text.length ? JSON.parse(text) : {};
        } catch (e) {
            event = inv.body.toString();
        }
        try {
            const result = await handler(event, contextFor(inv.headers));
            const body = JSON.stringify(result === undefined ? null : result);
            await call('POST', `/invocation/${id}/response`, body,
                       { 'Content-Type': 'application/json' });
        } catch (err) {
            console.error(`runtime: handler error: ${err && err.stack ? err.stack : err}`);
            await call('POST', `/invocation/${id}/error`, JSON.stringify(errorBody(err)),
                       { 'Content-Type': 'application/json',
                         'Lambda-Runtime-Function-Error-Type': errorType('Function', err) });
        }
    }
}

main().catch((e) => {
    console.error(`runtime: fatal: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
});
