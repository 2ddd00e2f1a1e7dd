/**
 * Whether this process's worker is shutting down (SIGTERM, deploys). Long
 * activities check it to stop early and cleanly: Temporal cancels them only
 * after the worker's shutdownGraceTime, which exists for the short ones.
 * One worker per process, so one flag per process.
 */
let stopping: () => boolean = () => false;

export function setWorkerStoppingCheck(check: () => boolean): void {
  stopping = check;
}

export function workerStopping(): boolean {
  return stopping();
}
