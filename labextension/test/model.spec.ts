import { ApiError, PanelState, isLive, recordTrends, sortEndpoints, stateFromError, stateFromReply } from '../src/model';
import { endpoint } from './fixtures';

describe('panel state', () => {
  it('is empty when the server lists no endpoint, keeping the problem', () => {
    expect(stateFromReply({ endpoints: [], problem: null })).toEqual({ kind: 'empty', problem: null });
    expect(stateFromReply({ endpoints: [], problem: 'cluster down' })).toEqual({ kind: 'empty', problem: 'cluster down' });
  });

  it('lists live endpoints first, then stale ones, by name', () => {
    const state = stateFromReply({
      endpoints: [endpoint({ name: 'b', status: 'gone' }), endpoint({ name: 'c' }), endpoint({ name: 'a' })],
      problem: null
    });
    expect(state.kind).toBe('ready');
    expect(state.kind === 'ready' && state.endpoints.map(e => e.name)).toEqual(['a', 'c', 'b']);
  });

  it('says the server extension is missing on a 404', () => {
    expect(stateFromError(new ApiError(404, 'Not Found'), { kind: 'loading' })).toEqual({ kind: 'missing' });
  });

  it('keeps the last endpoints on screen when a poll fails', () => {
    const previous: PanelState = { kind: 'ready', endpoints: [endpoint()], problem: null };
    const failed = stateFromError(new ApiError(502, 'Bad Gateway'), previous);
    expect(failed).toEqual({ kind: 'error', message: 'Bad Gateway', endpoints: previous.endpoints });
    const again = stateFromError(new Error('offline'), failed);
    expect(again.kind === 'error' && again.endpoints).toEqual(previous.endpoints);
    expect(stateFromError('boom', { kind: 'loading' })).toEqual({ kind: 'error', message: 'boom', endpoints: [] });
  });

  it('treats gone, failed and deleted endpoints as not live', () => {
    expect(['running', 'updating', 'deploying', 'gone', 'failed', 'deleted'].map(s => isLive(endpoint({ status: s })))).toEqual(
      [true, true, true, false, false, false]
    );
  });

  it('does not reorder its input', () => {
    const input = [endpoint({ name: 'z' }), endpoint({ name: 'a' })];
    sortEndpoints(input);
    expect(input.map(e => e.name)).toEqual(['z', 'a']);
  });
});

describe('recordTrends', () => {
  it('appends each poll, keeps the last polls, and drops endpoints no longer listed', () => {
    const a = endpoint({ name: 'a', figures: { requests_per_s: 1, p50_ms: 5 } });
    const b = endpoint({ name: 'b', figures: { requests_per_s: null, p50_ms: null } });
    let trends = recordTrends(new Map(), [a, b], 3);
    trends = recordTrends(trends, [a, b], 3);
    trends = recordTrends(trends, [{ ...a, figures: { requests_per_s: 4, p50_ms: 7 } }], 3);
    trends = recordTrends(trends, [{ ...a, figures: { requests_per_s: 9, p50_ms: null } }], 3);
    expect(trends.get('a')).toEqual({ rate: [1, 4, 9], p50: [5, 7, null] });
    expect(trends.has('b')).toBe(false);
  });
});
