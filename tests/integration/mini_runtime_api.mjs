// tests/integration/mini_runtime_api.mjs: the Runtime API side of Lambda, just enough to drive a
// runtime process in a test without lambda-sim: it proves sim/functions/runtime.mjs speaks the
// protocol (the AWS Lambda Developer Guide's "Lambda runtime API") on its own.
//
//   node mini_runtime_api.mjs EVENTS_JSON [TIMEOUT_MS] -- CMD ARGS...
//
// Starts CMD with AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port> (the rest of the environment
// inherited), hands it the events of the EVENTS_JSON array one per `next`, records each
// response, error and init error, then stops it (SIGTERM) and prints one JSON object:
//   RESULT {"init_error":{type,body}|null,"invocations":[{"id","outcome":"response"|"error",
//    "error_type","body"}],"violations":[...],"exit":code|signal,"timed_out":bool}
// A call the API does not allow (an unknown request id, a second answer, next while an invoke is
// open) is answered with the Runtime API's status and listed in violations.
import http from 'node:http';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';

const sep = process.argv.indexOf('--');
const events = JSON.parse(process.argv[2]);
const timeoutMs = Number(sep > 3 ? process.argv[3] : 20000);
const cmd = process.argv.slice(sep + 1);
const MAX_BODY = 6 * 1024 * 1024 + 100;

const out = { init_error: null, invocations: [], violations: [], exit: null, timed_out: false };
let next = 0;          // index of the next event to hand out
let open = null;       // request id of the invoke in flight
let child = null;

function readBody(req) {
    return new Promise((resolve) => {
        const chunks = [];
        let size = 0;
        req.on('data', (c) => {
            size += c.length;
            if (size <= MAX_BODY) {
                chunks.push(c);
            }
        });
        req.on('end', () => resolve(size > MAX_BODY ? null : Buffer.concat(chunks).toString()));
    });
}

function reply(res, status, obj) {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(body);
}

function finish() {
    if (child && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
    }
}

const server = http.createServer(async (req, res) => {
    const body = await readBody(req);
    const url = req.url;
    if (req.method === 'GET' && url === '/2018-06-01/runtime/invocation/next') {
        if (open) {
            out.violations.push(`next while ${open} is open`);
            reply(res, 403, { errorType: 'InvalidStateTransition', errorMessage: 'open invoke' });
            return;
        }
        if (next >= events.length) {
            finish(); // every event answered: hold this next, as a frozen environment would
            return;
        }
        open = randomUUID();
        const payload = JSON.stringify(events[next++]);
        res.writeHead(200, {
            'Content-Type': 'application/json',
            'Lambda-Runtime-Aws-Request-Id': open,
            'Lambda-Runtime-Deadline-Ms': String(Date.now() + 30000),
            'Lambda-Runtime-Invoked-Function-Arn':
                'arn:aws:lambda:us-east-1:123456789012:function:test',
            'Lambda-Runtime-Trace-Id': 'Root=1-00000000-000000000000000000000000',
        });
        res.end(payload);
        return;
    }
    let m = url.match(/^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/);
    if (req.method === 'POST' && m) {
        if (m[1] !== open) {
            out.violations.push(`${m[2]} for unknown id ${m[1]}`);
            reply(res, 400, { errorType: 'InvalidRequestID', errorMessage: 'Invalid request ID' });
            return;
        }
        let parsed = body;
        try {
            parsed = JSON.parse(body);
        } catch (e) {
            // not JSON: keep the text
        }
        out.invocations.push({ id: m[1], outcome: m[2],
                               error_type: req.headers['lambda-runtime-function-error-type'] || null,
                               body: parsed });
        open = null;
        reply(res, 202, { status: 'OK' });
        return;
    }
    if (req.method === 'POST' && url === '/2018-06-01/runtime/init/error') {
        let parsed = body;
        try {
            parsed = JSON.parse(body);
        } catch (e) {
            // not JSON: keep the text
        }
        out.init_error = { type: req.headers['lambda-runtime-function-error-type'] || null,
                           body: parsed };
        reply(res, 202, { status: 'OK' });
        return;
    }
    out.violations.push(`${req.method} ${url}`);
    reply(res, 404, { errorType: 'NotFound', errorMessage: 'unknown route' });
});

server.listen(0, '127.0.0.1', () => {
    const port = server.address().port;
    child = spawn(cmd[0], cmd.slice(1), {
        env: { ...process.env, AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}` },
        stdio: ['ignore', 'inherit', 'inherit'],
    });
    const timer = setTimeout(() => {
        out.timed_out = true;
        child.kill('SIGKILL');
    }, timeoutMs);
    child.on('exit', (code, signal) => {
        clearTimeout(timer);
        out.exit = code !== null ? code : signal;
        server.close();
        server.closeAllConnections();
        // The child's output shares stdout: the result is the one line starting with RESULT.
        process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
    });
});
