// What the server extension answers, and the panel's state derived from it (pure: jest tests it).

export interface IFigures {
  p50_ms?: number | null;
  p95_ms?: number | null;
  p99_ms?: number | null;
  requests_per_s?: number | null;
  requests?: number;
  [key: string]: unknown;
}

export interface IEndpoint {
  name: string;
  backend: string;
  address: string | null;
  url: string;
  /** The endpoint through this Jupyter server (a path below its base URL). */
  jupyter_url?: string;
  /** It answers HTTP without the token (``--public``). */
  public?: boolean;
  status: string;
  checked: boolean;
  replicas: { running: number; target: number };
  figures: IFigures;
  owner: { kernel_id: string | null; notebook: string | null; state: 'running' | 'exited' | 'unknown' };
  created_at: number;
  updated_at: number;
}

export interface IListReply {
  endpoints: IEndpoint[];
  problem: string | null;
}

export type PanelState =
  | { kind: 'loading' }
  | { kind: 'ready'; endpoints: IEndpoint[]; problem: string | null }
  | { kind: 'empty'; problem: string | null }
  | { kind: 'missing' }
  | { kind: 'error'; message: string; endpoints: IEndpoint[] };

/** An answer from the API that was not a success. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

/** Endpoints that serve first, then the rest; by name within each group. */
export function sortEndpoints(endpoints: IEndpoint[]): IEndpoint[] {
  const rank = (e: IEndpoint): number => (isLive(e) ? 0 : 1);
  return [...endpoints].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

/** An endpoint that answers (or is about to): not gone, failed or deleted. */
export function isLive(endpoint: IEndpoint): boolean {
  return !['gone', 'failed', 'deleted', 'deleting'].includes(endpoint.status);
}

export function stateFromReply(reply: IListReply): PanelState {
  if (reply.endpoints.length === 0) {
    return { kind: 'empty', problem: reply.problem };
  }
  return { kind: 'ready', endpoints: sortEndpoints(reply.endpoints), problem: reply.problem };
}

/**
 * The state after a failed poll. A 404 on the route means the server extension is not
 * enabled; any other failure keeps the last endpoints on screen, marked as stale.
 */
export function stateFromError(error: unknown, previous: PanelState): PanelState {
  if (error instanceof ApiError && error.status === 404) {
    return { kind: 'missing' };
  }
  const message = error instanceof Error ? error.message : String(error);
  const endpoints = previous.kind === 'ready' || previous.kind === 'error' ? previous.endpoints : [];
  return { kind: 'error', message, endpoints };
}

/** Requests/s and median latency of one endpoint at each poll, oldest first (the sparkline's). */
export interface ITrend {
  rate: (number | null)[];
  p50: (number | null)[];
}

/** Polls a sparkline keeps: two minutes at the panel's 2 s refresh. */
export const TREND_POLLS = 60;

/**
 * The trends after one more poll: each listed endpoint gains its figures of now (the oldest
 * fall off past ``limit``), and endpoints no longer listed are dropped.
 */
export function recordTrends(
  trends: ReadonlyMap<string, ITrend>,
  endpoints: IEndpoint[],
  limit: number = TREND_POLLS
): Map<string, ITrend> {
  const next = new Map<string, ITrend>();
  for (const endpoint of endpoints) {
    const last = trends.get(endpoint.name) ?? { rate: [], p50: [] };
    next.set(endpoint.name, {
      rate: [...last.rate, endpoint.figures.requests_per_s ?? null].slice(-limit),
      p50: [...last.p50, endpoint.figures.p50_ms ?? null].slice(-limit)
    });
  }
  return next;
}
