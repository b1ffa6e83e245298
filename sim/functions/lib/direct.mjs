// sim/functions/lib/direct.mjs: the same reads without an extension, as users write them without a
// cache: the AWS SDK for JavaScript v3 clients calling Secrets Manager and SSM directly.  The
// endpoints come from AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL_SSM (else
// AWS_ENDPOINT_URL), which point at fake-aws here; region and credentials from the usual AWS_*
// variables.  The clients are created once per process (module scope), as the SDK's guidance says,
// so their connections stay alive across invokes of one execution environment.
//
// The SDK is installed in tests/node (scripts/deps.sh); STASH_NODE_DIR overrides that folder.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.STASH_NODE_DIR || path.join(here, '..', '..', '..', 'tests', 'node');
const require = createRequire(path.join(nodeDir, 'package.json'));
const sm = require('@aws-sdk/client-secrets-manager');
const ssm = require('@aws-sdk/client-ssm');

function endpoint(specific) {
    return process.env[specific] || process.env.AWS_ENDPOINT_URL || undefined;
}

const region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1';
const smClient = new sm.SecretsManagerClient({
    region, endpoint: endpoint('AWS_ENDPOINT_URL_SECRETS_MANAGER'), maxAttempts: 3,
});
const ssmClient = new ssm.SSMClient({
    region, endpoint: endpoint('AWS_ENDPOINT_URL_SSM'), maxAttempts: 3,
});

/* Resolves to the secret's SecretString. */
export async function getSecret(secretId) {
    const out = await smClient.send(new sm.GetSecretValueCommand({ SecretId: secretId }));
    return out.SecretString;
}

/* Resolves to the parameter's Value (decrypted when it is a SecureString). */
export async function getParameter(name) {
    const out = await ssmClient.send(new ssm.GetParameterCommand({ Name: name,
                                                                  WithDecryption: true }));
    return out.Parameter.Value;
}
