import { IEndpoint } from '../src/model';

/** A listed endpoint, as the server extension answers it. */
export function endpoint(overrides: Partial<IEndpoint> = {}): IEndpoint {
  return {
    name: 'embed',
    backend: 'ray',
    address: null,
    url: 'http://127.0.0.1:8000/embed',
    status: 'running',
    checked: true,
    replicas: { running: 1, target: 2 },
    figures: {},
    owner: { kernel_id: 'k1', notebook: 'work/01_quickstart.ipynb', state: 'running' },
    created_at: 1000,
    updated_at: 1000,
    ...overrides
  };
}
