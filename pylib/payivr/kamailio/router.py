"""KEMI routing: the object Kamailio's app_python3 calls for every SIP request.

Thin glue: read the message through KSR, ask the pure core for a decision
(payivr.core.admission.admit), act on it with KSR. Everything it decides on its own is
SIP plumbing: retransmissions, in-dialog routing, failover between FreeSWITCH nodes,
rate limits and the two infrastructure failures (Redis, no node) of SPEC section 4.

Order of work for a new INVITE from a CTI trunk, cheapest refusal first:
    overload (the UDP receive queue's fill) -> pike (per source) ->
    admit() (merchant, source, signature, fields, SDP offer) ->
    htable counter (per merchant) -> dispatcher (a live node?) ->
    Redis (replay key + session + event, one round trip) -> relay with failover.
Nothing is written anywhere for a rejected request. A call to a flow's entry point
(admit() says FlowCall) skips the merchant counter and Redis: it is relayed to a node
with the same failover, without `X-Pay-*` or session headers (docs/flows.md).

A BYE from a FreeSWITCH node goes through payivr.kamailio.bye first: unsigned result
headers (the dialplan fallback's, the ESL application being gone) are replaced by the
session's signed result, finalised in Redis if it had none.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from payivr.core.admission import FlowCall, Reject, admit, replayed
from payivr.core.config import Config, load_config
from payivr.core.errors import Rejection, forbidden, unavailable
from payivr.core.orphan import WatchBudget
from payivr.core.session import new_session_id
from payivr.core.siputil import uri_host
from payivr.kamailio.admission_store import AdmissionStore, AdmissionWrite
from payivr.kamailio.bye import ByeResults
from payivr.kamailio.metrics import KamailioMetrics
from payivr.kamailio.overload import ReceiveQueues
from payivr.kamailio.settings import DISPATCHER_SET
from payivr.kamailio.sipmsg import (
    mask_card_digits,
    message_body,
    payment_headers,
    reply_headers,
    unknown_payment_headers,
)
from payivr.media.sdp import (
    AGENT_LEG_HEADER,
    ANSWER_FLAGS,
    OFFER_FLAGS,
    UPDATE_FLAGS,
    kamailio_flags,
)
from payivr.media.settings import load_rtpengine_settings

if TYPE_CHECKING:
    from payivr.store.orphans import OrphanFinaliser

# Dispatcher algorithm 4: round-robin over the active nodes of the set.
DS_ROUND_ROBIN = 4
RATE_TABLE = "payivr_rate"
SESSION_AVP = "$avp(payivr_session)"
FAILURE_ROUTE = "ksr_failure_freeswitch"
SESSION_HEADER = "X-Payivr-Session"
# After Redis failed, answer 503 at once for this long instead of making every call
# wait for a socket timeout: a worker stuck on Redis is a worker not answering SIP.
REDIS_BACKOFF_S = 1.0
REDIS_SOCKET_TIMEOUT_S = 0.5
REDIS_CONNECT_TIMEOUT_S = 0.25
STOP = -255  # KEMI: end of processing for this message
# The agent's leg of an agent-assisted call (FreeSWITCH -> the agent's phone) runs its
# media through rtpengine; the Record-Route parameter finds that dialog again.
MEDIA_RR_PARAM = "payivr_media=agent"
MEDIA_REPLY_ROUTE = "ksr_reply_agent_media"
MEDIA_UPDATE_REPLY_ROUTE = "ksr_reply_agent_media_update"
MEDIA_FAILURE_ROUTE = "ksr_failure_agent_media"


class Router:
    """Per-process routing state: the config (loaded once) and a Redis connection."""

    def __init__(self, ksr: Any, config: Config, store: AdmissionStore | None = None) -> None:
        self.ksr = ksr
        self.config = config
        kam = config.services.kamailio
        self.host = kam.advertise_host
        self.retry_after = kam.rate_limit.retry_after_s
        self.merchant_limit = kam.rate_limit.per_merchant_per_s
        # Calls FreeSWITCH places back to a contact center may only go to hosts some
        # merchant allowlisted for returns (SPEC 2, X-Pay-Return).
        self.return_hosts = frozenset(
            host for merchant in config.merchants.values() for host in merchant.return_hosts
        )
        self.entry_headers = config.flows.header_names()
        self.store = store
        self._redis_down_until = 0.0
        self._finaliser: OrphanFinaliser | None = None
        self.byes = ByeResults(ksr, config, self._orphan_finaliser)
        self.metrics = KamailioMetrics(ksr, config)
        self.queues = ReceiveQueues()
        # rtpengine is in the agent's media path only where `services.rtpengine` is set.
        self.media = load_rtpengine_settings(config) is not None

    # ----- entry points called by app_python3 -----

    def child_init(self, rank: int) -> int:
        """SIP workers (rank > 0) open Redis now, so the first call does not wait.

        Kamailio also calls this in its main process before forking (PROC_INIT, -127):
        nothing is opened there, or the connection (and the redis/logging imports with
        their at-fork hooks) would be shared by every worker. Other processes (the timer
        process runs failure routes) open it on first use.
        """
        if rank > 0:
            self._open_store()
        return 0

    def _open_store(self) -> AdmissionStore:
        from payivr.store.connect import redis_client

        client = redis_client(
            self.config.services.redis,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        )
        self.store = AdmissionStore(
            client,
            self.config.services.session_ttl_s,
            WatchBudget.from_config(self.config.services.watchdog),
        )
        return self.store

    def _orphan_finaliser(self) -> OrphanFinaliser:
        """Built on first use, on this worker's Redis client (BYEs are rare)."""
        if self._finaliser is None:
            from payivr.store.orphans import OrphanFinaliser

            store = self.store or self._open_store()
            self._finaliser = OrphanFinaliser(store.client, self.config.services.session_ttl_s)
        return self._finaliser

    def ksr_request_route(self, msg: Any) -> int:
        """Every SIP request Kamailio receives."""
        ksr = self.ksr
        # The method read once: each KSR.is_<METHOD>() is a call into Kamailio, and a
        # request asked up to six of them. Kamailio matches method names regardless
        # of case, hence upper().
        method = ksr.kx.get_method().upper()
        if ksr.maxfwd.process_maxfwd(10) < 0:
            ksr.sl.sl_send_reply(483, "Too Many Hops")
            return STOP
        if ksr.sanity.sanity_check_defaults() < 0:
            return STOP
        if method == "CANCEL":
            if ksr.tm.t_check_trans() > 0:
                self._relay()
            return STOP
        if method != "ACK":
            # Retransmissions are answered by tm from the transaction, not routed again
            # (a second admission would see its own replay key).
            if ksr.tmx.t_precheck_trans() > 0:
                ksr.tm.t_check_trans()
                return STOP
            if ksr.tm.t_check_trans() == 0:
                return STOP
        if ksr.siputils.has_totag() > 0:
            return self._in_dialog(method)
        if method == "ACK":
            ksr.tm.t_check_trans()
            return STOP
        if method == "OPTIONS":
            ksr.sl.sl_send_reply(200, "OK")
            return STOP
        if ksr.dispatcher.ds_is_from_list(DISPATCHER_SET) > 0:
            return self._from_freeswitch(method)
        if method == "INVITE":
            return self._payment_call()
        ksr.sl.sl_send_reply(405, "Method Not Allowed")
        return STOP

    def ksr_xhttp_event(self, msg: Any, event: str = "") -> int:
        """An HTTP request on the metrics socket (xhttp's event callback)."""
        return self.metrics.scrape()

    def ksr_failure_freeswitch(self, msg: Any) -> int:
        """A FreeSWITCH node failed the INVITE: try the next one, or answer 503."""
        ksr = self.ksr
        if ksr.tm.t_is_canceled() > 0:
            self._close_session("caller-cancelled")
            return STOP
        if ksr.tm.t_check_status("408|5[0-9][0-9]") > 0:
            # The node is not marked down here: on a one-node set one slow answer
            # would become a 503 for everyone. The OPTIONS probes decide which nodes
            # are alive; this call just moves on to the next one.
            if ksr.dispatcher.ds_next_dst() > 0:
                ksr.tm.t_on_failure(FAILURE_ROUTE)
                if ksr.tm.t_relay() > 0:
                    return STOP
            self._close_session("no-freeswitch-node")
            rejection = unavailable("FreeSWITCH", "no node took the call", self.retry_after)
            ksr.hdr.append_to_reply(reply_headers(rejection, self.host))
            ksr.tm.t_reply(rejection.status, rejection.reason_phrase)
            self._log_rejection(rejection)
            self.metrics.rejected(rejection)
            return STOP
        # Any other final answer (4xx, 6xx) is the node's and goes back as it is.
        self._close_session("freeswitch-refused")
        return STOP

    # ----- new payment calls from a CTI trunk -----

    def _payment_call(self) -> int:
        ksr = self.ksr
        now = time.time()
        if ksr.is_UDP() and self.queues.overloaded((ksr.kx.get_rcvip(), ksr.kx.get_rcvport())):
            # Shed before any work: past capacity, admitting more only delays everyone.
            return self._reject(unavailable("Kamailio", "overloaded", self.retry_after))
        source = ksr.kx.get_srcip()
        if ksr.pike.pike_check_req() < 0:
            return self._reject(
                unavailable("source", f"too many requests from {source}", self.retry_after)
            )
        message = ksr.kx.get_msgbuf()
        headers = payment_headers(message)
        decision = admit(
            headers,
            call_id=ksr.kx.get_callid(),
            source_ip=source,
            config=self.config,
            now=now,
            body=message_body(message),
            replay=None,
            referred_by=ksr.hdr.get("Referred-By"),
            dialled=ksr.pv.get("$rU") or "",
            entry_headers={name.lower(): ksr.hdr.get(name) or "" for name in self.entry_headers},
        )
        if isinstance(decision, Reject):
            return self._reject(decision.rejection)
        if isinstance(decision, FlowCall):
            return self._flow_call(decision, headers)
        request = decision.request
        count = ksr.htable.sht_inc(RATE_TABLE, f"{request.merchant}:{int(now)}")
        if count > self.merchant_limit:
            return self._reject(
                unavailable(
                    "X-Pay-Merchant", f"rate limit for {request.merchant} reached", self.retry_after
                )
            )
        if ksr.dispatcher.ds_select_dst(DISPATCHER_SET, DS_ROUND_ROBIN) < 0:
            return self._reject(unavailable("FreeSWITCH", "no node available", self.retry_after))

        session_id = new_session_id()
        outcome = self._create_session(decision, session_id, now)
        if outcome is None:
            return self._reject(unavailable("Redis", "session store unavailable", self.retry_after))
        if outcome is AdmissionWrite.REPLAYED:
            return self._reject(replayed())

        ksr.pv.sets(SESSION_AVP, f"{session_id} {request.merchant} {request.order}")
        ksr.hdr.remove(SESSION_HEADER)  # never trust one the trunk sent
        for name in unknown_payment_headers(headers):
            ksr.hdr.remove(name)
        ksr.hdr.append(f"{SESSION_HEADER}: {session_id}\r\n")
        # A dialog with keep-alives toward the node: when the node dies mid-call, an
        # in-dialog OPTIONS times out, the dialog's lifetime drops to 10 s, and on
        # timeout Kamailio ends the call with a BYE to the contact center
        # (docs/kamailio.md, "A node that dies with calls in progress").
        ksr.dialog.dlg_manage()
        ksr.dialog.dlg_set_property("ka-dst")
        ksr.rr.record_route()
        ksr.tm.t_on_failure(FAILURE_ROUTE)
        if ksr.tm.t_relay() < 0:
            self._close_session("relay-failed")
            ksr.sl.sl_reply_error()
            return STOP
        self.metrics.admitted(request.merchant)
        # Masked: an order id or a Call-ID may be any run of digits a CTI chose.
        ksr.info(
            mask_card_digits(
                f"payivr: accepted call-id={request.call_id} session={session_id} "
                f"merchant={request.merchant} order={request.order}\n"
            )
        )
        return STOP

    def _flow_call(self, decision: FlowCall, headers: list[tuple[str, str]]) -> int:
        """Relay a call to a flow's entry point: a node, failover, no session."""
        ksr = self.ksr
        if ksr.dispatcher.ds_select_dst(DISPATCHER_SET, DS_ROUND_ROBIN) < 0:
            return self._reject(unavailable("FreeSWITCH", "no node available", self.retry_after))
        # FreeSWITCH tells a flow call from a payment call by the session header.
        ksr.hdr.remove(SESSION_HEADER)
        for name in {name for name, _ in headers}:
            ksr.hdr.remove(name)
        ksr.rr.record_route()
        ksr.tm.t_on_failure(FAILURE_ROUTE)
        if ksr.tm.t_relay() < 0:
            ksr.sl.sl_reply_error()
            return STOP
        ksr.info(
            mask_card_digits(
                f"payivr: flow call call-id={ksr.kx.get_callid()} entry={decision.entry.name}\n"
            )
        )
        return STOP

    def _create_session(self, decision: Any, session_id: str, now: float) -> AdmissionWrite | None:
        import redis

        if now < self._redis_down_until:
            return None
        store = self.store or self._open_store()
        try:
            return store.create_session(decision, session_id, now)
        except redis.RedisError as exc:
            self._redis_down_until = now + REDIS_BACKOFF_S
            self.ksr.err(f"payivr: redis unavailable: {type(exc).__name__}\n")
            return None

    def _close_session(self, reason: str) -> None:
        ksr = self.ksr
        packed = ksr.pv.get(SESSION_AVP)
        if not packed:
            return
        session_id, merchant, order = str(packed).split(" ", 2)
        try:
            # A timeout's failure route runs in Kamailio's timer process, which may
            # not have opened Redis yet.
            store = self.store or self._open_store()
            store.close_unrouted(session_id, merchant, order, time.time(), reason)
        except Exception as exc:  # Redis gone too: the session expires by its TTL
            ksr.err(f"payivr: could not close session {session_id}: {type(exc).__name__}\n")

    # ----- calls and requests from FreeSWITCH -----

    def _from_freeswitch(self, method: str) -> int:
        """A new call from a FreeSWITCH node: the result going back to the contact center."""
        ksr = self.ksr
        if method != "INVITE":
            ksr.sl.sl_send_reply(405, "Method Not Allowed")
            return STOP
        host = (ksr.pv.get("$rd") or "").lower()
        if host not in self.return_hosts:
            return self._reject(
                forbidden("Request-URI", f"{host} is not an allowlisted return target")
            )
        if ksr.hdr.get(AGENT_LEG_HEADER) is not None:
            return self._agent_leg()
        ksr.rr.record_route()
        self._relay()
        return STOP

    def _agent_leg(self) -> int:
        """FreeSWITCH bridging a caller to the agent: the media goes through rtpengine.

        Refused rather than relayed around rtpengine: an agent leg without it would
        carry the card tones to the agent.
        """
        ksr = self.ksr
        ksr.hdr.remove(AGENT_LEG_HEADER)
        if not self.media:
            return self._reject(unavailable("rtpengine", "no media proxy configured", 0))
        if ksr.rtpengine.rtpengine_offer(kamailio_flags(OFFER_FLAGS)) < 0:
            return self._reject(unavailable("rtpengine", "the media proxy did not answer", 0))
        ksr.rr.add_rr_param(f";{MEDIA_RR_PARAM}")
        ksr.rr.record_route()
        ksr.tm.t_on_reply(MEDIA_REPLY_ROUTE)
        ksr.tm.t_on_failure(MEDIA_FAILURE_ROUTE)
        self._relay()
        return STOP

    def ksr_reply_agent_media(self, msg: Any) -> int:
        """A reply on the agent's leg: rtpengine rewrites the SDP answer."""
        ksr = self.ksr
        status = int(ksr.pv.get("$rs") or 0)
        if 180 <= status < 300 and ksr.pv.get("$rb"):
            ksr.rtpengine.rtpengine_answer(kamailio_flags(ANSWER_FLAGS))
        return 1

    def ksr_reply_agent_media_update(self, msg: Any) -> int:
        """A reply to a re-INVITE on the agent's leg (the labels stay as first set)."""
        ksr = self.ksr
        status = int(ksr.pv.get("$rs") or 0)
        if 180 <= status < 300 and ksr.pv.get("$rb"):
            ksr.rtpengine.rtpengine_answer(kamailio_flags(UPDATE_FLAGS))
        return 1

    def ksr_failure_agent_media(self, msg: Any) -> int:
        """The agent's leg failed: rtpengine forgets the call at once."""
        self.ksr.rtpengine.rtpengine_delete("")
        return STOP

    # ----- inside a dialog -----

    def _in_dialog(self, method: str) -> int:
        ksr = self.ksr
        if ksr.rr.loose_route() > 0:
            if method == "REFER" and not self._refer_allowed():
                return STOP
            if method == "BYE" and ksr.dispatcher.ds_is_from_list(DISPATCHER_SET) > 0:
                self.byes.rewrite()
            if self.media and ksr.rr.check_route_param(MEDIA_RR_PARAM) > 0:
                self._agent_media_in_dialog(method)
            self._relay()
            return STOP
        if method == "ACK":
            if ksr.tm.t_check_trans() > 0:
                self._relay()
            return STOP
        ksr.sl.sl_send_reply(404, "Not here")
        return STOP

    def _agent_media_in_dialog(self, method: str) -> None:
        """A re-INVITE keeps the agent's media in rtpengine; a BYE ends it there."""
        ksr = self.ksr
        if method == "INVITE" and ksr.pv.get("$rb"):
            # Either side may send it: no labels here, they name the sides already.
            ksr.rtpengine.rtpengine_offer(kamailio_flags(UPDATE_FLAGS))
            ksr.tm.t_on_reply(MEDIA_UPDATE_REPLY_ROUTE)
        elif method == "BYE":
            ksr.rtpengine.rtpengine_delete("")

    def _refer_allowed(self) -> bool:
        """A REFER from FreeSWITCH (return by transfer) may only name allowlisted hosts."""
        ksr = self.ksr
        if ksr.dispatcher.ds_is_from_list(DISPATCHER_SET) < 0:
            return True
        host = uri_host(ksr.hdr.get("Refer-To") or "")
        if host in self.return_hosts:
            return True
        self._reject(forbidden("Refer-To", f"{host or 'missing'}: not an allowlisted target"))
        return False

    # ----- helpers -----

    def _relay(self) -> None:
        if self.ksr.tm.t_relay() < 0:
            self.ksr.sl.sl_reply_error()

    def _reject(self, rejection: Rejection) -> int:
        ksr = self.ksr
        ksr.hdr.append_to_reply(reply_headers(rejection, self.host))
        ksr.sl.sl_send_reply(rejection.status, rejection.reason_phrase)
        self._log_rejection(rejection)
        self.metrics.rejected(rejection)
        return STOP

    def _log_rejection(self, rejection: Rejection) -> None:
        ksr = self.ksr
        # Call-ID, source and the problem; PAN-like digit runs masked (the problem
        # may quote a value, such as an unknown merchant id, that a CTI got wrong).
        ksr.info(
            mask_card_digits(
                f"payivr: rejected call-id={ksr.kx.get_callid()} from {ksr.kx.get_srcip()}: "
                f"{rejection}\n"
            )
        )


def build_router(ksr: Any, config_path: str) -> Router:
    """Load the payivr config once (in Kamailio's main process) and build the router."""
    config = load_config(config_path)
    return Router(ksr, config)
