/**
 * Where memshift finds Temporal: the same settings for worker and CLI, read
 * the standard way (@temporalio/envconfig): a profile from the Temporal config
 * file (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE) overridden by TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, TEMPORAL_API_KEY and TEMPORAL_TLS_*. So a dev server,
 * an mTLS cluster and Temporal Cloud need no code change.
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';

export const TASK_QUEUE = process.env.MEMSHIFT_TASK_QUEUE ?? 'memshift';

export interface TemporalConfig {
  connectionOptions: NativeConnectionOptions & { address: string };
  namespace: string;
}

export function temporalConfig(): TemporalConfig {
  const { connectionOptions, namespace } = loadClientConnectConfig();
  return {
    connectionOptions: { ...connectionOptions, address: connectionOptions.address ?? '127.0.0.1:7233' },
    namespace: namespace ?? 'default',
  };
}
