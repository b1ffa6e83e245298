// init-three-secrets without an extension: three GetSecretValue calls with the AWS SDK v3 in init.
import * as src from './lib/direct.mjs';
import { initThreeSecrets } from './lib/handlers.mjs';

export const handler = await initThreeSecrets(src, 'direct');
