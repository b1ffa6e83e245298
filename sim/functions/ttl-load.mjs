// ttl-load through the extension: one parameter per invoke, each invoke lasting BUSY_MS (the
// function of the AWS Compute blog post's TTL load test; the work is a wait, not CPU).
import * as src from './lib/extension.mjs';
import { ttlLoad } from './lib/handlers.mjs';

export const handler = ttlLoad(src);
