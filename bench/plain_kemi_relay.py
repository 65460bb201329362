"""A plain KEMI Python route with one Redis write: the baseline for kamailio_cps.py.

No admission at all: no signature, no header validation, no replay key, no session
object. Each INVITE writes one Redis hash and is relayed to the dispatcher set with
record-route; in-dialog requests are loose-routed. It is what the issue's reference
figure ("a plain KEMI Python route with one Redis write") describes, so

    .venv/bin/python bench/kamailio_cps.py --kemi-script bench/plain_kemi_relay.py

measured next to the full route on the same machine gives the cost of admission as
a ratio, which survives a noisy machine better than an absolute rate.
"""

import sys

import KSR


def _define(name):
    return (KSR.kx.get_def(name) or "").strip().strip('"')


class PlainRelay:
    def __init__(self, redis_url):
        self.redis_url = redis_url
        self.client = None

    def child_init(self, rank):
        import redis

        # One connection per worker process, opened after the fork.
        self.client = redis.Redis.from_url(self.redis_url, socket_timeout=2)
        return 0

    def ksr_request_route(self, msg):
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return -255
        if not KSR.is_ACK():
            if KSR.tmx.t_precheck_trans() > 0:
                KSR.tm.t_check_trans()
                return -255
            if KSR.tm.t_check_trans() == 0:
                return -255
        if KSR.siputils.has_totag() > 0:
            if KSR.rr.loose_route() > 0 or KSR.is_ACK():
                KSR.tm.t_relay()
            return -255
        if KSR.is_OPTIONS():
            KSR.sl.sl_send_reply(200, "OK")
            return -255
        if not KSR.is_INVITE():
            KSR.sl.sl_send_reply(405, "Method Not Allowed")
            return -255
        call_id = KSR.pv.get("$ci")
        self.client.hset("bench:plain:" + call_id, "call_id", call_id)
        if KSR.dispatcher.ds_select_dst(1, 4) < 0:
            KSR.sl.sl_send_reply(503, "Service Unavailable")
            return -255
        KSR.rr.record_route()
        KSR.tm.t_relay()
        return -255

    def ksr_failure_freeswitch(self, msg):
        return -255


def mod_init():
    pylib = _define("PAYIVR_PYLIB")
    if pylib and pylib not in sys.path:
        sys.path.insert(0, pylib)
    from payivr.core.config import load_config

    config = load_config(_define("PAYIVR_CONFIG"))
    return PlainRelay(config.services.redis.url)
