/**
 * What the dialog layer needs from the layers below (RFC 3261 §17 transactions, §18
 * transport), as a narrow interface: the composition root adapts the transaction layer to it,
 * and tests can drive the dialog layer through it.
 * @module
 */

import type { SipRequest, SipResponse } from "../sip/message.ts";
import type { TransactionLayer } from "../transaction/transaction_layer.ts";
import type { Flow, Target } from "../transport/flow.ts";
import type { TransportLayer } from "../transport/transport.ts";

/** A server transaction as the user-agent core sees it (RFC 3261 §17.2). */
export interface IncomingTransaction {
  /** The request that created it. */
  readonly request: SipRequest;
  /** The flow it arrived on. */
  readonly flow: Flow;
  /** Passes a response down (RFC 3261 §17.2.1/§17.2.2). */
  respond(response: SipResponse): void;
}

/** An outgoing request's progress (RFC 3261 §17.1). */
export interface OutgoingTransaction {
  /** Resolves with the final response; a timeout or transport error resolves with a 408/503
   *  made up locally (RFC 3261 §8.1.3.1). */
  readonly final: Promise<SipResponse>;
}

/** Callbacks for provisional responses of an outgoing request. */
export interface OutgoingHandlers {
  onProvisional?(response: SipResponse): void;
  /** Further 2xx responses to an INVITE after the first (forked or retransmitted). */
  onExtra2xx?(response: SipResponse): void;
}

/** The lower layers, as the dialog layer uses them. */
export interface TransactionPort {
  /**
   * Sends a request in a new client transaction to `target` (the transaction layer adds
   * the Via with a fresh branch).
   */
  sendRequest(
    request: SipRequest,
    target: Target | Flow,
    handlers?: OutgoingHandlers,
  ): OutgoingTransaction;
  /** Sends an ACK for a 2xx outside any transaction (RFC 3261 §13.2.2.4), adding a Via. */
  sendAck(ack: SipRequest, target: Target | Flow): Promise<void>;
  /** Sends a 2xx retransmission straight to the transport (RFC 3261 §13.3.1.4). */
  sendResponse(response: SipResponse, flow: Flow): Promise<void>;
  /** True while a stream flow's connection is still open (datagram flows: always true). */
  isFlowOpen(flow: Flow): boolean;
}

/**
 * The {@link TransactionPort} over the real lower layers: client transactions from the
 * transaction layer (RFC 3261 §17.1), the ACK for a 2xx sent statelessly with its own Via
 * (§13.2.2.4), 2xx retransmissions straight to the transport (§13.3.1.4).
 */
export function transactionPortOver(
  transactions: TransactionLayer,
  transport: TransportLayer,
): TransactionPort {
  return {
    sendRequest: (request, target, handlers) => {
      const tx = transactions.sendRequest(request, target, {
        ...(handlers?.onProvisional ? { onProvisional: (r) => handlers.onProvisional?.(r) } : {}),
        onFinal: (r) => {
          // Every 2xx after the first (retransmitted or forked) must be ACKed by the TU.
          if (r.status >= 200 && r.status < 300 && tx.finalResponse !== r) {
            handlers?.onExtra2xx?.(r);
          }
        },
      });
      return { final: tx.final };
    },
    sendAck: async (ack, target) => {
      await transactions.sendStateless(ack, target);
    },
    sendResponse: async (response, flow) => {
      await transport.send(response, flow);
    },
    isFlowOpen: (flow) =>
      flow.connectionId === undefined || transport.isConnectionOpen(flow.connectionId),
  };
}
