// Calls to the server extension's routes, through Jupyter's authenticated connection.

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ApiError, IListReply } from './model';

export const ROUTE = 'nbserve/api/endpoints';

async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, ROUTE, path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(0, `Jupyter server unreachable: ${String(error)}`);
  }
  if (!response.ok) {
    throw new ApiError(response.status, response.statusText || `HTTP ${response.status}`);
  }
  return response;
}

export async function listEndpoints(): Promise<IListReply> {
  return (await request('')).json() as Promise<IListReply>;
}

export async function deleteEndpoint(name: string, force = false): Promise<void> {
  await request(`${encodeURIComponent(name)}${force ? '?force=1' : ''}`, { method: 'DELETE' });
}
