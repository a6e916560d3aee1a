import { Writable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { createLogger, grpcLogSink, requestLogger } from './logger.js';

function capture(): { sink: Writable; lines: () => unknown[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const lines = (): unknown[] =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as unknown);
  return { sink, lines };
}

const ISO_TIME = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) as unknown;

describe('createLogger', () => {
  it('writes JSON at info with a string level and the function name, dropping debug', () => {
    const { sink, lines } = capture();
    const log = createLogger({ debug: false }, sink);

    log.debug('hidden');
    log.info({ port: 9443 }, 'listening');

    expect(lines()).toEqual([
      { level: 'info', time: ISO_TIME, name: 'function-modelcache', port: 9443, msg: 'listening' },
    ]);
  });

  it('writes debug lines with --debug', () => {
    const { sink, lines } = capture();
    const log = createLogger({ debug: true }, sink);

    log.debug('shown');

    expect(lines()).toEqual([
      { level: 'debug', time: ISO_TIME, name: 'function-modelcache', msg: 'shown' },
    ]);
  });
});

describe('requestLogger', () => {
  it('adds the request tag to every line', () => {
    const { sink, lines } = capture();
    const log = requestLogger(createLogger({ debug: false }, sink), 'abc123');

    log.warn('slow');

    expect(lines()).toEqual([
      { level: 'warn', time: ISO_TIME, name: 'function-modelcache', tag: 'abc123', msg: 'slow' },
    ]);
  });
});

describe('grpcLogSink', () => {
  it('turns grpc-js console calls into JSON lines at the matching level', () => {
    const { sink, lines } = capture();
    const grpcConsole = grpcLogSink(createLogger({ debug: true }, sink));

    grpcConsole.error('No address added out of total %d resolved', 1);
    grpcConsole.info('server', 'started');
    grpcConsole.debug('trace');

    const base = { time: ISO_TIME, name: 'function-modelcache', component: 'grpc-js' };
    expect(lines()).toEqual([
      { ...base, level: 'error', msg: 'No address added out of total 1 resolved' },
      { ...base, level: 'info', msg: 'server started' },
      { ...base, level: 'debug', msg: 'trace' },
    ]);
  });
});
