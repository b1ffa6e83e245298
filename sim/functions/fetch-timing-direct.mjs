// fetch-timing without an extension: the same read with the AWS SDK v3 GetSecretValue.
import * as src from './lib/direct.mjs';
import { fetchTiming } from './lib/handlers.mjs';

export const handler = fetchTiming(src, 'direct');
