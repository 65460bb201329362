"""The SRTP admission check (payivr.core.media_security) and its place in admit()."""

from __future__ import annotations

import pytest

from payivr.core.errors import Rejection
from payivr.core.media_security import check_srtp, insecure_reason, media_offers

HEAD = "v=0\r\no=cti 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
SDES = HEAD + (
    "m=audio 4000 RTP/SAVP 8 101\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:DShKAD6ObVMbvKc5E1UFXsEGnCXNJT2sIBhewlZM\r\n"
)
DTLS = HEAD + "a=fingerprint:sha-256 AB:CD\r\nm=audio 4000 UDP/TLS/RTP/SAVPF 8\r\n"
PLAIN = HEAD + "m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"


def rejection(sdp: str) -> Rejection:
    with pytest.raises(Rejection) as caught:
        check_srtp(sdp, "acme")
    return caught.value


def test_sdes_and_dtls_offers_pass() -> None:
    check_srtp(SDES, "acme")
    check_srtp(DTLS, "acme")


def test_plain_rtp_is_488_naming_the_stream_and_the_fix() -> None:
    r = rejection(PLAIN)
    assert (r.status, r.header) == (488, "SDP")
    assert "merchant acme requires SRTP: m=audio RTP/AVP is plain RTP" in r.problem
    assert "RTP/SAVP with a=crypto" in r.problem


def test_savp_without_keys_or_fingerprint_is_refused() -> None:
    assert "without a=crypto" in rejection(SDES.split("a=crypto")[0]).problem
    assert "without a=fingerprint" in rejection(DTLS.replace("a=fingerprint", "a=x")).problem


def test_one_clear_stream_among_secure_ones_is_refused_and_a_disabled_one_is_not() -> None:
    assert "m=video" in rejection(SDES + "m=video 4002 RTP/AVP 96\r\n").problem
    check_srtp(SDES + "m=video 0 RTP/AVP 96\r\n", "acme")
    assert "no active stream" in rejection(HEAD + "m=audio 0 RTP/SAVP 8\r\n").problem


def test_crypto_of_another_section_does_not_count() -> None:
    offer = media_offers(PLAIN + "m=audio 4002 RTP/SAVP 8\r\na=crypto:1 AES_CM x\r\n")
    assert [insecure_reason(o) for o in offer] == ["RTP/AVP is plain RTP", None]


def test_admit_refuses_plain_rtp_only_for_a_merchant_requiring_srtp() -> None:
    from payivr.core.admission import Accept, MessageBody, Reject, admit
    from tests.unit.helpers import NOW, SDP, example_config, signed_headers

    def decide(config: object, body: MessageBody) -> object:
        return admit(
            signed_headers(),
            call_id="call-1@cti",
            source_ip="127.0.0.1",
            config=config,  # type: ignore[arg-type]
            now=NOW,
            body=body,
        )

    strict = example_config(require_srtp=True)
    refused = decide(strict, SDP)  # the helpers' offer is RTP/AVP
    assert isinstance(refused, Reject)
    assert refused.rejection.status == 488 and "requires SRTP" in refused.rejection.problem
    assert isinstance(decide(strict, MessageBody("application/sdp", SDES)), Accept)
    assert isinstance(decide(example_config(), SDP), Accept)
