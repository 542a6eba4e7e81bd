/**
 * One live conference (RFC 4353 §5): its roster, its calls (one INVITE session per device),
 * its audio mix, its conference-info notifier, and the policy that ties them: joins and
 * leaves, ejection (the focus sends BYE), dial-out (the focus sends INVITE), REFER from
 * admins (RFC 4579 §5.5 as Flexisip implements it), media changes, call and no-RTP timeouts,
 * and the end of the conference (RFC 4353 §5.1: ad-hoc conferences end with their last
 * participant; ending BYEs everyone and terminates subscriptions first).
 * @module
 */

import type { TimerHandle } from "../config/clock.ts";
import { InviteSession } from "../dialog/invite_session.ts";
import type { ServerRequest } from "../dialog/server_request.ts";
import type { UserAgent } from "../dialog/user_agent.ts";
import type { MediaSnapshot } from "../events/conference_info.ts";
import { ConferenceNotifier } from "../events/notifier.ts";
import type { DtmfDigitEvent } from "../media/telephone_event.ts";
import type { VideoConference } from "../media/video_conference.ts";
import { formatUri, parseUri, type SipUri } from "../sip/uri.ts";
import type { Flow } from "../transport/flow.ts";
import type { ConferenceRecord, Store } from "../storage/store.ts";
import { addressOfRecord } from "./conference_uri.ts";
import { deviceUriOf, sdpBody } from "./join_request.ts";
import type { AnswerOutcome } from "./media_negotiation.ts";
import { CallTimers } from "./call_timers.ts";
import { handleRefer } from "./refer.ts";
import { onControlDigit } from "./dtmf_controls.ts";
import { storeLeave, storeMember, storeRole } from "./member_records.ts";
import { Roster } from "./roster.ts";
import { type Call, endpointStatusOf, newCall } from "./call.ts";
import { ConferenceMedia, type ConferenceMediaServices } from "./conference_media.ts";

/** Services a conference uses, provided by the focus. */
export interface ConferenceServices extends ConferenceMediaServices {
  readonly ua: UserAgent;
  readonly store: Store;
  readonly callTimeoutMs: number;
  readonly noRtpTimeoutMs: number;
  readonly maxParticipants: number;
  /** Contact (with `isfocus`) for dialogs of this conference on `flow`. */
  contactFor(conference: ConferenceRecord, flow: Flow | undefined): string;
  /** Persists work that must not be lost; rejects with StoreUnavailableError. */
  persist<T>(what: string, op: () => Promise<T>): Promise<T>;
  /** The conference ended and can be forgotten. */
  onEnded(conference: Conference): void;
}

/** A live conference. */
export class Conference {
  record: ConferenceRecord;
  readonly roster: Roster;
  readonly notifier: ConferenceNotifier;
  readonly #services: ConferenceServices;
  readonly #calls = new Map<string, Call>();
  readonly #media: ConferenceMedia;
  #ended = false;
  #shuttingDown = false;
  #everJoined = false;
  readonly #timers: CallTimers;
  #nextCallId = 1;
  /** Admitted joins not yet in the roster, by AOR (count of devices). */
  readonly #pendingJoins = new Map<string, number>();

  constructor(record: ConferenceRecord, services: ConferenceServices) {
    this.record = record;
    this.#services = services;
    this.#media = new ConferenceMedia(services, {
      conferenceId: record.id,
      mediaTypes: record.options.mediaTypes ?? ["audio"],
      calls: () => this.#calls.values(),
      callById: (id) => this.#callById(id),
      active: () => !this.#ended && !this.#shuttingDown,
      onDigit: (call, event) => this.#onDtmf(call, event),
      refreshDevice: (call) => this.#refreshDevice(call),
      refreshAll: () => this.#refreshMedia(),
      publish: () => this.#publish(),
    });
    this.roster = new Roster({
      entity: record.uri,
      subject: record.subject,
      maxParticipants: record.options.maxParticipants ?? services.maxParticipants,
      locked: record.options.locked ?? false,
      availableMedia: this.#media.availableMedia(),
      ...(record.startsAt !== null || record.endsAt !== null
        ? {
          times: {
            ...(record.startsAt !== null ? { start: record.startsAt } : {}),
            ...(record.endsAt !== null ? { end: record.endsAt } : {}),
          },
        }
        : {}),
    });
    this.notifier = new ConferenceNotifier({
      ua: services.ua,
      contact: services.contactFor(record, undefined),
      logger: services.logger,
      initialVersion: record.lastNotifyVersion,
      onVersion: () => {
        // Durable: retried through an outage; stores the version current at each attempt, so
        // versions never go backwards after a restart.
        void services.persist(
          "notify-version",
          () =>
            services.store.updateConference(record.id, {
              lastNotifyVersion: this.notifier.version,
            }),
        ).catch(() => {});
      },
    });
    this.notifier.publish(this.roster.snapshot(true));
    this.#timers = new CallTimers({
      conferenceId: record.id,
      clock: services.clock,
      logger: services.logger,
      callTimeoutMs: services.callTimeoutMs,
      noRtpTimeoutMs: services.noRtpTimeoutMs,
      calls: () => [...this.#calls.values()],
      isCurrent: (call) => this.#calls.get(call.deviceUri) === call,
      ended: () => this.#ended,
      lastRtpAt: (call) => this.#media.lastRtpAt(call),
    });
  }

  get id(): string {
    return this.record.id;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** The conference's video streams and forwarder, once a video line started (statistics). */
  get videoMedia(): VideoConference | undefined {
    return this.#media.videoMedia;
  }

  /** RFC 5168 key-frame INFOs sent to video sources without RTCP feedback. */
  get keyFrameInfosSent(): number {
    return this.#media.keyFrameInfosSent;
  }

  /** Number of calls (devices connected through us). */
  get callCount(): number {
    return this.#calls.size;
  }

  // ------------------------------------------------------------------------------------
  // Join (dial-in)

  /** An INVITE to the conference URI (RFC 4353 §5.3 joining): 200 with an SDP answer. */
  async join(sr: ServerRequest): Promise<void> {
    const req = sr.request;
    if (this.#ended) {
      sr.respond(410, "Gone (conference ended)");
      return;
    }
    const aor = addressOfRecord(req.from.uri);
    const refusal = this.roster.admission(aor, new Set(this.#pendingJoins.keys()));
    if (refusal) {
      sr.respond(refusal.status, refusal.reason);
      return;
    }
    // The seat is held while the join is stored and answered (concurrent joins cannot overfill).
    this.#pendingJoins.set(aor, (this.#pendingJoins.get(aor) ?? 0) + 1);
    try {
      await this.#joinAdmitted(sr, aor);
    } finally {
      const n = (this.#pendingJoins.get(aor) ?? 1) - 1;
      if (n <= 0) this.#pendingJoins.delete(aor);
      else this.#pendingJoins.set(aor, n);
    }
  }

  async #joinAdmitted(sr: ServerRequest, aor: string): Promise<void> {
    const s = this.#services;
    const req = sr.request;
    const offer = sdpBody(req);
    if (offer === undefined) {
      sr.respond(488, "Not Acceptable Here (an SDP offer is required)");
      return;
    }
    const deviceUri = deviceUriOf(req);
    const display = req.from.display;
    const now = Date.now();
    try {
      await s.persist("join", () =>
        storeMember(s.store, this.id, {
          aor,
          displayName: display ?? null,
          isAdmin: this.roster.users.length === 0 || (this.roster.user(aor)?.admin ?? false),
          deviceUri,
          joiningMethod: "dialed-in",
          at: now,
        }, () => this.notifier.version));
    } catch (err) {
      const retry = (err as { retryAfterSeconds?: number }).retryAfterSeconds ?? 5;
      sr.respond(503, "Service Unavailable (storage)", {
        headers: [["Retry-After", String(retry)]],
      });
      return;
    }
    if (sr.cancelled) return;
    if (this.#ended) {
      sr.respond(410, "Gone (conference ended)");
      return;
    }
    // A device that calls again replaces its previous call.
    const previous = this.#calls.get(deviceUri);
    if (previous) {
      this.#dropCall(previous, "replaced");
      void previous.session?.bye([["Reason", 'SIP;cause=200;text="Replaced"']]).catch(() => {});
    }

    const call = newCall({ id: `c${this.#nextCallId++}`, aor, deviceUri, now: s.clock.now() });
    let outcome: AnswerOutcome;
    try {
      call.ports = s.ports.allocate({ rtcpPort: !s.negotiator.offersRtcpMux(offer) });
      this.#media.noteOffer(call.id, offer);
      outcome = s.negotiator.answer(offer, this.#media.caps(call.ports.port, call.id));
    } catch (err) {
      this.#media.abandon(call.id);
      if (call.ports) void s.ports.release(call.ports);
      s.logger.warn("cannot allocate media", { conference: this.id, error: err as Error });
      sr.respond(503, "Service Unavailable (no media port)");
      return;
    }
    if (!outcome.ok) {
      this.#media.abandon(call.id);
      void s.ports.release(call.ports);
      sr.respond(outcome.status, outcome.reason);
      return;
    }
    call.audio = outcome.audio;
    this.#calls.set(deviceUri, call);
    const videoChanged = this.#media.apply(call, outcome.video);
    call.session = InviteSession.accept(s.ua, sr, {
      answer: outcome.answer,
      contact: s.contactFor(this.record, sr.flow),
      events: this.#sessionEvents(call),
    });
    this.#everJoined = true;
    this.roster.upsertDevice(aor, display, {
      uri: deviceUri,
      status: "connected",
      joiningMethod: "dialed-in",
      joinedAt: now,
      media: this.#mediaOf(call),
      call: {
        callId: req.callId,
        fromTag: req.fromTag ?? "",
        toTag: sr.toTag,
      },
    });
    this.#timers.arm(call);
    s.logger.info("participant joined", { conference: this.id, aor, device: deviceUri });
    this.#publish();
    if (videoChanged) this.#media.reofferOthers(call);
  }

  // ------------------------------------------------------------------------------------
  // Dial-out

  /**
   * The focus invites `target` (RFC 4353 §5.3 "dial-out"): INVITE with From = conference URI,
   * through the outbound proxy. Resolves with the final status.
   */
  async dialOut(target: SipUri, invitedBy?: string): Promise<number> {
    const s = this.#services;
    if (this.#ended) return 410;
    const aor = addressOfRecord(target);
    const refusal = this.roster.admission(aor, new Set(this.#pendingJoins.keys()), true);
    if (refusal) return refusal.status;
    const ports = s.ports.allocate({ rtcpPort: true });
    const callId = `c${this.#nextCallId++}`;
    const offer = s.negotiator.offer(this.#media.dialOutCaps(ports.port, callId));
    const now = Date.now();
    const deviceUri = formatUri(target);
    this.roster.upsertDevice(aor, undefined, {
      uri: deviceUri,
      status: "dialing-out",
      joiningMethod: "dialed-out",
      joinedAt: now,
    });
    this.#publish();
    const call = newCall({ id: callId, aor, deviceUri, ports, now: s.clock.now() });
    const confUri = parseUri(this.record.uri);
    const result = await InviteSession.dial(s.ua, {
      uri: target,
      from: { display: undefined, uri: confUri, params: new Map() },
      to: { display: undefined, uri: target, params: new Map() },
      contact: s.contactFor(this.record, undefined),
      offer,
      headers: [
        ["Subject", this.record.subject],
        ...(invitedBy ? [["Referred-By", `<${invitedBy}>`] as const] : []),
      ],
    }, this.#sessionEvents(call));
    if (!result.session || this.#ended) {
      result.session?.bye().catch(() => {});
      this.#media.abandon(callId);
      void s.ports.release(ports);
      this.roster.removeDevice(deviceUri);
      this.#publish();
      s.logger.info("dial-out failed", {
        conference: this.id,
        target: deviceUri,
        status: result.response.status,
      });
      return result.response.status;
    }
    call.session = result.session;
    const answered = s.negotiator.parseMedia(offer, result.session.remoteSdp ?? "");
    call.audio = answered?.audio;
    this.#calls.set(deviceUri, call);
    const videoChanged = this.#media.apply(call, answered?.video ?? []);
    this.#everJoined = true;
    const d = this.roster.device(deviceUri);
    if (d) {
      d.device.status = "connected";
      d.device.media = this.#mediaOf(call);
    }
    void s.persist("dial-out", () =>
      storeMember(s.store, this.id, {
        aor,
        displayName: null,
        isAdmin: this.roster.user(aor)?.admin ?? false,
        deviceUri,
        joiningMethod: "dialed-out",
        at: now,
      }, () => this.notifier.version)).catch(() => {});
    this.#timers.arm(call);
    this.#publish();
    if (videoChanged) this.#media.reofferOthers(call);
    return result.response.status;
  }

  // ------------------------------------------------------------------------------------
  // Subscriptions, REFER, eject

  /** SUBSCRIBE Event: conference (RFC 4575 §3). */
  subscribe(sr: ServerRequest): void {
    this.notifier.subscribe(sr);
  }

  /**
   * REFER to the focus (RFC 4579 §5.5; Flexisip semantics): `Refer-To: <uri>` invites,
   * `<uri;method=BYE>` removes, `;admin=true|false` sets the role. Only admins may refer
   * (403). The implicit subscription (RFC 3515 §2.4.4) gets sipfrag NOTIFYs. See refer.ts.
   */
  refer(sr: ServerRequest, session: InviteSession | undefined): void {
    handleRefer(
      {
        ua: this.#services.ua,
        contact: (flow) => this.#services.contactFor(this.record, flow),
        isAdmin: (aor) => this.roster.user(aor)?.admin ?? false,
        setAdmin: (aor, admin) => this.#setAdmin(aor, admin),
        eject: (aor) => this.eject(aor),
        dialOut: (target, invitedBy) => this.dialOut(target, invitedBy),
      },
      sr,
      session,
    );
  }

  /** Sets a user's role (RFC 4579 §5.5 `admin`); false for a user not in the conference. */
  #setAdmin(aor: string, admin: boolean): boolean {
    const s = this.#services;
    const changed = this.roster.setAdmin(aor, admin);
    const known = this.roster.user(aor) !== undefined;
    if (known) {
      void s.persist("admin", () => storeRole(s.store, this.id, aor, () => this.roster.user(aor)))
        .catch(() => {});
    }
    if (changed) this.#publish();
    return known;
  }

  /** Ejects every device of a user (the focus sends BYE, RFC 4353 §5.3). */
  eject(aor: string): boolean {
    const calls = [...this.#calls.values()].filter((c) => c.aor === aor);
    if (calls.length === 0 && !this.roster.user(aor)) return false;
    for (const call of calls) {
      const session = call.session;
      this.#dropCall(call, "booted");
      void session?.bye([["Reason", 'SIP;cause=200;text="Removed from conference"']]).catch(
        () => {},
      );
    }
    this.roster.removeUser(aor);
    this.#publish();
    this.#maybeEnd();
    return true;
  }

  /** Ends the conference: subscriptions terminated first, then everyone gets BYE (RFC 4353 §5.1). */
  async end(reason = "Conference ended"): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    const s = this.#services;
    this.#timers.stop();
    await this.notifier.close("noresource");
    await Promise.all(this.#hangUpAll("ended", `SIP;cause=200;text="${reason}"`));
    if (this.record.kind !== "dial-in") {
      try {
        this.record = await s.persist("end", () => s.store.endConference(this.id, Date.now()));
      } catch {
        s.logger.warn("could not record the end of a conference", { conference: this.id });
      }
    }
    s.logger.info("conference ended", { conference: this.id });
    s.onEnded(this);
  }

  /**
   * Server shutdown: final NOTIFYs and BYEs are sent, but their answers are awaited at most
   * `graceMs` (a peer that never answers must not hold the process for Timer F).
   */
  async shutdown(graceMs = 500): Promise<void> {
    this.#timers.stop();
    this.#shuttingDown = true;
    this.#media.close();
    const pending: Promise<unknown>[] = [
      this.notifier.close("noresource").catch(() => {}),
      ...this.#hangUpAll("shutdown", 'SIP;cause=503;text="Server shutting down"'),
    ];
    let timer: TimerHandle | undefined;
    const grace = new Promise<void>((resolve) =>
      timer = this.#services.clock.setTimer(graceMs, resolve)
    );
    await Promise.race([Promise.all(pending), grace]);
    timer?.cancel();
  }

  // ------------------------------------------------------------------------------------

  #sessionEvents(call: Call) {
    return {
      onOffer: (offer: string) => {
        this.#media.noteOffer(call.id, offer);
        const outcome = this.#services.negotiator.answer(
          offer,
          this.#media.caps(call.ports?.port ?? 0, call.id),
        );
        if (!outcome.ok) {
          this.#media.abandon(call.id);
          return { status: outcome.status, reason: outcome.reason };
        }
        // RTP is expected again from the moment a held (or listen-only) call resumes.
        if (call.audio?.direction !== "sendrecv" && outcome.audio?.direction === "sendrecv") {
          call.rtpExpectedSince = this.#services.clock.now();
        }
        call.audio = outcome.audio;
        const videoChanged = this.#media.apply(call, outcome.video);
        this.#refreshDevice(call);
        this.#publish();
        if (videoChanged) this.#media.reofferOthers(call);
        return { answer: outcome.answer };
      },
      onEnded: (reason: string) => {
        if (this.#calls.get(call.deviceUri) !== call) return;
        this.#services.logger.info("participant left", {
          conference: this.id,
          device: call.deviceUri,
          reason,
        });
        this.#dropCall(call, reason);
        this.roster.removeDevice(call.deviceUri);
        const left = {
          aor: call.aor,
          deviceUri: call.deviceUri,
          userLeft: !this.roster.user(call.aor),
        };
        const leftAt = Date.now();
        // Durable: retried through an outage so a restart does not resurrect the device.
        void this.#services.persist(
          "leave",
          () => storeLeave(this.#services.store, this.id, left, leftAt),
        ).catch(() => {});
        this.#publish();
        this.#maybeEnd();
      },
      onRequest: (sr: ServerRequest) => {
        if (sr.request.method === "REFER") this.refer(sr, call.session);
      },
    };
  }

  /** A DTMF digit from a participant: the keypad controls (dtmf_controls.ts). */
  #onDtmf(call: Call, event: DtmfDigitEvent): void {
    onControlDigit(
      {
        conferenceId: this.id,
        logger: this.#services.logger,
        isAdmin: (aor) => this.roster.user(aor)?.admin ?? false,
        toggleMute: (c) => this.setMuted(c.deviceUri, !c.muted),
        toggleLock: (by) => this.setLocked(!this.roster.locked, by),
      },
      call,
      event,
    );
  }

  /**
   * Locks or unlocks the conference (RFC 4353 §5.1): while locked, INVITEs from users not in
   * it get 403 "Conference locked"; users already in it may add devices or rejoin, and
   * admins may still bring people in by REFER (dial-out). The state is stored (it survives a
   * restart), announced with a tone, and published (RFC 4575 `conference-state/locked`).
   * Returns false when nothing changed. A lock does not outlive the participants: it is
   * lifted when the last one leaves, so an emptied dial-in room is not locked forever.
   */
  setLocked(locked: boolean, by?: string): boolean {
    if (this.#ended || this.roster.locked === locked) return false;
    const s = this.#services;
    this.roster.locked = locked;
    s.logger.info(locked ? "conference locked" : "conference unlocked", {
      conference: this.id,
      ...(by !== undefined ? { by } : {}),
    });
    // Durable: retried through an outage; writes the state current at each attempt.
    void s.persist("lock", async () => {
      const options = { ...this.record.options, locked: this.roster.locked };
      this.record = await s.store.updateConference(this.id, { options });
    }).catch(() => {});
    this.#media.playTone(locked ? "locked" : "unlocked");
    this.#publish();
    return true;
  }

  /** Mutes or unmutes a device via the focus (RFC 4575 endpoint status `muted-via-focus`). */
  setMuted(deviceUri: string, muted: boolean): boolean {
    const call = this.#calls.get(deviceUri);
    if (!call || !this.#media.setMuted(call, muted)) return false;
    call.muted = muted;
    const d = this.roster.device(deviceUri);
    if (d) d.device.status = endpointStatusOf(call);
    this.#services.logger.info(muted ? "participant muted" : "participant unmuted", {
      conference: this.id,
      device: deviceUri,
    });
    this.#publish();
    return true;
  }

  #mediaOf(call: Call): MediaSnapshot[] {
    return this.#media.mediaOf(call);
  }

  /** The call's offer/answer changed: its endpoint's media and status again (RFC 4575 §5.7). */
  #refreshDevice(call: Call): void {
    const d = this.roster.device(call.deviceUri);
    if (d) {
      d.device.media = this.#mediaOf(call);
      d.device.status = endpointStatusOf(call);
    }
  }

  /** Video labels or SSRCs changed: every device's media elements again, then publish. */
  #refreshMedia(): void {
    for (const call of this.#calls.values()) {
      const d = this.roster.device(call.deviceUri);
      if (d && d.device.status !== "dialing-out") d.device.media = this.#mediaOf(call);
    }
    this.#publish();
  }

  #callById(id: string): Call | undefined {
    for (const call of this.#calls.values()) if (call.id === id) return call;
    return undefined;
  }

  #dropCall(call: Call, _reason: string): void {
    if (this.#calls.get(call.deviceUri) === call) this.#calls.delete(call.deviceUri);
    this.#media.dropCall(call);
    this.#timers.disarm(call, this.#calls.size);
    if (call.ports) void this.#services.ports.release(call.ports);
    call.ports = undefined;
  }

  /** Drops every call and closes the media; the BYEs (with `reasonHeader`) as they go out. */
  #hangUpAll(why: string, reasonHeader: string): Promise<void>[] {
    const byes: Promise<void>[] = [];
    for (const call of [...this.#calls.values()]) {
      const session = call.session;
      this.#dropCall(call, why);
      if (session) byes.push(session.bye([["Reason", reasonHeader]]).catch(() => {}));
    }
    this.#media.close();
    return byes;
  }

  #maybeEnd(): void {
    if (this.record.kind === "dial-in" && this.roster.users.length === 0) this.setLocked(false);
    // Ad-hoc conferences end when the last participant leaves (Flexisip destroy policy);
    // dial-in rooms stay.
    if (this.record.kind === "dial-in" || !this.#everJoined || this.#ended) return;
    if (this.roster.users.length === 0) void this.end("Last participant left");
  }

  #publish(): void {
    if (this.#ended) return;
    this.roster.availableMedia = this.#media.availableMedia();
    this.notifier.publish(this.roster.snapshot(true));
  }
}
