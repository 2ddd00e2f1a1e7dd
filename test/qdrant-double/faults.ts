/**
 * Faults a test turns on from its own process, and counters that prove they
 * fired. Counts in `fail503` / `dropConnections` are consumed by matching
 * requests in that order: first the 503s, then the drops.
 */
export interface FaultSettings {
  /** Delay before every matching request is handled. */
  latencyMs?: number;
  /** The next N matching requests answer 503 with Qdrant's error body. */
  fail503?: number;
  /** The next N matching requests get their socket destroyed, no response. */
  dropConnections?: number;
  /** Drop only after the request took effect: a lost acknowledgement rather than a lost request. */
  dropAfterApplying?: boolean;
  /** Every Nth matching request answers 503. */
  failEvery?: number;
  /**
   * Every matching upsert stores this payload field as the string "corrupted"
   * (added where a point lacks it), so every read-back differs from what was
   * sent — silent corruption that only validation can catch.
   */
  corruptPayloadField?: string;
  /** Awaited once a matching request took effect, before it is answered: a test's write lands between a client's reads. */
  afterHandling?: (path: string) => Promise<void>;
  /** Only requests whose path matches take part (and consume counts). */
  onlyPaths?: RegExp;
}

/** What `corruptPayloadField` stores in place of the value sent. */
export const CORRUPTED_PAYLOAD_VALUE = 'corrupted';

export type FaultAction = 'pass' | 'fail503' | 'drop';

export interface FaultDecision {
  action: FaultAction;
  delayMs: number;
  dropAfterApplying: boolean;
  /** Set on a matching request while the fault is on; only upserts act on it. */
  corruptPayloadField?: string;
  afterHandling?: (path: string) => Promise<void>;
}

export class FaultInjector {
  private settings: FaultSettings = {};
  private fail503Left = 0;
  private dropsLeft = 0;
  private matchedSinceSet = 0;

  set(settings: FaultSettings): void {
    this.settings = { ...settings };
    this.fail503Left = settings.fail503 ?? 0;
    this.dropsLeft = settings.dropConnections ?? 0;
    this.matchedSinceSet = 0;
  }

  clear(): void {
    this.set({});
  }

  decide(path: string): FaultDecision {
    const { onlyPaths, latencyMs = 0, failEvery, dropAfterApplying = false, corruptPayloadField, afterHandling } = this.settings;
    // search() ignores a /g regex's lastIndex, so the same request always matches the same way.
    if (onlyPaths && path.search(onlyPaths) === -1) return { action: 'pass', delayMs: 0, dropAfterApplying };
    this.matchedSinceSet++;
    return { action: this.nextAction(failEvery), delayMs: latencyMs, dropAfterApplying, corruptPayloadField, afterHandling };
  }

  private nextAction(failEvery: number | undefined): FaultAction {
    if (this.fail503Left > 0) {
      this.fail503Left--;
      return 'fail503';
    }
    if (this.dropsLeft > 0) {
      this.dropsLeft--;
      return 'drop';
    }
    if (failEvery && this.matchedSinceSet % failEvery === 0) return 'fail503';
    return 'pass';
  }
}

export interface RouteCounters {
  requests: number;
  injected503: number;
  dropped: number;
}

/** Per-route counters, keyed like "PUT /collections/{name}/points". */
export class RequestStats {
  private readonly byRoute = new Map<string, RouteCounters>();

  record(route: string, event: keyof RouteCounters): void {
    const counters = this.byRoute.get(route) ?? { requests: 0, injected503: 0, dropped: 0 };
    counters[event]++;
    this.byRoute.set(route, counters);
  }

  route(route: string): RouteCounters {
    return { ...(this.byRoute.get(route) ?? { requests: 0, injected503: 0, dropped: 0 }) };
  }

  all(): Record<string, RouteCounters> {
    return Object.fromEntries([...this.byRoute].map(([route, counters]) => [route, { ...counters }]));
  }

  reset(): void {
    this.byRoute.clear();
  }
}
