// init-three-secrets through the extension: the handler exists only once three secrets are read
// (top-level await), so the reads happen during INIT, which stash serves.
import * as src from './lib/extension.mjs';
import { initThreeSecrets } from './lib/handlers.mjs';

export const handler = await initThreeSecrets(src, 'extension');
