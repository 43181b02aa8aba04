/**
 * Routing of requests to cloud replicas (one per GPU). Pure.
 */
export type RouterKind = 'least-loaded' | 'round-robin';

export interface Router {
  /** Pick a replica given each replica's number of active requests and queued tokens. */
  pick(activeRequests: ArrayLike<number>, queuedTokens: ArrayLike<number>): number;
}

/** Fewest active requests; ties broken by fewer queued tokens, then lowest index (deterministic). */
export class LeastLoadedRouter implements Router {
  pick(active: ArrayLike<number>, queued: ArrayLike<number>): number {
    let best = 0;
    for (let i = 1; i < active.length; i++) {
      if (active[i] < active[best] || (active[i] === active[best] && queued[i] < queued[best])) best = i;
    }
    return best;
  }
}

export class RoundRobinRouter implements Router {
  private nextIndex = 0;
  pick(active: ArrayLike<number>): number {
    const i = this.nextIndex % active.length;
    this.nextIndex = i + 1;
    return i;
  }
}

export function makeRouter(kind: RouterKind): Router {
  return kind === 'round-robin' ? new RoundRobinRouter() : new LeastLoadedRouter();
}
