// load-test through the extension: a parameter and a secret on every invoke, then WORK_MS of work
// (the load-test function of the AWS Compute blog post on caching with Lambda extensions).
import * as src from './lib/extension.mjs';
import { loadTest } from './lib/handlers.mjs';

export const handler = loadTest(src);
