// A TCP proxy on loopback that can cut a connection after a number of response bytes:
// a connection reset in the middle of a body, in front of a server that cannot inject one.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface FaultyProxy {
  endpoint: string;
  /** Reset any connection once it has sent `afterBytes` to the client, until `times` resets happened. */
  resetAfter(afterBytes: number, times?: number): void;
  resets: number;
  close(): Promise<void>;
}

export async function startFaultyProxy(upstreamPort: number): Promise<FaultyProxy> {
  const armed = { afterBytes: Infinity, remaining: 0 };
  const sockets = new Set<Socket>();
  const state = { resets: 0 };
  const server = createServer((client) => {
    sockets.add(client);
    const upstream = connect(upstreamPort, '127.0.0.1');
    sockets.add(upstream);
    let sent = 0;
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      const limit = armed.afterBytes;
      if (armed.remaining > 0 && sent + d.length >= limit) {
        armed.remaining--;
        client.write(d.subarray(0, Math.max(0, limit - sent)), () => {
          state.resets++;
          client.resetAndDestroy();
          upstream.destroy();
        });
        sent = limit;
        return;
      }
      sent += d.length;
      client.write(d);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    resetAfter(afterBytes, times = 1) {
      armed.afterBytes = afterBytes;
      armed.remaining = times;
    },
    get resets() {
      return state.resets;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}
