/** Where memshift finds Temporal: the same environment for worker and CLI. */
export const TASK_QUEUE = process.env.MEMSHIFT_TASK_QUEUE ?? 'memshift';

export function temporalConfig() {
  return {
    address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    namespace: process.env.TEMPORAL_NAMESPACE ?? 'default',
  };
}
