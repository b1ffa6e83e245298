// sim/functions/lib/extension.mjs: reading secrets and parameters through the local extension
// (stash, or AWS's Parameters and Secrets Lambda Extension), the way AWS's documentation and blog
// posts do it: Node's built-in fetch on http://localhost:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT
// with the X-Aws-Parameters-Secrets-Token header set to AWS_SESSION_TOKEN.
//
// Errors: a non-200 answer throws an Error named ExtensionError carrying the status and the
// answer's __type (the answer never holds a secret value on an error path).  Values are returned
// to the caller and never logged here.
const port = process.env.PARAMETERS_SECRETS_EXTENSION_HTTP_PORT || '2773';
const base = `http://127.0.0.1:${port}`;

async function get(route) {
    const r = await fetch(`${base}${route}`, {
        headers: { 'X-Aws-Parameters-Secrets-Token': process.env.AWS_SESSION_TOKEN || '' },
    });
    const text = await r.text();
    if (r.status !== 200) {
        let type = '';
        try {
            type = JSON.parse(text).__type || '';
        } catch (e) {
            type = text.slice(0, 100);
        }
        const err = new Error(`extension answered ${r.status} ${type} for ${route.split('?')[0]}`);
        err.name = 'ExtensionError';
        err.status = r.status;
        throw err;
    }
    return JSON.parse(text);
}

/* Resolves to the secret's SecretString. */
export async function getSecret(secretId) {
    const body = await get(`/secretsmanager/get?secretId=${encodeURIComponent(secretId)}`);
    return body.SecretString;
}

/* Resolves to the parameter's Value (decrypted when it is a SecureString). */
export async function getParameter(name) {
    const body = await get(`/systemsmanager/parameters/get?name=${encodeURIComponent(name)}` +
                           '&withDecryption=true');
    return body.Parameter.Value;
}
