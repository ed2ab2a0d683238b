import { curlCommand, formatAge, formatLatency, formatRate, formatReplicas, ownerLabel, shellQuote } from '../src/format';
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
  it('posts one JSON input to the URL', () => {
    expect(curlCommand('http://127.0.0.1:8000/embed')).toBe(
      `curl -s -X POST 'http://127.0.0.1:8000/embed' -H 'Content-Type: application/json' -d '{"input":"hello"}'`
    );
  });

  it('quotes anything the shell would read', () => {
    expect(shellQuote("it's $HOME")).toBe(`'it'\\''s $HOME'`);
    expect(curlCommand('http://h/x', "o'k")).toContain(`-d '{"input":"o'\\''k"}'`);
  });
});
