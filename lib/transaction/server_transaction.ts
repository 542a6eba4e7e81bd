/**
 * Server transactions (RFC 3261 §17.2): the INVITE server transaction (§17.2.1, with the
 * Accepted state of RFC 6026 §7.1) and the non-INVITE server transaction (§17.2.2).
 *
 * Each machine has one `switch` per state over every input: the request retransmission, the
 * ACK, each response class passed down by the TU, each timer, and a transport error. The
 * transaction layer creates them and feeds retransmissions; the TU answers with
 * {@link ServerTransaction.respond}.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import { createResponse, type SipRequest, type SipResponse } from "../sip/message.ts";
import type { Flow } from "../transport/flow.ts";
import { type TransactionTimers, TRYING_DELAY_MS } from "./timers.ts";
import {
  generateTag,
  isProvisional,
  isSuccess,
  type MessageSender,
  type TerminationReason,
  TimerSlots,
} from "./transaction.ts";

/** States of a server transaction (RFC 3261 §17.2.1, §17.2.2; "accepted" from RFC 6026). */
export type ServerTransactionState =
  | "trying"
  | "proceeding"
  | "completed"
  | "confirmed"
  | "accepted"
  | "terminated";

/** Called once when a transaction terminates; `error` is set for `transport-error`. */
export type TerminatedListener = (reason: TerminationReason, error?: Error) => void;

/** What a server transaction needs from the layer that creates it. */
export interface ServerTransactionOptions {
  /** The request that created the transaction. */
  readonly request: SipRequest;
  /** The flow it arrived on (RFC 3261 §18.2.1); responses go back per §18.2.2. */
  readonly flow: Flow;
  /** The matching key (RFC 3261 §17.2.3). */
  readonly key: string;
  /** Time source for timers G, H, I, J, L and the 100 Trying delay. */
  readonly clock: Clock;
  /** Timer values for the flow's transport (see {@link deriveTimers}). */
  readonly timers: TransactionTimers;
  /** Sends a response to the transport layer. */
  readonly send: MessageSender<SipResponse>;
  /** Debug logging of transitions and listener failures. */
  readonly logger?: Logger;
}

type TimerName = "G" | "H" | "I" | "J" | "L" | "Trying";

/** Inputs of a server state machine. */
type ServerInput =
  | { readonly kind: "request" }
  | { readonly kind: "ack"; readonly ack: SipRequest }
  | { readonly kind: "tu-1xx"; readonly response: SipResponse }
  | { readonly kind: "tu-2xx"; readonly response: SipResponse }
  | { readonly kind: "tu-final"; readonly response: SipResponse }
  | { readonly kind: "timer"; readonly timer: TimerName }
  | { readonly kind: "transport-error"; readonly error: Error };

/**
 * Behaviour shared by both server machines: identity, timers, sending, listeners. The TU
 * sees a transaction through {@link ServerTransaction.respond}, `state`, and
 * {@link ServerTransaction.onTerminated}.
 */
export abstract class ServerTransaction {
  /** The request that created the transaction. */
  readonly request: SipRequest;
  /** The flow the request arrived on. */
  readonly flow: Flow;
  /** Matching key (RFC 3261 §17.2.3: branch, sent-by, method). */
  readonly key: string;
  /** The request method (`ACK` never creates a server transaction). */
  readonly method: string;
  /** Timer values in use. */
  readonly timers: TransactionTimers;

  /** Current state; subclasses move it. */
  protected state_: ServerTransactionState;
  /** Timer slots; subclasses start and stop them. */
  protected readonly slots: TimerSlots<TimerName>;
  /** Optional logger. */
  protected readonly logger: Logger | undefined;
  #send: MessageSender<SipResponse>;
  #lastProvisional: SipResponse | undefined;
  #final: SipResponse | undefined;
  #terminatedListeners: TerminatedListener[] = [];

  /** Builds the machine in `initial` state; nothing is sent yet. */
  protected constructor(options: ServerTransactionOptions, initial: ServerTransactionState) {
    this.request = options.request;
    this.flow = options.flow;
    this.key = options.key;
    this.method = options.request.method;
    this.timers = options.timers;
    this.state_ = initial;
    this.slots = new TimerSlots(options.clock);
    this.logger = options.logger;
    this.#send = options.send;
  }

  /** Current state (RFC 3261 §17.2). */
  get state(): ServerTransactionState {
    return this.state_;
  }

  /** The most recent provisional response sent, if any. */
  get lastProvisional(): SipResponse | undefined {
    return this.#lastProvisional;
  }

  /** The final response sent (the first 2xx for INVITE), if any. */
  get finalResponse(): SipResponse | undefined {
    return this.#final;
  }

  /** True once the TU has sent a final response (or the layer has, e.g. 487 after CANCEL). */
  get hasFinalResponse(): boolean {
    return this.#final !== undefined;
  }

  /**
   * The TU passes a response down (RFC 3261 §17.2.1, §17.2.2). Returns false, sending
   * nothing, when the state no longer allows it (a final response was already sent; for an
   * INVITE only 2xx retransmissions are accepted after a 2xx, RFC 6026 §7.1). Transport
   * failures are reported through {@link onTerminated}.
   */
  respond(response: SipResponse): boolean {
    const s = response.status;
    if (s < 100 || s > 699) throw new RangeError(`invalid status ${s}`);
    if (isProvisional(s)) return this.input({ kind: "tu-1xx", response });
    if (isSuccess(s)) return this.input({ kind: "tu-2xx", response });
    return this.input({ kind: "tu-final", response });
  }

  /** Registers a listener for the end of the transaction (called once). */
  onTerminated(listener: TerminatedListener): void {
    if (this.state_ === "terminated") return;
    this.#terminatedListeners.push(listener);
  }

  /** The transaction layer feeds a retransmission of the creating request (§17.2.3 match). */
  receiveRequest(_request: SipRequest): void {
    this.input({ kind: "request" });
  }

  /** Ends the transaction at once (layer shutdown); no message is sent. */
  terminate(): void {
    this.terminateWith("closed");
  }

  /** Feeds one input to the state machine; returns whether a TU response was accepted. */
  protected abstract input(event: ServerInput): boolean;

  /** Sends a response; a failure comes back as a `transport-error` input. */
  protected transmit(response: SipResponse): void {
    let promise: Promise<void>;
    try {
      promise = this.#send(response);
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.catch((error: unknown) => {
      const err = error instanceof Error ? error : new Error(String(error));
      this.input({ kind: "transport-error", error: err });
    });
  }

  /** Sends and remembers a provisional response (for retransmission absorption). */
  protected sendProvisional(response: SipResponse): void {
    this.#lastProvisional = response;
    this.transmit(response);
  }

  /** Sends and remembers a final response. */
  protected sendFinal(response: SipResponse): void {
    this.#final ??= response;
    this.transmit(response);
  }

  /** Resends the last provisional response, if any (§17.2.1, §17.2.2 Proceeding). */
  protected resendProvisional(): void {
    if (this.#lastProvisional !== undefined) this.transmit(this.#lastProvisional);
  }

  /** Resends the final response (§17.2.1, §17.2.2 Completed). */
  protected resendFinal(): void {
    if (this.#final !== undefined) this.transmit(this.#final);
  }

  /**
   * Starts a wait timer; a zero value (reliable transports, RFC 3261 §17.2.1 Timer I,
   * §17.2.2 Timer J) fires at once.
   */
  protected startWait(name: TimerName, delayMs: number): void {
    if (delayMs <= 0) this.input({ kind: "timer", timer: name });
    else this.slots.start(name, delayMs, () => this.input({ kind: "timer", timer: name }));
  }

  /** Starts a timer whose expiry is fed back as an input. */
  protected startTimer(name: TimerName, delayMs: number): void {
    this.slots.start(name, delayMs, () => this.input({ kind: "timer", timer: name }));
  }

  /** Moves to Terminated, stops every timer and tells the listeners once. */
  protected terminateWith(reason: TerminationReason, error?: Error): void {
    if (this.state_ === "terminated") return;
    this.logger?.debug("server transaction terminated", { key: this.key, reason });
    this.state_ = "terminated";
    this.slots.stopAll();
    const listeners = this.#terminatedListeners;
    this.#terminatedListeners = [];
    for (const listener of listeners) this.safely(() => listener(reason, error));
  }

  /** Runs TU code so that a throwing listener cannot break the machine. */
  protected safely(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.logger?.warn("transaction listener threw", { key: this.key, error });
    }
  }
}

function toTagOf(response: SipResponse): string | undefined {
  try {
    return response.toTag;
  } catch {
    return undefined;
  }
}

/** Listener for a CANCEL that matched this INVITE (RFC 3261 §9.2). */
export type CancelListener = (cancel: SipRequest) => void;

/** Listener for an ACK passed up in the Accepted state (RFC 6026 §7.1). */
export type AckListener = (ack: SipRequest) => void;

/**
 * The INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1): states Proceeding,
 * Completed, Confirmed, Accepted, Terminated. Sends 100 Trying when the TU has not answered
 * within 200 ms, retransmits non-2xx finals with Timer G over UDP until the ACK or Timer H.
 */
export class InviteServerTransaction extends ServerTransaction {
  #g: number;
  #cancelled = false;
  #tag: string | undefined;
  #cancelListeners: CancelListener[] = [];
  #ackListeners: AckListener[] = [];

  /**
   * Creates the transaction in Proceeding and starts the 100 Trying delay (§17.2.1: "the
   * server transaction MUST generate a 100 (Trying) response unless it knows that the TU
   * will generate a provisional or final response within 200 ms").
   */
  constructor(options: ServerTransactionOptions) {
    super(options, "proceeding");
    this.#g = options.timers.g;
    this.startTimer("Trying", TRYING_DELAY_MS);
  }

  /**
   * The To tag this UAS uses in its answers (RFC 3261 §8.2.6.2): the tag of a response already
   * sent, else one generated once. The 487 after CANCEL and the 200 to the CANCEL use it (§9.2:
   * "The To tag of the response to the CANCEL and the response to the original request SHOULD
   * be the same").
   */
  get localTag(): string {
    const sent = this.finalResponse ?? this.lastProvisional;
    const tag = sent === undefined ? undefined : toTagOf(sent);
    if (tag !== undefined) return tag;
    this.#tag ??= generateTag();
    return this.#tag;
  }

  /** True once a CANCEL matched this transaction (RFC 3261 §9.2). */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** Registers a listener told when a CANCEL matches (after the layer answered it). */
  onCancel(listener: CancelListener): void {
    this.#cancelListeners.push(listener);
  }

  /** Registers a listener for ACKs absorbed in the Accepted state (RFC 6026 §7.1). */
  onAck(listener: AckListener): void {
    this.#ackListeners.push(listener);
  }

  /** The layer feeds an ACK that matched this transaction (§17.2.3). */
  receiveAck(ack: SipRequest): void {
    this.input({ kind: "ack", ack });
  }

  /**
   * The layer reports a matching CANCEL (RFC 3261 §9.2): marks the transaction cancelled,
   * answers 487 (Request Terminated) when no final response was sent yet, then tells the
   * listeners. Returns true when the 487 was sent.
   */
  cancel(cancel: SipRequest): boolean {
    if (this.state_ === "terminated") return false;
    this.#cancelled = true;
    let sent = false;
    if (this.state_ === "proceeding") {
      const toTag = this.localTag;
      sent = this.respond(createResponse(this.request, 487, "Request Terminated", { toTag }));
    }
    for (const listener of this.#cancelListeners) this.safely(() => listener(cancel));
    return sent;
  }

  /** The §17.2.1 / RFC 6026 state table. */
  protected input(event: ServerInput): boolean {
    switch (this.state_) {
      case "proceeding":
        switch (event.kind) {
          case "request":
            // "If a request retransmission is received while in the "Proceeding" state, the
            // most recent provisional response that was received from the TU MUST be passed
            // to the transport layer for retransmission."
            this.resendProvisional();
            return false;
          case "ack":
            return false; // No final response yet: nothing to acknowledge.
          case "tu-1xx":
            // "The TU passes any number of provisional responses to the server transaction."
            this.slots.stop("Trying");
            this.sendProvisional(event.response);
            return true;
          case "tu-2xx":
            // RFC 6026 §7.1: "If, while in the "Proceeding" state, the TU passes a 2xx
            // response to the server transaction, the server transaction MUST pass this
            // response to the transport layer for transmission ... and MUST enter the
            // "Accepted" state", starting Timer L.
            this.slots.stop("Trying");
            this.state_ = "accepted";
            this.sendFinal(event.response);
            this.startTimer("L", this.timers.l);
            return true;
          case "tu-final":
            // "If, while in the "Proceeding" state, the TU passes a response with status code
            // from 300 to 699 ... the response MUST be passed to the transport layer for
            // transmission, and the state machine MUST enter the "Completed" state. For
            // unreliable transports, timer G is set to fire in T1 seconds ... timer H MUST be
            // set to fire in 64*T1 seconds for all transports."
            this.slots.stop("Trying");
            this.state_ = "completed";
            this.sendFinal(event.response);
            if (this.#g > 0) this.startTimer("G", this.#g);
            this.startTimer("H", this.timers.h);
            return true;
          case "timer":
            if (event.timer === "Trying" && this.lastProvisional === undefined) {
              this.sendProvisional(createResponse(this.request, 100, "Trying"));
            }
            return false;
          case "transport-error":
            // Figure 7: Proceeding --Transport Err. / Inform TU--> Terminated.
            this.terminateWith("transport-error", event.error);
            return false;
        }
        break;
      case "completed":
        switch (event.kind) {
          case "request":
            // "Furthermore, while in the "Completed" state, if a request retransmission is
            // received, the server SHOULD pass the response to the transport for
            // retransmission."
            this.resendFinal();
            return false;
          case "ack":
            // "If an ACK is received while the server transaction is in the "Completed"
            // state, the server transaction MUST transition to the "Confirmed" state. As
            // Timer G is ignored in this state, any retransmissions of the response will
            // cease." Timer I: T4 for unreliable transports, zero for reliable ones.
            this.slots.stop("G");
            this.slots.stop("H");
            this.state_ = "confirmed";
            this.startWait("I", this.timers.i);
            return false;
          case "tu-1xx":
          case "tu-2xx":
          case "tu-final":
            return false; // A final response was already sent.
          case "timer":
            if (event.timer === "G") {
              // "If timer G fires, the response is passed to the transport layer once more
              // for retransmission, and timer G is set to fire in MIN(2*T1, T2) seconds."
              this.resendFinal();
              this.#g = Math.min(2 * this.#g, this.timers.t2);
              this.startTimer("G", this.#g);
            } else if (event.timer === "H") {
              // "If timer H fires while in the "Completed" state, it implies that the ACK was
              // never received. In this case, the server transaction MUST transition to the
              // "Terminated" state, and MUST indicate to the TU that a transaction failure
              // has occurred."
              this.terminateWith("timeout");
            }
            return false;
          case "transport-error":
            // Figure 7: Completed --Timer H fires or Transport Err. / Inform TU--> Terminated.
            this.terminateWith("transport-error", event.error);
            return false;
        }
        break;
      case "confirmed":
        switch (event.kind) {
          case "request":
          case "ack":
            // "The purpose of the "Confirmed" state is to absorb any additional ACK messages
            // that arrive, triggered from retransmissions of the final response."
            return false;
          case "tu-1xx":
          case "tu-2xx":
          case "tu-final":
            return false;
          case "timer":
            // "When this timer fires, the server transaction MUST transition to the
            // "Terminated" state."
            if (event.timer === "I") this.terminateWith("completed");
            return false;
          case "transport-error":
            return false; // A late retransmission failed; the ACK already arrived.
        }
        break;
      case "accepted":
        switch (event.kind) {
          case "request":
            // RFC 6026 §7.1: retransmissions of the INVITE received in the "Accepted" state
            // are absorbed: "not passed to the TU".
            return false;
          case "ack":
            // RFC 6026 §7.1: "If an ACK is received while the INVITE server transaction is
            // in the "Accepted" state, then the ACK must be passed up to the TU."
            for (const listener of this.#ackListeners) this.safely(() => listener(event.ack));
            return false;
          case "tu-2xx":
            // RFC 6026 §7.1: "Any retransmissions of the 2xx response passed from the TU to
            // the transaction while in the "Accepted" state MUST be passed to the transport
            // layer for transmission."
            this.sendFinal(event.response);
            return true;
          case "tu-1xx":
          case "tu-final":
            return false;
          case "timer":
            // RFC 6026 §7.1: "If Timer L fires while the INVITE server transaction is in the
            // "Accepted" state, the transaction MUST transition to the "Terminated" state."
            if (event.timer === "L") this.terminateWith("completed");
            return false;
          case "transport-error":
            this.terminateWith("transport-error", event.error);
            return false;
        }
        break;
      case "terminated":
      case "trying":
        return false;
    }
    return false;
  }
}

/**
 * The non-INVITE server transaction (RFC 3261 §17.2.2): Trying, Proceeding, Completed,
 * Terminated; Timer J absorbs request retransmissions over UDP.
 */
export class NonInviteServerTransaction extends ServerTransaction {
  /** Creates the transaction in Trying (§17.2.2: "The state machine is initialized in the
   * "Trying" state and is passed a request other than INVITE or ACK"). */
  constructor(options: ServerTransactionOptions) {
    super(options, "trying");
  }

  /** The §17.2.2 state table. */
  protected input(event: ServerInput): boolean {
    switch (this.state_) {
      case "trying":
        switch (event.kind) {
          case "request":
          case "ack":
            // "Once in the "Trying" state, any further request retransmissions are
            // discarded."
            return false;
          case "tu-1xx":
            // "While in the "Trying" state, if the TU passes a provisional response to the
            // server transaction, the server transaction MUST enter the "Proceeding" state."
            this.state_ = "proceeding";
            this.sendProvisional(event.response);
            return true;
          case "tu-2xx":
          case "tu-final":
            return this.#complete(event.response);
          case "timer":
            return false;
          case "transport-error":
            this.terminateWith("transport-error", event.error);
            return false;
        }
        break;
      case "proceeding":
        switch (event.kind) {
          case "request":
            // "If a retransmission of the request is received while in the "Proceeding"
            // state, the most recently sent provisional response MUST be passed to the
            // transport layer for retransmission."
            this.resendProvisional();
            return false;
          case "ack":
            return false;
          case "tu-1xx":
            // "Any further provisional responses that are received from the TU while in the
            // "Proceeding" state MUST be passed to the transport layer for transmission."
            this.sendProvisional(event.response);
            return true;
          case "tu-2xx":
          case "tu-final":
            return this.#complete(event.response);
          case "timer":
            return false;
          case "transport-error":
            // "If a transport error occurs ..., the server transaction MUST inform the TU ...
            // and transition to the "Terminated" state" (Figure 8).
            this.terminateWith("transport-error", event.error);
            return false;
        }
        break;
      case "completed":
        switch (event.kind) {
          case "request":
            // "While in the "Completed" state, the server transaction MUST pass the final
            // response to the transport layer for retransmission whenever a retransmission
            // of the request is received."
            this.resendFinal();
            return false;
          case "ack":
            return false;
          case "tu-1xx":
          case "tu-2xx":
          case "tu-final":
            // "Any other final responses passed by the TU to the server transaction MUST be
            // discarded while in the "Completed" state."
            return false;
          case "timer":
            // "The server transaction remains in this state until Timer J fires, at which
            // point it MUST transition to the "Terminated" state."
            if (event.timer === "J") this.terminateWith("completed");
            return false;
          case "transport-error":
            this.terminateWith("transport-error", event.error);
            return false;
        }
        break;
      case "confirmed":
      case "accepted":
      case "terminated":
        return false;
    }
    return false;
  }

  /**
   * "If, while in the "Trying" or "Proceeding" state, the TU passes a final response ... the
   * server transaction MUST enter the "Completed" state, and the response MUST be passed to
   * the transport layer for transmission. ... When the server transaction enters the
   * "Completed" state, it MUST set Timer J to fire in 64*T1 seconds for unreliable
   * transports, and zero seconds for reliable transports."
   */
  #complete(response: SipResponse): boolean {
    this.state_ = "completed";
    this.sendFinal(response);
    this.startWait("J", this.timers.j);
    return true;
  }
}
