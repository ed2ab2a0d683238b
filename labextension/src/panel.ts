// The "Endpoints" sidebar: polls the server extension and draws one row per endpoint.

import { JupyterFrontEnd } from '@jupyterlab/application';
import { Clipboard, Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { deleteEndpoint, listEndpoints } from './api';
import {
  curlCommand,
  displayUrl,
  endpointUrls,
  formatLatency,
  formatRate,
  formatReplicas,
  jupyterCurlCommand,
  sparklineRuns,
  ownerLabel,
  urlParts
} from './format';
import {
  IEndpoint,
  ITrend,
  PanelState,
  TREND_POLLS,
  isLive,
  recordTrends,
  stateFromError,
  stateFromReply
} from './model';

export const POLL_INTERVAL_MS = 2000; // at most every 2 s
const POLL_MAX_MS = 30000; // backing off on errors up to this

export class EndpointsPanel extends Widget {
  private _state: PanelState = { kind: 'loading' };
  private _trends: Map<string, ITrend> = new Map();
  private readonly _poll: Poll;

  constructor(
    private readonly _app: JupyterFrontEnd,
    icon: LabIcon
  ) {
    super();
    this.id = 'nbserve-endpoints';
    this.addClass('nbserve-EndpointsPanel');
    this.title.icon = icon;
    this.title.caption = 'nbserve endpoints';
    this.node.dataset.state = 'loading';
    this._poll = new Poll({
      factory: () => this._refresh(),
      frequency: { interval: POLL_INTERVAL_MS, backoff: true, max: POLL_MAX_MS },
      // Nothing to fetch while the panel is hidden (another sidebar tab) or the browser tab is.
      standby: () => (this.isVisible ? 'when-hidden' : true),
      name: 'nbserve:endpoints'
    });
    this._render();
  }

  get state(): PanelState {
    return this._state;
  }

  /** Poll now (after an action, or when the panel is shown). */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  private async _refresh(): Promise<void> {
    try {
      const reply = await listEndpoints();
      this._trends = recordTrends(this._trends, reply.endpoints);
      this._setState(stateFromReply(reply));
    } catch (error) {
      this._setState(stateFromError(error, this._state));
      throw error; // the poll backs off
    }
  }

  private _setState(state: PanelState): void {
    this._state = state;
    this._render();
  }

  // -- drawing ----------------------------------------------------------------------------
  private _render(): void {
    const state = this._state;
    this.node.dataset.state = state.kind;
    this.node.replaceChildren(header());
    if (state.kind === 'loading') {
      this.node.append(note('Loading endpoints…'));
    } else if (state.kind === 'missing') {
      this.node.append(
        note(
          'The nbserve server extension is not enabled on this Jupyter server, so endpoints cannot be listed. ' +
            'Install nbserve in the environment that runs Jupyter (pip install nbserve), check ' +
            '`jupyter server extension list`, and restart Jupyter.',
          'nbserve-error'
        )
      );
    } else if (state.kind === 'empty') {
      this.node.append(emptyState());
      if (state.problem) {
        this.node.append(note(state.problem, 'nbserve-problem'));
      }
    } else if (state.kind === 'ready' || state.kind === 'error') {
      if (state.kind === 'error') {
        this.node.append(note(`Could not refresh: ${state.message}. Retrying…`, 'nbserve-error'));
      } else if (state.problem) {
        this.node.append(note(`Cluster not reachable: ${state.problem}`, 'nbserve-problem'));
      }
      const list = document.createElement('ul');
      list.className = 'nbserve-EndpointList';
      list.append(...state.endpoints.map(e => this._row(e)));
      this.node.append(list);
    }
  }

  private _row(endpoint: IEndpoint): HTMLElement {
    const row = document.createElement('li');
    row.className = 'nbserve-Endpoint';
    row.dataset.name = endpoint.name;
    row.dataset.status = endpoint.status;
    if (!isLive(endpoint)) {
      row.classList.add('nbserve-mod-stale');
    }
    const title = el('div', 'nbserve-Endpoint-title');
    title.append(
      el('span', 'nbserve-Endpoint-name', endpoint.name),
      el('span', 'nbserve-Endpoint-backend', endpoint.backend),
      el('span', `nbserve-Endpoint-status nbserve-status-${endpoint.status}`, endpoint.status)
    );
    if (endpoint.public) {
      const tag = el('span', 'nbserve-Endpoint-public', 'public');
      tag.title = 'answers HTTP without the token';
      title.append(tag);
    }
    const figures = el('div', 'nbserve-Endpoint-figures');
    figures.append(
      figure('replicas', formatReplicas(endpoint), 'running/target'),
      figure('p50', formatLatency(endpoint.figures.p50_ms), 'median latency'),
      figure('p95', formatLatency(endpoint.figures.p95_ms), '95th percentile latency'),
      figure('rate', formatRate(endpoint.figures.requests_per_s), 'requests per second')
    );
    // A browser on another machine reaches the endpoint only through the Jupyter server.
    const urls = endpointUrls(endpoint, window.location.origin);
    // Whole URLs, wrapped where the column is narrow (a cut-off URL cannot be read or typed);
    // the scheme is left out of the text, not out of what is copied or in the title.
    const url = el('div', 'nbserve-Endpoint-url');
    const link = urlText('nbserve-url', urls.primary);
    link.dataset.route = urls.viaJupyter ? 'jupyter' : 'direct';
    url.append(
      link,
      button('Copy', 'nbserve-copy-url', () => Clipboard.copyToSystem(urls.primary), 'Copy URL')
    );
    if (urls.secondary !== null) {
      const other = el('div', 'nbserve-Endpoint-url-other');
      const otherUrl = urlText('nbserve-url-other', urls.secondary.url);
      other.append(el('span', 'nbserve-url-label', `${urls.secondary.label}: `), otherUrl);
      url.append(other);
    }
    const owner = el('div', 'nbserve-Endpoint-owner');
    if (endpoint.owner.notebook) {
      const open = el('a', 'nbserve-notebook', ownerLabel(endpoint)) as HTMLAnchorElement;
      open.href = '#';
      open.title = `Open ${endpoint.owner.notebook}`;
      open.onclick = event => {
        event.preventDefault();
        void this._app.commands.execute('docmanager:open', { path: endpoint.owner.notebook });
      };
      owner.append(open);
    } else {
      owner.append(el('span', 'nbserve-notebook-none', ownerLabel(endpoint)));
    }
    const actions = el('div', 'nbserve-Endpoint-actions');
    actions.append(
      button('Copy curl', 'nbserve-copy-curl', () =>
        Clipboard.copyToSystem(
          urls.viaJupyter
            ? jupyterCurlCommand(urls.primary)
            : curlCommand(endpoint.url, 'hello', endpoint.public)
        )
      ),
      // The endpoint describes itself (handler, batching, request shapes) in JSON on GET,
      // through the Jupyter server: the browser's session lets it in, no token needed.
      button('API docs', 'nbserve-docs', () =>
        window.open(endpoint.jupyter_url ?? endpoint.url, '_blank', 'noopener')
      ),
      button('Delete', 'nbserve-delete', () => void this._delete(endpoint))
    );
    row.append(title, figures, sparkline(this._trends.get(endpoint.name)), url, owner, actions);
    return row;
  }

  private async _delete(endpoint: IEndpoint): Promise<void> {
    const result = await showDialog({
      title: `Delete endpoint ${endpoint.name}?`,
      body: `Its replicas stop and ${endpoint.url} stops answering.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!result.button.accept) {
      return;
    }
    try {
      await deleteEndpoint(endpoint.name);
    } catch (error) {
      await showErrorMessage(`Could not delete ${endpoint.name}`, error as Error);
    }
    await this.refresh();
  }
}

function el(tag: string, className: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

// A URL as text that wraps between the parts of its path (see urlParts), titled with the whole URL.
function urlText(className: string, url: string): HTMLElement {
  const node = el('code', className);
  urlParts(displayUrl(url)).forEach((part, i) => {
    if (i > 0) {
      node.append(document.createElement('wbr'));
    }
    node.append(part);
  });
  node.title = url;
  node.dataset.url = url;
  return node;
}

function note(text: string, className = 'nbserve-note'): HTMLElement {
  return el('p', `nbserve-note ${className}`, text);
}

function header(): HTMLElement {
  return el('h2', 'nbserve-EndpointsPanel-header', 'Endpoints');
}

function figure(name: string, value: string, caption: string): HTMLElement {
  const node = el('span', `nbserve-figure nbserve-figure-${name}`);
  node.title = caption;
  node.append(el('span', 'nbserve-figure-label', name), el('span', 'nbserve-figure-value', value));
  return node;
}

function button(label: string, className: string, onClick: () => void, caption = label): HTMLElement {
  const node = el('button', `jp-Button jp-mod-minimal nbserve-action ${className}`, label) as HTMLButtonElement;
  node.type = 'button';
  node.title = caption;
  node.onclick = onClick;
  return node;
}

const SPARK_W = 200;
const SPARK_H = 22;

/** Requests/s (green) and median latency (blue) over the last two minutes of polls. */
function sparkline(trend: ITrend | undefined): HTMLElement {
  const node = el('div', 'nbserve-Endpoint-trend');
  node.title = 'last 2 min: requests/s (green), p50 latency (blue), each to its own scale';
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${SPARK_W} ${SPARK_H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.classList.add('nbserve-sparkline');
  const lines: [string, (number | null)[]][] = [
    ['nbserve-spark-rate', trend?.rate ?? []],
    ['nbserve-spark-p50', trend?.p50 ?? []]
  ];
  let drawn = 0;
  for (const [className, values] of lines) {
    for (const points of sparklineRuns(values, TREND_POLLS, SPARK_W, SPARK_H)) {
      const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
      line.setAttribute('points', points);
      line.setAttribute('class', className);
      line.setAttribute('vector-effect', 'non-scaling-stroke');
      svg.append(line);
      drawn += 1;
    }
  }
  node.dataset.lines = String(drawn);
  node.append(svg);
  return node;
}

function emptyState(): HTMLElement {
  const node = el('div', 'nbserve-empty');
  node.append(
    el('p', 'nbserve-note', 'No endpoints yet. Turn a notebook cell into one:'),
    el('pre', 'nbserve-example', '%load_ext nbserve\n\n%%serve shout\ndef shout(texts):\n    return [t.upper() for t in texts]'),
    el('p', 'nbserve-note', 'It appears here with its URL, replicas and latency.')
  );
  return node;
}
