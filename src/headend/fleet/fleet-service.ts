import type { HeadendContext } from '../headend.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.js';
import { FleetPublisher, type PublisherOptions } from './publisher.js';

/** Default port of the embedded broker. */
export const DEFAULT_MQTT_PORT = 1883;

/** How the head-end runs its fleet side (`keywarden headend --mqtt-*`, `--fleet-prefix`). */
export interface FleetOptions extends PublisherOptions {
  /** An external broker (mqtt://host:port): no embedded broker is started. */
  readonly mqttUrl?: string;
  /** Port of the embedded broker; default 1883, 0 picks a free one. */
  readonly mqttPort?: number;
  /** Interface of the embedded broker; default 127.0.0.1. */
  readonly mqttHost?: string;
}

/** The running fleet side: the broker (unless external) and the publisher. */
export interface RunningFleet {
  /** The broker URL the publisher uses (and devices use, for the embedded one). */
  readonly mqttUrl: string;
  readonly broker: EmbeddedBroker | undefined;
  readonly publisher: FleetPublisher;
  /** Stops the publisher, then the broker. Idempotent. */
  close(): Promise<void>;
}

/** Starts the embedded broker (unless `mqttUrl`) and the fleet publisher on `ctx`. */
export async function startFleet(
  ctx: HeadendContext,
  opts: FleetOptions = {},
): Promise<RunningFleet> {
  const broker = opts.mqttUrl
    ? undefined
    : await startEmbeddedBroker(opts.mqttPort ?? DEFAULT_MQTT_PORT, opts.mqttHost);
  const mqttUrl = opts.mqttUrl ?? broker?.url ?? '';
  let publisher: FleetPublisher;
  try {
    publisher = await FleetPublisher.start(ctx, mqttUrl, opts);
  } catch (err) {
    await broker?.close();
    throw err;
  }
  opts.log?.(
    `keywarden fleet: ${broker ? 'embedded MQTT broker' : 'MQTT broker'} ${mqttUrl}, topics under ${publisher.prefix}/`,
  );
  let closed: Promise<void> | undefined;
  return {
    mqttUrl,
    broker,
    publisher,
    close: () =>
      (closed ??= (async () => {
        await publisher.close();
        await broker?.close();
      })()),
  };
}
