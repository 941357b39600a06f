// A TypeScript client for openpi-protocol policy servers (ours or openpi's own), with the server's codec:
//   const c = await OpenpiClient.connect('ws://127.0.0.1:8000');
//   const reply = await c.infer({ 'observation/image': { dtype: '|u1', shape: [224, 224, 3], data }, ..., prompt });
//   (reply.actions as NdArray) ...; await c.close();
// Requests go strictly one at a time, as the protocol wants: a second infer() waits for the first. A text frame
// from the server (its error) rejects with a OpenpiError of the kind it names; so does a close or a timeout. Like
// openpi_client's WebsocketClientPolicy (packages/openpi-client/src/openpi_client/websocket_client_policy.py at
// openpi 15a9616), it sends nothing but observations: openpi's protocol has no control messages.
import { WebSocket } from 'ws';
import { decode, encode } from './codec.js';
import { OpenpiError, type OpenpiErrorKind } from './errors.js';

export type { NdArray } from './codec.js';

const KINDS: readonly OpenpiErrorKind[] = ['MalformedMsgpack', 'BadRequest', 'FrameTooLarge', 'ProtocolError', 'ServerBusy', 'Timeout', 'TooManyConnections', 'ClientNotReading', 'InferenceFailed', 'ServerConfig'];

/** An error frame "Kind: message" as a OpenpiError; any other text (openpi's traceback) as InferenceFailed. */
function serverError(text: string): OpenpiError {
  const m = /^(\w+): ([^]*)$/.exec(text);
  const kind = m && (KINDS as readonly string[]).includes(m[1]) ? (m[1] as OpenpiErrorKind) : null;
  return kind ? new OpenpiError(kind, `server: ${m![2]}`) : new OpenpiError('InferenceFailed', `server error: ${text.slice(0, 2000)}`);
}

export class OpenpiClient {
  private waiting: { resolve: (v: Buffer) => void; reject: (e: Error) => void } | null = null;
  private inbox: (Buffer | OpenpiError)[] = [];
  private closedWith: OpenpiError | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly ws: WebSocket, private readonly timeoutMs: number, readonly metadata: Record<string, unknown>) {}

  /** Connect and read the metadata frame. timeoutMs (default 30 s) bounds the connection and every request. */
  static async connect(url: string, opts: { timeoutMs?: number } = {}): Promise<OpenpiClient> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30, handshakeTimeout: timeoutMs });
    const client = new OpenpiClient(ws, timeoutMs, {});
    ws.on('message', (data, isBinary) => {
      const item = isBinary ? (Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)) : serverError(data.toString());
      client.deliver(item);
    });
    ws.on('close', (code, reason) => client.onClose(code, reason.toString()));
    ws.on('error', (e) => client.onClose(1006, e.message));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (e) => reject(new OpenpiError('ProtocolError', `cannot connect to ${url}: ${e.message}`)));
    });
    const meta = decode(await client.next());
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new OpenpiError('ProtocolError', `${url}: the first frame is not a metadata map`);
    (client as { metadata: Record<string, unknown> }).metadata = meta as Record<string, unknown>;
    return client;
  }

  /** One observation -> the server's reply (ndarrays as NdArray). */
  infer(obs: Record<string, unknown>): Promise<Record<string, unknown>> {
    return this.exchange(obs);
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close(1000);
      setTimeout(() => this.ws.terminate(), 2000).unref();
    });
  }

  private exchange(msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    const run = async () => {
      if (this.closedWith) throw this.closedWith;
      this.ws.send(encode(msg));
      const reply = decode(await this.next());
      if (typeof reply !== 'object' || reply === null || Array.isArray(reply)) throw new OpenpiError('ProtocolError', 'the reply is not a map');
      return reply as Record<string, unknown>;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => {});
    return p;
  }

  private next(): Promise<Buffer> {
    const item = this.inbox.shift();
    if (item) return item instanceof OpenpiError ? Promise.reject(item) : Promise.resolve(item);
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        reject(new OpenpiError('Timeout', `no reply within ${this.timeoutMs} ms`));
        this.ws.terminate(); // the protocol is strictly in turn: a late reply would be taken for the next one
      }, this.timeoutMs);
      this.waiting = {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  private deliver(item: Buffer | OpenpiError): void {
    const w = this.waiting;
    if (!w) return void this.inbox.push(item);
    this.waiting = null;
    if (item instanceof OpenpiError) w.reject(item);
    else w.resolve(item);
  }

  private onClose(code: number, reason: string): void {
    this.closedWith ??= new OpenpiError('ProtocolError', `connection closed (code ${code}${reason ? `, ${reason}` : ''})`);
    const w = this.waiting;
    this.waiting = null;
    w?.reject(this.closedWith);
  }
}

