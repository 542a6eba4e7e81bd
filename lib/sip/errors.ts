/**
 * Errors raised by the SIP message layer.
 * @module
 */

/** What was read of a message before a parse error: lets the transport try a best-effort reply. */
export interface PartialMessage {
  /** The first line as received (without CRLF). */
  readonly startLine: string;
  /** Header fields (canonical name, value) collected before the defect was found. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/** Options of {@link SipParseError}. */
export interface SipParseErrorOptions {
  /** Response status a server should answer with (RFC 3261 §21): 400, 413, 416, 505, 513. */
  readonly status?: number;
  /** 1-based line of the defect in the message, when known. */
  readonly line?: number;
  /** 1-based column of the defect, when known. */
  readonly column?: number;
  /** What had been parsed when the defect was found. */
  readonly partial?: PartialMessage;
}

/**
 * A message, URI or header value does not follow the RFC 3261 §25 grammar, or breaks a rule
 * that makes it unusable (RFC 3261 §8.2.2, §16.3: missing mandatory header, CSeq mismatch, bad
 * version). `status` is the response code a UAS should send: 400 by default, 505 for an
 * unsupported SIP version (§21.5.7), 416 for an unsupported Request-URI scheme
 * (§8.2.2.1), 513 for a header section over the limit and 413 for a body over the limit.
 */
export class SipParseError extends SyntaxError {
  /** Response status to answer with (RFC 3261 §21). */
  readonly status: number;
  /** 1-based line, when known. */
  readonly line: number | undefined;
  /** 1-based column, when known. */
  readonly column: number | undefined;
  /** Headers read before the defect, when the error came from {@link parseMessage}. */
  readonly partial: PartialMessage | undefined;

  /** Creates the error; `message` names the defect, e.g. "missing Call-ID". */
  constructor(message: string, options: SipParseErrorOptions = {}) {
    super(message);
    this.name = "SipParseError";
    this.status = options.status ?? 400;
    this.line = options.line;
    this.column = options.column;
    this.partial = options.partial;
  }
}
