// fetch-timing through the extension: Node's fetch with the token header, timed and logged
// (the blog post that tabled cold and warm fetch times over three runs).
import * as src from './lib/extension.mjs';
import { fetchTiming } from './lib/handlers.mjs';

export const handler = fetchTiming(src, 'extension');
