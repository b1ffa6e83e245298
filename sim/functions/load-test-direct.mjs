// load-test without an extension: the same reads with the AWS SDK v3 on every invoke (no cache).
import * as src from './lib/direct.mjs';
import { loadTest } from './lib/handlers.mjs';

export const handler = loadTest(src);
