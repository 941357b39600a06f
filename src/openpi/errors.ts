// The openpi protocol's error (client and server alike). Each has a short `kind` that names what went wrong on the
// wire (the error frame a client receives is `${kind}: ${message}`, one line, never a stack trace).
import { RdtError } from '../util/errors.js';

export type OpenpiErrorKind =
  | 'MalformedMsgpack' // the frame is not msgpack, or not a map
  | 'BadRequest' // a key missing, unknown, or with the wrong type, dtype or shape
  | 'FrameTooLarge' // over --max-frame-bytes
  | 'ProtocolError' // a request before the previous reply, a text frame
  | 'ServerBusy' // the request queue is full
  | 'Timeout' // not answered within --request-timeout-ms
  | 'TooManyConnections' // over --max-connections
  | 'ClientNotReading' // replies pile up unread
  | 'InferenceFailed' // the model call failed
  | 'ServerConfig'; // the server cannot serve this checkpoint as asked (start-up only)

export class OpenpiError extends RdtError {
  override name = 'OpenpiError';
  constructor(readonly kind: OpenpiErrorKind, message: string) {
    super(message);
  }
  /** The text of the error frame. */
  get frameText(): string {
    return `${this.kind}: ${this.message}`;
  }
}
