import {
  curlCommand,
  displayUrl,
  endpointUrls,
  formatAge,
  formatLatency,
  formatRate,
  formatReplicas,
  isLoopbackHost,
  jupyterCurlCommand,
  ownerLabel,
  shellQuote,
  sparklineRuns,
  urlParts
} from '../src/format';
import { endpoint } from './fixtures';

describe('formatLatency', () => {
  it.each([
    [null, '—'],
    [undefined, '—'],
    [NaN, '—'],
    [0.84, '840 µs'],
    [12.34, '12.3 ms'],
    [340.4, '340 ms'],
    [1240, '1.24 s']
  ])('%p ms reads %p', (ms, text) => {
    expect(formatLatency(ms as number | null | undefined)).toBe(text);
  });
});

describe('formatRate', () => {
  it.each([
    [null, '—'],
    [0, '0/s'],
    [0.25, '0.25/s'],
    [12.34, '12.3/s'],
    [1204.4, '1,204/s']
  ])('%p reads %p', (rate, text) => {
    expect(formatRate(rate as number | null)).toBe(text);
  });
});

describe('rows', () => {
  it('shows replicas as running/target', () => {
    expect(formatReplicas(endpoint())).toBe('1/2');
  });

  it('names the notebook and says when its kernel exited', () => {
    expect(ownerLabel(endpoint())).toBe('01_quickstart.ipynb');
    const orphan = endpoint({ owner: { kernel_id: 'k', notebook: 'a.ipynb', state: 'exited' } });
    expect(ownerLabel(orphan)).toBe('a.ipynb (kernel exited)');
    expect(ownerLabel(endpoint({ owner: { kernel_id: null, notebook: null, state: 'unknown' } }))).toBe('no notebook');
  });

  it('tells ages in the largest sensible unit', () => {
    expect(formatAge(1000, 1030 * 1000)).toBe('30 s ago');
    expect(formatAge(1000, (1000 + 600) * 1000)).toBe('10 min ago');
    expect(formatAge(1000, (1000 + 7200) * 1000)).toBe('2 h ago');
  });
});

describe('curlCommand', () => {
  it('posts one JSON input to the URL, with the token read from the environment', () => {
    expect(curlCommand('http://127.0.0.1:8000/embed')).toBe(
      `curl -s -X POST 'http://127.0.0.1:8000/embed' -H "Authorization: Bearer $NBSERVE_TOKEN"` +
        ` -H 'Content-Type: application/json' -d '{"input":"hello"}'`
    );
  });

  it('sends no token to a public endpoint', () => {
    expect(curlCommand('http://127.0.0.1:8000/demo', 'hi', true)).toBe(
      `curl -s -X POST 'http://127.0.0.1:8000/demo' -H 'Content-Type: application/json' -d '{"input":"hi"}'`
    );
  });

  it('quotes anything the shell would read', () => {
    expect(shellQuote("it's $HOME")).toBe(`'it'\\''s $HOME'`);
    expect(curlCommand('http://h/x', "o'k")).toContain(`-d '{"input":"o'\\''k"}'`);
  });
});

describe('where the browser is', () => {
  it.each([
    ['localhost', true],
    ['127.0.0.1', true],
    ['127.0.1.1', true],
    ['[::1]', true],
    ['hub.mybinder.org', false],
    ['10.0.0.5', false]
  ])('%p is loopback: %p', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });

  const served = { url: 'http://127.0.0.1:8000/embed', jupyter_url: '/user/ada/nbserve/endpoints/embed' };

  it('a browser on the serving machine gets the direct URL first, and the Jupyter route too', () => {
    const urls = endpointUrls(served, 'http://localhost:8888');
    expect(urls.primary).toBe('http://127.0.0.1:8000/embed');
    expect(urls.viaJupyter).toBe(false);
    expect(urls.secondary).toEqual({
      url: 'http://localhost:8888/user/ada/nbserve/endpoints/embed',
      label: 'through Jupyter'
    });
  });

  it('a remote browser gets the Jupyter route, never the loopback URL first', () => {
    const urls = endpointUrls(served, 'https://hub.mybinder.org');
    expect(urls.primary).toBe('https://hub.mybinder.org/user/ada/nbserve/endpoints/embed');
    expect(urls.viaJupyter).toBe(true);
    expect(urls.secondary?.label).toBe('on the serving machine');
  });

  it('an endpoint without a Jupyter route keeps its URL', () => {
    expect(endpointUrls({ url: 'http://127.0.0.1:8000/x' }, 'https://remote.example').primary).toBe(
      'http://127.0.0.1:8000/x'
    );
  });

  it('the curl of the Jupyter route shows Jupyter\'s token, read from the environment', () => {
    const command = jupyterCurlCommand('https://hub.mybinder.org/user/ada/nbserve/endpoints/embed');
    expect(command).toContain('-H "Authorization: token $JUPYTER_TOKEN"');
    expect(command).not.toContain('NBSERVE_TOKEN');
  });
});

describe('sparklineRuns', () => {
  it('needs two known values', () => {
    expect(sparklineRuns([], 4, 30, 10)).toEqual([]);
    expect(sparklineRuns([null, 3], 4, 30, 10)).toEqual([]);
  });

  it('scales to the maximum and puts the newest value at the right edge', () => {
    expect(sparklineRuns([0, 2], 4, 30, 10)).toEqual(['20.0,9.0 30.0,1.0']);
  });

  it('breaks the line at gaps and drops lone points', () => {
    expect(sparklineRuns([1, 1, null, 1, null, 2, 2], 7, 60, 10)).toEqual([
      '0.0,5.0 10.0,5.0',
      '50.0,1.0 60.0,1.0'
    ]);
  });
});

describe('urlParts', () => {
  it('cuts after each slash, and the parts give the URL back', () => {
    const shown = '127.0.0.1:58411/nbserve/endpoints/remote_echo';
    expect(urlParts(shown)).toEqual(['127.0.0.1:58411/', 'nbserve/', 'endpoints/', 'remote_echo']);
    expect(urlParts(shown).join('')).toBe(shown);
    expect(urlParts('host')).toEqual(['host']);
  });
});

describe('displayUrl', () => {
  it('leaves out the scheme only', () => {
    expect(displayUrl('http://127.0.0.1:8000/embed')).toBe('127.0.0.1:8000/embed');
    expect(displayUrl('https://hub.example/user/a/nbserve/endpoints/embed')).toBe(
      'hub.example/user/a/nbserve/endpoints/embed'
    );
  });
});
