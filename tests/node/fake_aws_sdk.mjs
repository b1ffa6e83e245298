// fake-aws driven by a real client: the AWS SDK for JavaScript v3, pointed at fake-aws with
// static credentials.  Run by tests/integration/fake_aws.sh against sim/fake_aws/sample-data.json.
//   node fake_aws_sdk.mjs PORT
// Prints one "ok - ..." or "not ok - ..." line per check (and "#" lines explaining failures);
// exits non-zero if any check failed.
import { strict as assert } from 'node:assert';
import {
  SecretsManagerClient,
  GetSecretValueCommand,
  BatchGetSecretValueCommand,
  paginateBatchGetSecretValue,
} from '@aws-sdk/client-secrets-manager';
import { SSMClient, GetParameterCommand, GetParametersCommand } from '@aws-sdk/client-ssm';

const port = process.argv[2];
const endpoint = `http://127.0.0.1:${port}`;
const AKID = 'AKIDEXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
let failed = 0;

function clients(opts = {}) {
  const cfg = {
    region: opts.region ?? 'us-east-1',
    endpoint,
    credentials: opts.credentials ?? { accessKeyId: AKID, secretAccessKey: SECRET },
    maxAttempts: opts.maxAttempts ?? 1,
    ...(opts.requestTimeout ? { requestHandler: { requestTimeout: opts.requestTimeout, throwOnRequestTimeout: true } } : {}),
  };
  return { sm: new SecretsManagerClient(cfg), ssm: new SSMClient(cfg) };
}

async function check(desc, fn) {
  try {
    await fn();
    console.log(`ok - ${desc}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${desc}`);
    for (const line of String(e && e.stack ? e.stack : e).split('\n').slice(0, 6)) {
      console.log(`#   ${line}`);
    }
  }
}

// The SDK error a call throws (asserts that it throws).
async function failure(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error('the call succeeded; an error was expected');
}

async function control(path, method = 'POST') {
  const r = await fetch(`${endpoint}/_fake/${path}`, { method });
  const body = await r.json();
  assert.equal(r.status, 200, `${path}: ${JSON.stringify(body)}`);
  return body;
}

const stats = () => control('stats', 'GET');
const secret = (sm, input) => sm.send(new GetSecretValueCommand(input));
const param = (ssm, input) => ssm.send(new GetParameterCommand(input));

const { sm, ssm } = clients();

// ---- Secrets Manager -----------------------------------------------------------------------
let dbArn;
await check('GetSecretValue: JSON SecretString, AWSCURRENT by default, Date and ARN shapes',
  async () => {
    const r = await secret(sm, { SecretId: 'prod/db' });
    assert.equal(JSON.parse(r.SecretString).password, 'n3w-Pa55word');
    assert.deepEqual(r.VersionStages, ['AWSCURRENT']);
    assert.equal(r.VersionId, 'a1b2c3d4-2222-4aaa-8bbb-000000000002');
    assert.equal(r.Name, 'prod/db');
    assert.ok(r.CreatedDate instanceof Date);
    assert.equal(r.CreatedDate.toISOString(), '2026-02-10T09:00:00.250Z');
    assert.match(r.ARN, /^arn:aws:secretsmanager:us-east-1:123456789012:secret:prod\/db-[A-Za-z0-9]{6}$/);
    assert.equal(r.SecretBinary, undefined);
    assert.match(r.$metadata.requestId, /^[0-9a-f-]{36}$/);
    dbArn = r.ARN;
  });
await check('GetSecretValue: SecretBinary comes back as the bytes of the base64 in the data file',
  async () => {
    const r = await secret(sm, { SecretId: 'prod/tls-key' });
    assert.equal(r.SecretString, undefined);
    assert.deepEqual(Buffer.from(r.SecretBinary),
      Buffer.from('AAECAwQFBgcICQoLDA0ODxAREhP/', 'base64'));
  });
await check('GetSecretValue: by full ARN and by partial ARN (no 6-character suffix)', async () => {
  const full = await secret(sm, { SecretId: dbArn });
  assert.equal(full.Name, 'prod/db');
  const partial = await secret(sm, { SecretId: dbArn.slice(0, -7) });
  assert.equal(partial.ARN, dbArn);
});
await check('GetSecretValue: VersionStage AWSPREVIOUS gives the older value', async () => {
  const r = await secret(sm, { SecretId: 'prod/db', VersionStage: 'AWSPREVIOUS' });
  assert.equal(JSON.parse(r.SecretString).password, 'old-Pa55word');
  assert.deepEqual(r.VersionStages, ['AWSPREVIOUS']);
});
await check('GetSecretValue: by VersionId', async () => {
  const r = await secret(sm, { SecretId: 'prod/db', VersionId: 'a1b2c3d4-1111-4aaa-8bbb-000000000001' });
  assert.equal(JSON.parse(r.SecretString).password, 'old-Pa55word');
});
await check('GetSecretValue: unknown secret -> ResourceNotFoundException (400)', async () => {
  const e = await failure(secret(sm, { SecretId: 'prod/nope' }));
  assert.equal(e.name, 'ResourceNotFoundException');
  assert.equal(e.$metadata.httpStatusCode, 400);
  assert.equal(e.message, "Secrets Manager can't find the specified secret.");
});
await check('GetSecretValue: unknown stage and unknown VersionId -> ResourceNotFoundException',
  async () => {
    let e = await failure(secret(sm, { SecretId: 'prod/db', VersionStage: 'NOPE' }));
    assert.equal(e.name, 'ResourceNotFoundException');
    assert.match(e.message, /staging label: NOPE/);
    e = await failure(secret(sm, { SecretId: 'prod/db', VersionId: 'f'.repeat(32) }));
    assert.equal(e.name, 'ResourceNotFoundException');
  });
await check('GetSecretValue: AccessDenied, DecryptionFailure, deleted -> InvalidRequest', async () => {
  assert.equal((await failure(secret(sm, { SecretId: 'prod/denied' }))).name,
    'AccessDeniedException');
  assert.equal((await failure(secret(sm, { SecretId: 'prod/kms-broken' }))).name,
    'DecryptionFailure');
  assert.equal((await failure(secret(sm, { SecretId: 'prod/deleted' }))).name,
    'InvalidRequestException');
});
await check('GetSecretValue: VersionId too short -> ValidationException', async () => {
  const e = await failure(secret(sm, { SecretId: 'prod/db', VersionId: 'short' }));
  assert.equal(e.name, 'ValidationException');
});
await check('BatchGetSecretValue: values and per-secret errors', async () => {
  const r = await sm.send(new BatchGetSecretValueCommand({
    SecretIdList: ['prod/db', 'prod/nope', 'prod/tls-key'] }));
  assert.deepEqual(r.SecretValues.map((v) => v.Name), ['prod/db', 'prod/tls-key']);
  assert.equal(r.Errors.length, 1);
  assert.equal(r.Errors[0].SecretId, 'prod/nope');
  assert.equal(r.Errors[0].ErrorCode, 'ResourceNotFoundException');
});

const batch = (input) => sm.send(new BatchGetSecretValueCommand(input));
const names = (r) => r.SecretValues.map((v) => v.Name);
await check('BatchGetSecretValue Filters name: prefix, case-sensitive, in name order', async () => {
  const r = await batch({ Filters: [{ Key: 'name', Values: ['prod/'] }] });
  // prod/deleted is scheduled for deletion: not listed; denied and undecryptable ones are Errors.
  assert.deepEqual(names(r), ['prod/api-key', 'prod/db', 'prod/tls-key']);
  assert.deepEqual(r.Errors.map((e) => [e.SecretId, e.ErrorCode]),
    [['prod/denied', 'AccessDeniedException'], ['prod/kms-broken', 'DecryptionFailure']]);
  assert.equal(r.NextToken, undefined);
  assert.equal(r.SecretValues[1].SecretString.includes('n3w-Pa55word'), true);
  assert.deepEqual(names(await batch({ Filters: [{ Key: 'name', Values: ['Prod/'] }] })), []);
});
await check('BatchGetSecretValue Filters tag-key, tag-value, description, all, negation',
  async () => {
    assert.deepEqual(names(await batch({ Filters: [{ Key: 'tag-key', Values: ['team'] }] })),
      ['prod/api-key', 'prod/db', 'prod/tls-key']);
    assert.deepEqual(names(await batch({ Filters: [{ Key: 'tag-key', Values: ['team-'] }] })),
      ['prod/tls-key']);
    assert.deepEqual(names(await batch({ Filters: [{ Key: 'tag-value', Values: ['pay', 'data'] }] })),
      ['prod/api-key', 'prod/db']);
    assert.deepEqual(names(await batch({ Filters: [{ Key: 'description', Values: ['primary'] }] })),
      ['prod/db']);
    // Two filters: both must hold; '!' negates a value.
    assert.deepEqual(names(await batch({ Filters: [{ Key: 'tag-value', Values: ['prod'] },
      { Key: 'tag-value', Values: ['!payments'] }] })), ['prod/db', 'prod/tls-key']);
    assert.deepEqual(names(await batch({ Filters: [{ Key: 'name', Values: ['!prod/'] }] })), []);
    // all: every word, ignoring case, starts some attribute or a word of one.
    assert.deepEqual(names(await batch({ Filters: [{ Key: 'all', Values: ['PAYMENT key'] }] })),
      ['prod/api-key']);
    assert.deepEqual(names(await batch({ Filters: [{ Key: 'all', Values: ['edge'] }] })),
      ['prod/tls-key']);
  });
await check('BatchGetSecretValue MaxResults and NextToken: pages, and the SDK paginator',
  async () => {
    const filters = [{ Key: 'name', Values: ['prod/'] }];
    const p1 = await batch({ Filters: filters, MaxResults: 2 });
    assert.deepEqual(names(p1), ['prod/api-key', 'prod/db']);
    assert.equal(typeof p1.NextToken, 'string');
    // A page of errors only still counts against MaxResults and carries a NextToken.
    const p2 = await batch({ Filters: filters, MaxResults: 2, NextToken: p1.NextToken });
    assert.deepEqual(names(p2), []);
    assert.deepEqual(p2.Errors.map((e) => e.SecretId), ['prod/denied', 'prod/kms-broken']);
    assert.equal(typeof p2.NextToken, 'string');
    const p3 = await batch({ Filters: filters, MaxResults: 2, NextToken: p2.NextToken });
    assert.deepEqual(names(p3), ['prod/tls-key']);
    assert.deepEqual(p3.Errors, []);
    assert.equal(p3.NextToken, undefined);
    const seen = [];
    let pages = 0;
    for await (const page of paginateBatchGetSecretValue({ client: sm, pageSize: 1 },
      { Filters: filters })) {
      pages++;
      seen.push(...names(page), ...page.Errors.map((e) => e.SecretId));
    }
    assert.equal(pages, 5);
    assert.deepEqual(seen, ['prod/api-key', 'prod/db', 'prod/denied', 'prod/kms-broken',
      'prod/tls-key']);
  });
await check('BatchGetSecretValue: AWS\'s errors for bad combinations, limits and tokens',
  async () => {
    const cases = [
      [{}, 'InvalidParameterException'],
      [{ SecretIdList: ['prod/db'], Filters: [{ Key: 'name', Values: ['p'] }] },
        'InvalidParameterException'],
      [{ SecretIdList: ['prod/db'], MaxResults: 5 }, 'InvalidParameterException'],
      [{ Filters: [{ Key: 'name', Values: ['p'] }], MaxResults: 21 }, 'ValidationException'],
      [{ Filters: [{ Key: 'name', Values: ['p'] }], MaxResults: 0 }, 'ValidationException'],
      [{ Filters: [{ Key: 'nom', Values: ['p'] }] }, 'ValidationException'],
      [{ Filters: [{ Key: 'name', Values: ['a#b'] }] }, 'ValidationException'],
      [{ Filters: [{ Key: 'name', Values: [] }] }, 'ValidationException'],
      [{ Filters: [] }, 'ValidationException'],
      [{ SecretIdList: Array.from({ length: 21 }, (_, i) => `s${i}`) }, 'ValidationException'],
      [{ Filters: [{ Key: 'name', Values: ['p'] }], NextToken: 'bm90LWEtdG9rZW4=' },
        'InvalidNextTokenException'],
    ];
    for (const [input, name] of cases) {
      const e = await failure(batch(input));
      assert.equal(e.name, name, `${JSON.stringify(input).slice(0, 80)}: ${e.name} ${e.message}`);
      assert.equal(e.$metadata.httpStatusCode, 400);
    }
    // A token is good only for the search that gave it.
    const p1 = await batch({ Filters: [{ Key: 'name', Values: ['prod/'] }], MaxResults: 1 });
    const e = await failure(batch({ Filters: [{ Key: 'name', Values: ['prod/d'] }],
      NextToken: p1.NextToken }));
    assert.equal(e.name, 'InvalidNextTokenException');
  });

// ---- SSM Parameter Store -------------------------------------------------------------------
await check('GetParameter: String, with ARN, DataType, Version, Date', async () => {
  const r = await param(ssm, { Name: '/app/prod/db/host' });
  assert.equal(r.Parameter.Value, 'db.internal');
  assert.equal(r.Parameter.Type, 'String');
  assert.equal(r.Parameter.Version, 1);
  assert.equal(r.Parameter.DataType, 'text');
  assert.equal(r.Parameter.ARN, 'arn:aws:ssm:us-east-1:123456789012:parameter/app/prod/db/host');
  assert.ok(r.Parameter.LastModifiedDate instanceof Date);
});
await check('GetParameter: StringList is one comma-joined Value', async () => {
  const r = await param(ssm, { Name: '/app/prod/allowed-origins' });
  assert.equal(r.Parameter.Type, 'StringList');
  assert.deepEqual(r.Parameter.Value.split(','),
    ['https://a.example', 'https://b.example', 'https://c.example']);
});
await check('GetParameter: SecureString is ciphertext without WithDecryption, plaintext with',
  async () => {
    const enc = await param(ssm, { Name: '/app/prod/db/password' });
    assert.equal(enc.Parameter.Type, 'SecureString');
    assert.notEqual(enc.Parameter.Value, 's3cure-Pa55');
    assert.ok(!enc.Parameter.Value.includes('s3cure'));
    assert.match(enc.Parameter.Value, /^[A-Za-z0-9+/]+=*$/);
    const dec = await param(ssm, { Name: '/app/prod/db/password', WithDecryption: true });
    assert.equal(dec.Parameter.Value, 's3cure-Pa55');
  });
await check('GetParameter: :version and :label selectors, Selector echoed, latest by default',
  async () => {
    const v1 = await param(ssm, { Name: '/app/prod/feature-flags:1' });
    assert.equal(v1.Parameter.Value, '{"beta":false}');
    assert.equal(v1.Parameter.Version, 1);
    assert.equal(v1.Parameter.Selector, ':1');
    assert.equal(v1.Parameter.Name, '/app/prod/feature-flags');
    const canary = await param(ssm, { Name: '/app/prod/feature-flags:canary' });
    assert.equal(canary.Parameter.Version, 2);
    assert.equal(canary.Parameter.Selector, ':canary');
    const latest = await param(ssm, { Name: '/app/prod/feature-flags' });
    assert.equal(latest.Parameter.Version, 3);
    assert.equal(latest.Parameter.Selector, undefined);
  });
await check('GetParameter: unknown version or label -> ParameterVersionNotFound', async () => {
  assert.equal((await failure(param(ssm, { Name: '/app/prod/feature-flags:9' }))).name,
    'ParameterVersionNotFound');
  assert.equal((await failure(param(ssm, { Name: '/app/prod/feature-flags:nolabel' }))).name,
    'ParameterVersionNotFound');
});
await check('GetParameter: unknown name -> ParameterNotFound (400)', async () => {
  const e = await failure(param(ssm, { Name: '/app/prod/nope' }));
  assert.equal(e.name, 'ParameterNotFound');
  assert.equal(e.$metadata.httpStatusCode, 400);
});
await check('GetParameter: by parameter ARN, with and without a leading slash', async () => {
  let r = await param(ssm,
    { Name: 'arn:aws:ssm:us-east-1:123456789012:parameter/app/prod/db/host' });
  assert.equal(r.Parameter.Value, 'db.internal');
  r = await param(ssm, { Name: 'arn:aws:ssm:us-east-1:123456789012:parameter/plain-name:1' });
  assert.equal(r.Parameter.Value, 'no leading slash');
});
await check('GetParameter: AccessDenied on a denied parameter', async () => {
  assert.equal((await failure(param(ssm, { Name: '/app/prod/denied' }))).name,
    'AccessDeniedException');
});
await check('GetParameter: /aws/reference/secretsmanager/ returns the secret, SSM-shaped',
  async () => {
    const r = await param(ssm, { Name: '/aws/reference/secretsmanager/prod/db', WithDecryption: true });
    assert.equal(JSON.parse(r.Parameter.Value).password, 'n3w-Pa55word');
    assert.equal(r.Parameter.Type, 'SecureString');
    assert.equal(r.Parameter.Version, 0);
    assert.equal(r.Parameter.ARN, dbArn);
    const src = JSON.parse(r.Parameter.SourceResult);
    assert.equal(src.name, 'prod/db');
    assert.deepEqual(src.versionStages, ['AWSCURRENT']);
    assert.equal(JSON.parse(src.secretString).password, 'n3w-Pa55word');
    const prev = await param(ssm,
      { Name: '/aws/reference/secretsmanager/prod/db:AWSPREVIOUS', WithDecryption: true });
    assert.equal(JSON.parse(prev.Parameter.Value).password, 'old-Pa55word');
    assert.equal(prev.Parameter.Selector, ':AWSPREVIOUS');
  });
await check('GetParameter: /aws/reference/ without WithDecryption -> ValidationException',
  async () => {
    const e = await failure(param(ssm, { Name: '/aws/reference/secretsmanager/prod/db' }));
    assert.equal(e.name, 'ValidationException');
  });
await check('GetParameters: found ones in Parameters, the rest in InvalidParameters', async () => {
  const r = await ssm.send(new GetParametersCommand({
    Names: ['/app/prod/db/host', '/app/prod/nope', '/app/prod/db/password'], WithDecryption: true }));
  assert.deepEqual(r.Parameters.map((p) => p.Value), ['db.internal', 's3cure-Pa55']);
  assert.deepEqual(r.InvalidParameters, ['/app/prod/nope']);
});

await check('GetParameters: SecureString ciphertext without WithDecryption, selectors, order',
  async () => {
    const r = await ssm.send(new GetParametersCommand({
      Names: ['/app/prod/db/password', '/app/prod/nope', '/app/prod/feature-flags:1',
        '/app/prod/feature-flags:99', '/app/prod/db/host'] }));
    assert.deepEqual(r.Parameters.map((p) => p.Name),
      ['/app/prod/db/password', '/app/prod/feature-flags', '/app/prod/db/host']);
    const [enc, flags, host] = r.Parameters;
    assert.equal(enc.Type, 'SecureString');
    assert.ok(!enc.Value.includes('s3cure'));
    assert.match(enc.Value, /^[A-Za-z0-9+/]+=*$/);
    assert.equal(flags.Selector, ':1');
    assert.equal(flags.Version, 1);
    assert.equal(flags.Value, '{"beta":false}');
    assert.equal(host.Value, 'db.internal');
    for (const p of r.Parameters) {
      assert.ok(p.ARN.startsWith('arn:aws:ssm:us-east-1:123456789012:parameter/'));
      assert.ok(p.LastModifiedDate instanceof Date);
      assert.equal(p.DataType, 'text');
    }
    assert.deepEqual(r.InvalidParameters, ['/app/prod/nope', '/app/prod/feature-flags:99']);
    const all = await ssm.send(new GetParametersCommand({ Names: ['/app/prod/db/host'] }));
    assert.deepEqual(all.InvalidParameters, []);
    const dec = await ssm.send(new GetParametersCommand({
      Names: ['/app/prod/db/password'], WithDecryption: true }));
    assert.equal(dec.Parameters[0].Value, 's3cure-Pa55');
    assert.equal((await failure(ssm.send(new GetParametersCommand({ Names: [] })))).name,
      'ValidationException');
    assert.equal((await failure(ssm.send(new GetParametersCommand({
      Names: Array.from({ length: 11 }, (_, i) => `/p${i}`) })))).name, 'ValidationException');
  });

// ---- SigV4 -----------------------------------------------------------------------------------
await check('a wrong secret key -> InvalidSignatureException (403)', async () => {
  const bad = clients({ credentials: { accessKeyId: AKID, secretAccessKey: 'not-the-secret' } });
  const e = await failure(secret(bad.sm, { SecretId: 'prod/db' }));
  assert.equal(e.name, 'InvalidSignatureException');
  assert.equal(e.$metadata.httpStatusCode, 403);
  assert.match(e.message, /signature we calculated does not match/);
});
await check('an unknown access key -> UnrecognizedClientException', async () => {
  const bad = clients({ credentials: { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: SECRET } });
  assert.equal((await failure(param(bad.ssm, { Name: '/app/prod/db/host' }))).name,
    'UnrecognizedClientException');
});
await check('a signature scoped to another region -> InvalidSignatureException', async () => {
  const other = clients({ region: 'eu-west-1' });
  const e = await failure(secret(other.sm, { SecretId: 'prod/db' }));
  assert.equal(e.name, 'InvalidSignatureException');
  assert.match(e.message, /region/);
});
await check('session token: required and checked for a key configured with one', async () => {
  const good = clients({ credentials:
    { accessKeyId: 'ASIATOKENKEY', secretAccessKey: 'token-secret', sessionToken: 'tok-123' } });
  assert.equal((await param(good.ssm, { Name: '/app/prod/db/host' })).Parameter.Value,
    'db.internal');
  const wrong = clients({ credentials:
    { accessKeyId: 'ASIATOKENKEY', secretAccessKey: 'token-secret', sessionToken: 'tok-999' } });
  assert.equal((await failure(param(wrong.ssm, { Name: '/app/prod/db/host' }))).name,
    'UnrecognizedClientException');
  const none = clients({ credentials:
    { accessKeyId: 'ASIATOKENKEY', secretAccessKey: 'token-secret' } });
  assert.equal((await failure(param(none.ssm, { Name: '/app/prod/db/host' }))).name,
    'UnrecognizedClientException');
});

// ---- control endpoints: faults, rotation, latency, counters ----------------------------------
await check('counters: calls, errors and one API connection for a kept-alive client', async () => {
  await control('reset');
  const c = clients();
  for (let i = 0; i < 5; i++) {
    await secret(c.sm, { SecretId: 'prod/api-key' });
  }
  await failure(secret(c.sm, { SecretId: 'prod/nope' }));
  const s = await stats();
  assert.equal(s.ops.GetSecretValue.calls, 6);
  assert.equal(s.ops.GetSecretValue.errors, 1);
  assert.equal(s.ops.GetParameter.calls, 0);
  assert.equal(s.requests, 6);
  assert.equal(s.api_connections, 1, `keep-alive: ${JSON.stringify(s)}`);
});
await check('fail: the next N calls of one operation fail as asked, then it recovers', async () => {
  await control('reset');
  await control('fail?op=GetSecretValue&status=500&type=InternalServiceError&count=2');
  for (let i = 0; i < 2; i++) {
    const e = await failure(secret(sm, { SecretId: 'prod/api-key' }));
    assert.equal(e.name, 'InternalServiceError');
    assert.equal(e.$metadata.httpStatusCode, 500);
  }
  assert.equal((await param(ssm, { Name: '/app/prod/db/host' })).Parameter.Value, 'db.internal');
  assert.equal((await secret(sm, { SecretId: 'prod/api-key' })).SecretString,
    'sk_live_0123456789abcdef');
  const s = await stats();
  assert.equal(s.ops.GetSecretValue.calls, 3);
  assert.equal(s.ops.GetSecretValue.errors, 2);
  assert.equal(s.pending_faults, 0);
});
await check('throttle: ThrottlingException, counted; the SDK retries through it', async () => {
  await control('reset');
  await control('throttle?op=GetParameter&count=1');
  const e = await failure(param(ssm, { Name: '/app/prod/db/host' }));
  assert.equal(e.name, 'ThrottlingException');
  assert.equal(e.message, 'Rate exceeded');
  await control('throttle?op=GetParameter&count=2');
  const retrying = clients({ maxAttempts: 3 });
  const r = await param(retrying.ssm, { Name: '/app/prod/db/host' });
  assert.equal(r.$metadata.attempts, 3);
  const s = await stats();
  assert.equal(s.ops.GetParameter.calls, 4);
  assert.equal(s.ops.GetParameter.throttled, 3);
  assert.equal(s.ops.GetParameter.errors, 3);
});
await check('rotate: the new value is AWSCURRENT, the old one AWSPREVIOUS', async () => {
  const before = await secret(sm, { SecretId: 'prod/api-key' });
  const rot = await control(`rotate?secretId=prod/api-key&value=${encodeURIComponent('sk_live_r0tated&=')}`);
  const now = await secret(sm, { SecretId: 'prod/api-key' });
  assert.equal(now.SecretString, 'sk_live_r0tated&=');
  assert.equal(now.VersionId, rot.VersionId);
  assert.notEqual(now.VersionId, before.VersionId);
  const prev = await secret(sm, { SecretId: 'prod/api-key', VersionStage: 'AWSPREVIOUS' });
  assert.equal(prev.SecretString, 'sk_live_0123456789abcdef');
  assert.equal(prev.VersionId, before.VersionId);
});
await check('put-parameter: a new version becomes the latest, older ones stay readable', async () => {
  const put = await control('put-parameter?name=/app/prod/db/host&value=db2.internal&label=live');
  assert.equal(put.Version, 2);
  assert.equal((await param(ssm, { Name: '/app/prod/db/host' })).Parameter.Value, 'db2.internal');
  assert.equal((await param(ssm, { Name: '/app/prod/db/host:live' })).Parameter.Version, 2);
  assert.equal((await param(ssm, { Name: '/app/prod/db/host:1' })).Parameter.Value, 'db.internal');
});
await check('latency: each call waits at least the injected latency', async () => {
  await control('latency?ms=250');
  const t0 = performance.now();
  await param(ssm, { Name: '/app/prod/db/host' });
  const took = performance.now() - t0;
  await control('latency?ms=0');
  assert.ok(took >= 245, `took ${took} ms`);
});
await check('latency does not serialize clients: 8 parallel calls take about one latency',
  async () => {
    await control('latency?ms=500');
    const cs = Array.from({ length: 8 }, () => clients());
    const t0 = performance.now();
    const rs = await Promise.all(cs.map((c) => param(c.ssm, { Name: '/app/prod/db/host' })));
    const took = performance.now() - t0;
    await control('latency?ms=0');
    assert.equal(rs.length, 8);
    assert.ok(took >= 495, `took ${took} ms`);
    assert.ok(took < 2000, `8 x 500 ms took ${took} ms: requests were serialized`);
  });
await check('cold: only the first request of a new connection pays the cold cost', async () => {
  await control('latency?ms=0&cold=700');
  const c = clients();
  let t0 = performance.now();
  await param(c.ssm, { Name: '/app/prod/db/host' });
  const first = performance.now() - t0;
  t0 = performance.now();
  await param(c.ssm, { Name: '/app/prod/db/host' });
  const second = performance.now() - t0;
  await control('latency?ms=0&cold=0');
  assert.ok(first >= 695, `first ${first} ms`);
  assert.ok(second < 600, `second ${second} ms (kept alive: no cold cost)`);
});
await check('hang: a client with a short timeout gives up; the next call is served', async () => {
  await control('hang?op=GetSecretValue&count=1&ms=3000');
  const c = clients({ requestTimeout: 300 });
  const t0 = performance.now();
  const e = await failure(secret(c.sm, { SecretId: 'prod/api-key' }));
  const took = performance.now() - t0;
  assert.equal(e.name, 'TimeoutError', `${e.name}: ${e.message}`);
  assert.ok(took < 2500, `gave up after ${took} ms`);
  assert.equal((await secret(sm, { SecretId: 'prod/db' })).Name, 'prod/db');
});

console.log(failed ? `# ${failed} checks failed` : '# all checks passed');
process.exit(failed ? 1 : 0);
