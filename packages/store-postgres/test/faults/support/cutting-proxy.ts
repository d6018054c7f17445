import { connect, createServer, type Server, type Socket } from 'node:net';

/** The server's reply to a COMMIT that succeeded: a CommandComplete message's tag. */
const COMMIT_COMPLETE_TAG = Buffer.from('COMMIT\0', 'latin1');
/** An autocommitted `SELECT ledgerkit.append_events(…) AS version` succeeded: its column name and its CommandComplete tag. */
const APPEND_VERSION_COLUMN = Buffer.from('version\0', 'latin1');
const SELECT_ONE_TAG = Buffer.from('SELECT 1\0', 'latin1');

/** Whether a chunk from the server confirms a commit: of an explicit transaction, or of an autocommitted append. */
function confirmsCommit(chunk: Buffer): boolean {
  return chunk.includes(COMMIT_COMPLETE_TAG) || (chunk.includes(APPEND_VERSION_COLUMN) && chunk.includes(SELECT_ONE_TAG));
}

/** A TCP proxy in front of a PostgreSQL server that can cut a connection at the worst moment. */
export interface CuttingProxy {
  /** Routes a connection string through the proxy. */
  via(connectionString: string): string;
  /**
   * The next time the server confirms a commit (a COMMIT, or an autocommitted append's result),
   * the proxy drops that reply and closes both sides: the transaction is durable, and its client
   * only learns that the connection broke.
   */
  cutNextCommitReply(): void;
  /** How many replies were cut. */
  readonly cuts: number;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 to `host:port`. It reads no TLS: use it with plain connections only. */
export async function startCuttingProxy(host: string, port: number): Promise<CuttingProxy> {
  let armed = false;
  let cuts = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      // The other side breaking is the point of this proxy, not a failure of the test.
      socket.on('error', () => undefined);
    }
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (armed && confirmsCommit(chunk)) {
        armed = false;
        cuts += 1;
        upstream.destroy();
        client.destroy();
        return;
      }
      client.write(chunk);
    });
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP address');
  return {
    via: (connectionString) => {
      const url = new URL(connectionString);
      url.hostname = '127.0.0.1';
      url.port = String(address.port);
      return url.toString();
    },
    cutNextCommitReply: () => {
      armed = true;
    },
    get cuts() {
      return cuts;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
