// Drives stash's local API with Node's built-in fetch, as the AWS blog posts and docs show it:
// http://localhost:<port>, the X-Aws-Parameters-Secrets-Token header set to AWS_SESSION_TOKEN,
// then JSON.parse of SecretString.  "localhost" resolves to ::1 first on Node 20, so this also
// checks the IPv6 listener.  Exits non-zero with a message on the first mismatch.
//   STASH_PORT AWS_SESSION_TOKEN SECRET_ID EXPECT_JSON_KEY EXPECT_JSON_VALUE PARAM_NAME
//   EXPECT_PARAM_VALUE  node tests/node/stash_fetch.mjs
const env = process.env;
const base = `http://localhost:${env.STASH_PORT}`;
const headers = { 'X-Aws-Parameters-Secrets-Token': env.AWS_SESSION_TOKEN };

function fail(msg) {
  console.error(`stash_fetch: ${msg}`);
  process.exit(1);
}

async function getSecret(secretId) {
  const res = await fetch(`${base}/secretsmanager/get?secretId=${encodeURIComponent(secretId)}`,
                          { headers });
  if (!res.ok) fail(`secret ${secretId}: status ${res.status}: ${await res.text()}`);
  if (!res.headers.get('content-type').startsWith('application/json')) fail('content-type');
  return res.json();
}

async function getParameter(name) {
  const url = `${base}/systemsmanager/parameters/get?name=${encodeURIComponent(name)}` +
              '&withDecryption=true';
  const res = await fetch(url, { headers });
  if (!res.ok) fail(`parameter ${name}: status ${res.status}: ${await res.text()}`);
  return res.json();
}

const secret = await getSecret(env.SECRET_ID);
const inner = JSON.parse(secret.SecretString);
if (inner[env.EXPECT_JSON_KEY] !== env.EXPECT_JSON_VALUE) {
  fail(`SecretString.${env.EXPECT_JSON_KEY} is not the expected value`);
}
const param = await getParameter(env.PARAM_NAME);
if (param.Parameter.Value !== env.EXPECT_PARAM_VALUE) fail('Parameter.Value differs');
if (param.Parameter.Name !== env.PARAM_NAME) fail('Parameter.Name differs');

// A wrong token: 401, text/plain, AWS's exact body.
const bad = await fetch(`${base}/secretsmanager/get?secretId=x`,
                        { headers: { 'X-Aws-Parameters-Secrets-Token': 'wrong' } });
if (bad.status !== 401 || (await bad.text()) !== 'bad session token or header key') {
  fail(`wrong token gave ${bad.status}`);
}
// Many concurrent requests over keep-alive connections all succeed and agree.
const all = await Promise.all(Array.from({ length: 20 }, () => getSecret(env.SECRET_ID)));
if (!all.every((s) => s.SecretString === secret.SecretString)) fail('concurrent answers differ');
console.log('stash_fetch: ok');
