import net, { type AddressInfo, type Socket } from 'node:net';
import { kwError } from '../../errors/index.js';

/** A running in-process MQTT 3.1.1 broker. */
export interface EmbeddedBroker {
  /** mqtt://host:port */
  readonly url: string;
  readonly port: number;
  /** Disconnects every client and stops listening. Idempotent. */
  close(): Promise<void>;
}

type AedesCtor = new () => import('aedes').default;

/**
 * Starts an aedes broker (in-memory persistence: retained messages and sessions live as
 * long as the process; the publisher re-publishes the current list on start). aedes is a
 * head-end-only optional dependency, loaded here; its absence is HEADEND_DEPENDENCY_MISSING.
 */
export async function startEmbeddedBroker(
  port = 1883,
  host = '127.0.0.1',
): Promise<EmbeddedBroker> {
  let Aedes: AedesCtor;
  try {
    // CommonJS: the module object is the constructor.
    Aedes = ((await import('aedes')) as unknown as { default: AedesCtor }).default;
  } catch (err) {
    throw kwError(
      'HEADEND_DEPENDENCY_MISSING',
      `aedes (embedded MQTT broker) cannot be loaded: ${(err as Error).message}`,
      {},
      err,
    );
  }
  const broker = new Aedes();
  const sockets = new Set<Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw kwError(
      'HEADEND_INTERNAL',
      `the embedded MQTT broker cannot listen on ${host}:${port}: ${(err as Error).message}`,
      {},
      err,
    );
  }
  // Errors of one client connection must not take the head-end down.
  server.on('error', () => undefined);
  broker.on('clientError', () => undefined);
  const bound = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    url: `mqtt://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    port: bound,
    close: () =>
      (closed ??= (async () => {
        await new Promise<void>((resolve) => broker.close(() => resolve()));
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })()),
  };
}
