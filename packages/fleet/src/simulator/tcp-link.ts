import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A local TCP relay between one simulated agent and the broker, standing in for its network cable: `cut()` drops
 * both sides at once without an MQTT DISCONNECT, so the broker fires the agent's last will as it would for a crashed
 * or unplugged device, and refuses the agent's reconnects until {@link TcpLink.close}.
 */
export class TcpLink {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #cut = false;
  #port = 0;

  private constructor(private readonly target: { host: string; port: number }) {
    this.#server = createServer((inbound) => this.#relay(inbound));
  }

  /** Listens on 127.0.0.1 on a free port and relays every connection to `host:port`. */
  static async open(host: string, port: number): Promise<TcpLink> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`port must be 1..65535, got ${String(port)}`);
    const link = new TcpLink({ host, port });
    link.#server.listen(0, '127.0.0.1');
    await once(link.#server, 'listening');
    link.#port = (link.#server.address() as { port: number }).port;
    return link;
  }

  /** The local port the agent connects to. */
  get port(): number {
    return this.#port;
  }

  /** Destroys every relayed connection; new ones are dropped at once from now on. */
  cut(): void {
    this.#cut = true;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  /** Cuts and stops listening. */
  async close(): Promise<void> {
    this.cut();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #relay(inbound: Socket): void {
    if (this.#cut) {
      inbound.destroy();
      return;
    }
    const outbound = connect(this.target.port, this.target.host);
    for (const s of [inbound, outbound]) {
      this.#sockets.add(s);
      s.setNoDelay(true);
      // Either side failing ends the pair; the agent's session sees a dropped connection and reconnects.
      s.on('error', () => undefined);
      s.on('close', () => {
        this.#sockets.delete(s);
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  }
}
