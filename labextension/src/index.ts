import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { LabIcon } from '@jupyterlab/ui-components';

import { EndpointsPanel } from './panel';

// A server rack with a signal: the endpoints this Jupyter server's notebooks serve.
const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 4h18v6H3zm2 2v2h2V6zm4 0v2h2V6z"/>
    <path d="M3 14h18v6H3zm2 2v2h2v-2zm4 0v2h2v-2z"/>
    <circle cx="18" cy="7" r="1.5"/><circle cx="18" cy="17" r="1.5"/>
  </g>
</svg>`;

export const endpointsIcon = new LabIcon({ name: 'nbserve:endpoints', svgstr: ICON_SVG });

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbserve:endpoints',
  description: 'Lists the nbserve endpoints of this Jupyter server, live, with actions.',
  autoStart: true,
  requires: [ILabShell],
  activate: (app: JupyterFrontEnd, shell: ILabShell) => {
    const panel = new EndpointsPanel(app, endpointsIcon);
    shell.add(panel, 'left', { rank: 700 });
  }
};

export default plugin;
