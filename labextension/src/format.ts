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

/**
 * A ready-to-paste curl command that sends one input. Unless the endpoint is public it shows
 * the token, read from $NBSERVE_TOKEN (`export NBSERVE_TOKEN=$(nbserve token)`): the command
 * never holds the token itself.
 */
export function curlCommand(url: string, input: unknown = 'hello', isPublic = false): string {
  const body = JSON.stringify({ input });
  const auth = isPublic ? '' : ` -H "Authorization: Bearer $NBSERVE_TOKEN"`;
  return `curl -s -X POST ${shellQuote(url)}${auth} -H 'Content-Type: application/json' -d ${shellQuote(body)}`;
}

/** Whether a browser at ``hostname`` runs on the serving machine (a loopback name). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export interface IEndpointUrls {
  /** The URL to show first and copy: the one this browser (and a teammate) can reach. */
  primary: string;
  /** Whether ``primary`` is the route through the Jupyter server (Jupyter's auth). */
  viaJupyter: boolean;
  /** The other URL, with what it is for; null where there is none. */
  secondary: { url: string; label: string } | null;
}

/**
 * Which of an endpoint's URLs to show, for a browser at ``origin`` (``window.location.origin``).
 * A browser on another machine (Binder, JupyterHub, a remote JupyterLab) cannot reach the
 * endpoint's own port: the route through the Jupyter server comes first there, and the direct
 * URL is shown as the one for the serving machine.
 */
export function endpointUrls(
  endpoint: Pick<IEndpoint, 'url' | 'jupyter_url'>,
  origin: string
): IEndpointUrls {
  const jupyter = endpoint.jupyter_url ? new URL(endpoint.jupyter_url, origin).href : null;
  if (jupyter === null) {
    return { primary: endpoint.url, viaJupyter: false, secondary: null };
  }
  if (isLoopbackHost(new URL(origin).hostname)) {
    return { primary: endpoint.url, viaJupyter: false, secondary: { url: jupyter, label: 'through Jupyter' } };
  }
  return { primary: jupyter, viaJupyter: true, secondary: { url: endpoint.url, label: 'on the serving machine' } };
}

/**
 * A curl command for the route through the Jupyter server: Jupyter's own token, read from
 * $JUPYTER_TOKEN, lets it in (the server adds the endpoint's token when it forwards).
 */
export function jupyterCurlCommand(url: string, input: unknown = 'hello'): string {
  const body = JSON.stringify({ input });
  return `curl -s -X POST ${shellQuote(url)} -H "Authorization: token $JUPYTER_TOKEN" -H 'Content-Type: application/json' -d ${shellQuote(body)}`;
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

/**
 * SVG polyline points for a sparkline of ``values`` in a ``width`` x ``height`` box, scaled to
 * their own maximum and drawn at the right edge (newest) over ``slots`` positions; gaps
 * (null) split the line into runs. Empty when fewer than two values are known.
 */
export function sparklineRuns(
  values: (number | null)[],
  slots: number,
  width: number,
  height: number
): string[] {
  const known = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (known.length < 2) {
    return [];
  }
  const peak = Math.max(...known) || 1;
  const step = width / Math.max(slots - 1, 1);
  const offset = slots - values.length;
  const runs: string[][] = [[]];
  values.forEach((value, index) => {
    if (value === null || !Number.isFinite(value)) {
      runs.push([]);
      return;
    }
    const x = (offset + index) * step;
    const y = height - 1 - (height - 2) * (value / peak);
    runs[runs.length - 1].push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  return runs.filter(run => run.length > 1).map(run => run.join(' '));
}

/** A URL as the sidebar prints it: without the scheme, which says nothing in a narrow column. */
export function displayUrl(url: string): string {
  return url.replace(/^https?:\/\//, '');
}

/** A shown URL cut after each '/': where a narrow column may wrap it, between the parts of
 * its path rather than inside a name (the parts joined give the URL back). */
export function urlParts(url: string): string[] {
  return url.split(/(?<=\/)/);
}
