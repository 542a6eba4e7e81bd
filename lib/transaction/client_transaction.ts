/**
 * Client transactions (RFC 3261 §17.1): the INVITE client transaction (§17.1.1, with the
 * Accepted state of RFC 6026 §8.4) and the non-INVITE client transaction (§17.1.2).
 *
 * Each machine has one `switch` per state over every input: each response class, each timer
 * and a transport error. Timeouts and transport errors reach the TU as a synthesized final
 * response, 408 or 503, as RFC 3261 §8.1.3.1 tells a UAC to treat them.
 * @module
 */

import type { Clock } from "../config/clock.ts";
import type { Logger } from "../config/log.ts";
import { createResponse, type SipRequest, type SipResponse } from "../sip/message.ts";
import { ackForNon2xx } from "./derived_requests.ts";
import type { TransactionTimers } from "./timers.ts";
import {
  isProvisional,
  isSuccess,
  type MessageSender,
  type TerminationReason,
  TimerSlots,
} from "./transaction.ts";

/** States of a client transaction (RFC 3261 §17.1.1, §17.1.2; "accepted" from RFC 6026). */
export type ClientTransactionState =
  | "calling"
  | "trying"
  | "proceeding"
  | "completed"
  | "accepted"
  | "terminated";

/** Why the TU got a synthesized final response instead of a real one. */
export type ClientFailure = "timeout" | "transport-error";

/** Callbacks from a client transaction to its TU (RFC 3261 §17.1: "passed up to the TU"). */
export interface ClientTransactionHandlers {
  /** A provisional response (1xx). */
  onProvisional?(response: SipResponse, tx: ClientTransaction): void;
  /**
   * The final response. Called once with the first final response, which is synthesized
   * (408 on Timer B/F, 503 on a transport error; `tx.failure` says which) when none came.
   * For an INVITE it is called again for every further 2xx received in the Accepted state
   * (retransmissions and forked answers, RFC 6026 §8.4), each of which the TU must ACK
   * (RFC 3261 §13.2.2.4).
   */
  onFinal?(response: SipResponse, tx: ClientTransaction): void;
  /** The transaction reached Terminated. */
  onTerminated?(reason: TerminationReason, tx: ClientTransaction): void;
}

/** What a client transaction needs from the layer that creates it. */
export interface ClientTransactionOptions {
  /** The request to send; its top Via carries the branch. */
  readonly request: SipRequest;
  /** Matching key (RFC 3261 §17.1.3: branch and CSeq method). */
  readonly key: string;
  /** Time source for timers A, B, D, E, F, K, M. */
  readonly clock: Clock;
  /** Timer values for the transport the request goes over. */
  readonly timers: TransactionTimers;
  /** Sends the request (and, for INVITE, the ACK) to the same destination every time. */
  readonly send: MessageSender<SipRequest>;
  /** TU callbacks. */
  readonly handlers?: ClientTransactionHandlers;
  /** Debug logging. */
  readonly logger?: Logger;
}

type TimerName = "A" | "B" | "D" | "E" | "F" | "K" | "M";

type ClientInput =
  | { readonly kind: "1xx"; readonly response: SipResponse }
  | { readonly kind: "2xx"; readonly response: SipResponse }
  | { readonly kind: "final"; readonly response: SipResponse }
  | { readonly kind: "timer"; readonly timer: TimerName }
  | { readonly kind: "transport-error"; readonly error: Error };

/** Behaviour shared by the two client machines: sending, timers, TU notification. */
export abstract class ClientTransaction {
  /** The request this transaction sends. */
  readonly request: SipRequest;
  /** Matching key (§17.1.3). */
  readonly key: string;
  /** Timer values in use. */
  readonly timers: TransactionTimers;
  /** Resolves with the first final response, real or synthesized; never rejects. */
  readonly final: Promise<SipResponse>;

  #state: ClientTransactionState;
  #stateListeners: Array<(state: ClientTransactionState) => void> = [];
  /** Timer slots. */
  protected readonly slots: TimerSlots<TimerName>;
  /** Optional logger. */
  protected readonly logger: Logger | undefined;
  #send: MessageSender<SipRequest>;
  #handlers: ClientTransactionHandlers;
  #resolveFinal!: (response: SipResponse) => void;
  #finalResponse: SipResponse | undefined;
  #failure: ClientFailure | undefined;
  #transportError: Error | undefined;
  #started = false;

  /** Builds the machine in `initial` state; {@link start} sends the request. */
  protected constructor(options: ClientTransactionOptions, initial: ClientTransactionState) {
    this.request = options.request;
    this.key = options.key;
    this.timers = options.timers;
    this.#state = initial;
    this.slots = new TimerSlots(options.clock);
    this.logger = options.logger;
    this.#send = options.send;
    this.#handlers = options.handlers ?? {};
    this.final = new Promise((resolve) => (this.#resolveFinal = resolve));
  }

  /** Current state (RFC 3261 §17.1). */
  get state(): ClientTransactionState {
    return this.#state;
  }

  /** The state as seen by subclasses; assigning it tells the state listeners. */
  protected get state_(): ClientTransactionState {
    return this.#state;
  }

  protected set state_(next: ClientTransactionState) {
    if (next === this.#state) return;
    this.#state = next;
    for (const listener of [...this.#stateListeners]) this.safely(() => listener(next));
  }

  /**
   * Registers a listener for every state change (the layer uses it to hold a CANCEL until
   * the INVITE is in Proceeding, RFC 3261 §9.1).
   */
  onStateChange(listener: (state: ClientTransactionState) => void): () => void {
    this.#stateListeners.push(listener);
    return () => {
      this.#stateListeners = this.#stateListeners.filter((l) => l !== listener);
    };
  }

  /** The request method. */
  get method(): string {
    return this.request.method;
  }

  /** The first final response, once known. */
  get finalResponse(): SipResponse | undefined {
    return this.#finalResponse;
  }

  /** Set when the final response was synthesized (timeout or transport error). */
  get failure(): ClientFailure | undefined {
    return this.#failure;
  }

  /** The transport error that ended the transaction, if any. */
  get transportError(): Error | undefined {
    return this.#transportError;
  }

  /** Passes the request to the transport and starts the initial timers (once). */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.onStart();
  }

  /** The layer feeds a response that matched this transaction (§17.1.3). */
  receiveResponse(response: SipResponse): void {
    const s = response.status;
    if (isProvisional(s)) this.input({ kind: "1xx", response });
    else if (isSuccess(s)) this.input({ kind: "2xx", response });
    else if (s >= 300 && s <= 699) this.input({ kind: "final", response });
  }

  /** Ends the transaction at once (layer shutdown); nothing is sent or reported but the end. */
  terminate(): void {
    this.terminateWith("closed");
  }

  /** Sends the request and starts the first timers of the initial state. */
  protected abstract onStart(): void;

  /** Feeds one input to the state machine. */
  protected abstract input(event: ClientInput): void;

  /** Hands a request to the transport; a failure comes back as a `transport-error` input. */
  protected transmit(request: SipRequest): void {
    let promise: Promise<void>;
    try {
      promise = this.#send(request);
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.catch((error: unknown) => {
      const err = error instanceof Error ? error : new Error(String(error));
      this.input({ kind: "transport-error", error: err });
    });
  }

  /** Starts a timer whose expiry is fed back as an input. */
  protected startTimer(name: TimerName, delayMs: number): void {
    this.slots.start(name, delayMs, () => this.input({ kind: "timer", timer: name }));
  }

  /** Starts a wait timer; zero (reliable transports: Timer D, K) fires at once. */
  protected startWait(name: TimerName, delayMs: number): void {
    if (delayMs <= 0) this.input({ kind: "timer", timer: name });
    else this.startTimer(name, delayMs);
  }

  /** Passes a provisional response to the TU. */
  protected passProvisional(response: SipResponse): void {
    this.safely(() => this.#handlers.onProvisional?.(response, this));
  }

  /** Passes a final response to the TU (the first one also settles {@link final}). */
  protected passFinal(response: SipResponse): void {
    if (this.#finalResponse === undefined) {
      this.#finalResponse = response;
      this.#resolveFinal(response);
    }
    this.safely(() => this.#handlers.onFinal?.(response, this));
  }

  /**
   * Informs the TU of a timeout or transport error with a synthesized final response
   * (RFC 3261 §8.1.3.1: a timeout is treated as 408, a transport failure as 503), then
   * terminates.
   */
  protected fail(failure: ClientFailure, error?: Error): void {
    if (this.#finalResponse === undefined) {
      this.#failure = failure;
      const status = failure === "timeout" ? 408 : 503;
      const reason = failure === "timeout"
        ? "Request Timeout"
        : `Service Unavailable (${(error?.message ?? "transport error").replace(/[\r\n]/g, " ")})`;
      this.passFinal(createResponse(this.request, status, reason.slice(0, 120)));
    }
    if (error !== undefined) this.#transportError = error;
    this.terminateWith(failure);
  }

  /** Moves to Terminated, stops timers, tells the TU once. */
  protected terminateWith(reason: TerminationReason): void {
    if (this.state_ === "terminated") return;
    this.logger?.debug("client transaction terminated", { key: this.key, reason });
    this.state_ = "terminated";
    this.slots.stopAll();
    this.safely(() => this.#handlers.onTerminated?.(reason, this));
  }

  /** Runs TU code so that a throwing callback cannot break the machine. */
  protected safely(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.logger?.warn("transaction callback threw", { key: this.key, error });
    }
  }
}

/**
 * The INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §8.4): Calling, Proceeding,
 * Completed, Accepted, Terminated. Retransmits with Timer A over UDP, gives up with Timer B,
 * ACKs non-2xx finals itself and absorbs their retransmissions until Timer D; 2xx responses go
 * to the TU, which sends its own ACK.
 */
export class InviteClientTransaction extends ClientTransaction {
  #a: number;
  #ack: SipRequest | undefined;

  /** Creates the transaction in Calling; call {@link start} to send. */
  constructor(options: ClientTransactionOptions) {
    super(options, "calling");
    this.#a = options.timers.a;
  }

  /** The ACK this transaction sent for a non-2xx final response, if any. */
  get ack(): SipRequest | undefined {
    return this.#ack;
  }

  /**
   * "The initial state, "calling", MUST be entered when the TU initiates a new client
   * transaction with an INVITE request. The client transaction MUST pass the request to the
   * transport layer for transmission. If an unreliable transport is being used, the client
   * transaction MUST start timer A with a value of T1. ... For any transport, the client
   * transaction MUST start timer B with a value of 64*T1 seconds."
   */
  protected onStart(): void {
    this.transmit(this.request);
    if (this.#a > 0) this.startTimer("A", this.#a);
    this.startTimer("B", this.timers.b);
  }

  /** The §17.1.1.2 / RFC 6026 §8.4 state table. */
  protected input(event: ClientInput): void {
    switch (this.state_) {
      case "calling":
        switch (event.kind) {
          case "timer":
            if (event.timer === "A") {
              // "When timer A fires, the client transaction MUST retransmit the request by
              // passing it to the transport layer, and MUST reset the timer with a value of
              // 2*T1. ... with intervals that double after each transmission."
              this.transmit(this.request);
              this.#a *= 2;
              this.startTimer("A", this.#a);
            } else if (event.timer === "B") {
              // "If the client transaction is still in the "Calling" state when timer B
              // fires, the client transaction SHOULD inform the TU that a timeout has
              // occurred. The client transaction MUST NOT generate an ACK."
              this.fail("timeout");
            }
            return;
          case "1xx":
            // "If the client transaction receives a provisional response while in the
            // "Calling" state, it transitions to the "Proceeding" state. In the "Proceeding"
            // state, the client transaction SHOULD NOT retransmit the request any longer."
            this.slots.stop("A");
            this.slots.stop("B");
            this.state_ = "proceeding";
            this.passProvisional(event.response);
            return;
          case "2xx":
            this.#accept(event.response);
            return;
          case "final":
            this.#complete(event.response);
            return;
          case "transport-error":
            // §17.1.4: "the client transaction SHOULD inform the TU that a transport failure
            // has occurred, and the client transaction SHOULD transition directly to the
            // "Terminated" state."
            this.fail("transport-error", event.error);
            return;
        }
        return;
      case "proceeding":
        switch (event.kind) {
          case "timer":
            return; // Timers A and B only act in Calling.
          case "1xx":
            // "Furthermore, the provisional response MUST be passed to the TU. Any further
            // provisional responses MUST be passed up to the TU while in the "Proceeding"
            // state."
            this.passProvisional(event.response);
            return;
          case "2xx":
            this.#accept(event.response);
            return;
          case "final":
            this.#complete(event.response);
            return;
          case "transport-error":
            this.fail("transport-error", event.error);
            return;
        }
        return;
      case "completed":
        switch (event.kind) {
          case "final":
            // "Any retransmissions of the final response that are received while in the
            // "Completed" state MUST cause the ACK to be re-passed to the transport layer
            // for retransmission, but the newly received response MUST NOT be passed up to
            // the TU."
            if (this.#ack !== undefined) this.transmit(this.#ack);
            return;
          case "1xx":
          case "2xx":
            return;
          case "timer":
            // "If timer D fires while the client transaction is in the "Completed" state,
            // the client transaction MUST move to the "Terminated" state."
            if (event.timer === "D") this.terminateWith("completed");
            return;
          case "transport-error":
            // Figure 5: Completed --Transport Err. / Inform TU--> Terminated. The TU
            // already has the final response.
            this.terminateWith("transport-error");
            return;
        }
        return;
      case "accepted":
        switch (event.kind) {
          case "2xx":
            // RFC 6026 §8.4: "any 2xx responses that match this client transaction and that
            // are received while in the "Accepted" state MUST be passed up to the TU."
            this.passFinal(event.response);
            return;
          case "1xx":
          case "final":
            return;
          case "timer":
            // RFC 6026 §8.4: "If Timer M fires while the client transaction is in the
            // "Accepted" state, the client transaction MUST move to the "Terminated" state."
            if (event.timer === "M") this.terminateWith("completed");
            return;
          case "transport-error":
            return; // Nothing is sent in Accepted; a late failure changes nothing.
        }
        return;
      case "trying":
      case "terminated":
        return;
    }
  }

  /**
   * RFC 6026 §8.4: "When a 2xx response is received while in either the "Calling" or
   * "Proceeding" states, the client transaction MUST transition to the "Accepted" state,
   * and Timer M MUST be started with a value of 64*T1. The 2xx response MUST be passed up to
   * the TU. The client transaction MUST NOT generate an ACK to the 2xx response".
   */
  #accept(response: SipResponse): void {
    this.slots.stop("A");
    this.slots.stop("B");
    this.state_ = "accepted";
    this.startTimer("M", this.timers.m);
    this.passFinal(response);
  }

  /**
   * "When in either the "Calling" or "Proceeding" states, reception of a response with
   * status code from 300-699 MUST cause the client transaction to transition to "Completed".
   * The client transaction MUST pass the received response up to the TU, and the client
   * transaction MUST generate an ACK request ... The client transaction SHOULD start timer D
   * when it enters the "Completed" state, with a value of at least 32 seconds for unreliable
   * transports, and a value of zero seconds for reliable transports."
   */
  #complete(response: SipResponse): void {
    this.slots.stop("A");
    this.slots.stop("B");
    this.state_ = "completed";
    this.#ack = ackForNon2xx(this.request, response);
    this.transmit(this.#ack);
    this.passFinal(response);
    if (this.state_ === "completed") this.startWait("D", this.timers.d);
  }
}

/**
 * The non-INVITE client transaction (RFC 3261 §17.1.2): Trying, Proceeding, Completed,
 * Terminated. Retransmits with Timer E over UDP (doubling up to T2), gives up with Timer F,
 * absorbs response retransmissions until Timer K.
 */
export class NonInviteClientTransaction extends ClientTransaction {
  #e: number;

  /** Creates the transaction in Trying; call {@link start} to send. */
  constructor(options: ClientTransactionOptions) {
    super(options, "trying");
    this.#e = options.timers.e;
  }

  /**
   * "The "Trying" state is entered when the TU initiates a new client transaction with a
   * request. When entering this state, the client transaction SHOULD set timer F to fire in
   * 64*T1 seconds. The request MUST be passed to the transport layer for transmission. If an
   * unreliable transport is in use, the client transaction MUST set timer E to fire in T1
   * seconds."
   */
  protected onStart(): void {
    this.transmit(this.request);
    if (this.#e > 0) this.startTimer("E", this.#e);
    this.startTimer("F", this.timers.f);
  }

  /** The §17.1.2.2 state table. */
  protected input(event: ClientInput): void {
    switch (this.state_) {
      case "trying":
        switch (event.kind) {
          case "timer":
            if (event.timer === "E") {
              // "If timer E fires while still in this state, the timer is reset, but this
              // time with a value of MIN(2*T1, T2). When the timer fires again, it is reset
              // to a MIN(4*T1, T2)."
              this.transmit(this.request);
              this.#e = Math.min(2 * this.#e, this.timers.t2);
              this.startTimer("E", this.#e);
            } else if (event.timer === "F") {
              // "If Timer F fires while the client transaction is still in the "Trying"
              // state, the client transaction SHOULD inform the TU about the timeout, and
              // then it SHOULD enter the "Terminated" state."
              this.fail("timeout");
            }
            return;
          case "1xx":
            // "If a provisional response is received while in the "Trying" state, the
            // response MUST be passed to the TU, and then the client transaction SHOULD move
            // to the "Proceeding" state."
            this.state_ = "proceeding";
            this.passProvisional(event.response);
            return;
          case "2xx":
          case "final":
            this.#complete(event.response);
            return;
          case "transport-error":
            this.fail("transport-error", event.error);
            return;
        }
        return;
      case "proceeding":
        switch (event.kind) {
          case "timer":
            if (event.timer === "E") {
              // "If Timer E fires while in the "Proceeding" state, the request MUST be passed
              // to the transport layer for retransmission, and Timer E MUST be reset with a
              // value of T2 seconds."
              this.transmit(this.request);
              this.#e = this.timers.t2;
              this.startTimer("E", this.#e);
            } else if (event.timer === "F") {
              // "If timer F fires while in the "Proceeding" state, the TU MUST be informed
              // of a timeout, and the client transaction MUST transition to the terminated
              // state."
              this.fail("timeout");
            }
            return;
          case "1xx":
            this.passProvisional(event.response);
            return;
          case "2xx":
          case "final":
            this.#complete(event.response);
            return;
          case "transport-error":
            this.fail("transport-error", event.error);
            return;
        }
        return;
      case "completed":
        switch (event.kind) {
          case "1xx":
          case "2xx":
          case "final":
            // "The "Completed" state exists to buffer any additional response
            // retransmissions that may be received."
            return;
          case "timer":
            // "If Timer K fires while in this state, the client transaction MUST transition
            // to the "Terminated" state."
            if (event.timer === "K") this.terminateWith("completed");
            return;
          case "transport-error":
            return; // A late retransmission failed; the final response already arrived.
        }
        return;
      case "calling":
      case "accepted":
      case "terminated":
        return;
    }
  }

  /**
   * "If a final response (status codes 200-699) is received while in the "Trying" or
   * "Proceeding" state, the response MUST be passed to the TU, and the client transaction
   * MUST transition to the "Completed" state. ... Once the client transaction enters the
   * "Completed" state, it MUST set Timer K to fire in T4 seconds for unreliable transports,
   * and zero seconds for reliable transports."
   */
  #complete(response: SipResponse): void {
    this.slots.stop("E");
    this.slots.stop("F");
    this.state_ = "completed";
    this.passFinal(response);
    if (this.state_ === "completed") this.startWait("K", this.timers.k);
  }
}
