// Plain functions that turn an endpoint's figures into text (no JupyterLab imports: jest tests them).

import { IEndpoint } from './model';

const DASH = '—';

/** A latency in milliseconds: "—" when unknown, "840 µs", "12.3 ms", "1.24 s". */
export function formatLatency(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) {
    return DASH;
  }
  if (ms < 1) {
    return `${Math.round(ms * 1000)} µs`;
  }
  if (ms < 100) {
    return `${ms.toFixed(1)} ms`;
  }
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  return `${(ms / 1000).toFixed(2)} s`;
}

/** Requests per second: "—" when unknown, "0/s", "0.25/s", "12.3/s", "1,204/s". */
export function formatRate(perSecond: number | null | undefined): string {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) {
    return DASH;
  }
  if (perSecond === 0) {
    return '0/s';
  }
  if (perSecond < 1) {
    return `${perSecond.toFixed(2)}/s`;
  }
  if (perSecond < 100) {
    return `${perSecond.toFixed(1)}/s`;
  }
  return `${Math.round(perSecond).toLocaleString('en-US')}/s`;
}

/** "1/2 replicas"; a gone endpoint has none. */
export function formatReplicas(endpoint: IEndpoint): string {
  const { running, target } = endpoint.replicas;
  return `${running}/${target}`;
}

/** A POSIX shell word: safe to paste whatever the URL holds. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A ready-to-paste curl command that sends one input. */
export function curlCommand(url: string, input: unknown = 'hello'): string {
  const body = JSON.stringify({ input });
  return `curl -s -X POST ${shellQuote(url)} -H 'Content-Type: application/json' -d ${shellQuote(body)}`;
}

/** What the owner column says: the notebook's name, and whether its kernel still runs. */
export function ownerLabel(endpoint: IEndpoint): string {
  const { notebook, state } = endpoint.owner;
  const name = notebook ? notebook.split('/').pop() : 'no notebook';
  if (state === 'exited') {
    return `${name} (kernel exited)`;
  }
  return name ?? 'no notebook';
}

/** "3 s ago", "5 min ago", "2 h ago" from a time in seconds since the epoch. */
export function formatAge(seconds: number, nowMs: number = Date.now()): string {
  const age = Math.max(0, nowMs / 1000 - seconds);
  if (age < 90) {
    return `${Math.round(age)} s ago`;
  }
  if (age < 90 * 60) {
    return `${Math.round(age / 60)} min ago`;
  }
  return `${Math.round(age / 3600)} h ago`;
}
