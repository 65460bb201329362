"""ConnectorClient and the Zendesk calls against a Zendesk-shaped server on loopback."""

from __future__ import annotations

import logging
import time

import pytest

from payivr.connectors.client import ConnectorClient, ConnectorError
from payivr.connectors.zendesk import CallerLookup, TicketNotEditable, ZendeskApi
from payivr.core.connector_paths import PathMissing, map_outputs, parse_path
from tests.integration.connectors.zdsupport import settings_for
from tests.support.fake_zendesk import Failure, FakeZendesk
from tests.support.servers import free_port

TICKETS = "/api/v2/users/501/tickets/requested.json"


def api(fake: FakeZendesk, **overrides: object) -> ZendeskApi:
    return ZendeskApi(ConnectorClient(settings_for(fake, **overrides)), "zendesk")


def test_caller_found_with_the_exact_request(zendesk: FakeZendesk) -> None:
    assert api(zendesk).lookup_caller("+34600111222") == CallerLookup(
        "found", user_id=501, name="Ana Caller", locale="es"
    )
    [req] = zendesk.recorded()
    assert (req.method, req.path) == ("GET", "/api/v2/users/search.json")
    assert req.query == {"query": "phone:34600111222"}
    assert req.authorization == zendesk.expected_authorization
    assert req.body is None


def test_caller_unknown_and_several(zendesk: FakeZendesk) -> None:
    zd = api(zendesk)
    assert zd.lookup_caller("+44 20 7946 0000") == CallerLookup("unknown")
    assert zd.lookup_caller("15135557611") == CallerLookup("several")
    assert [r.query["query"] for r in zendesk.recorded()] == [
        "phone:442079460000",
        "phone:15135557611",
    ]


@pytest.mark.parametrize("ani", ["anonymous", "", "Restricted"])
def test_withheld_number_is_unknown_without_a_request(zendesk: FakeZendesk, ani: str) -> None:
    assert api(zendesk).lookup_caller(ani) == CallerLookup("unknown")
    assert zendesk.recorded() == []


def test_latest_unresolved_ticket_skips_solved_and_closed(zendesk: FakeZendesk) -> None:
    ticket = api(zendesk).latest_unresolved_ticket(501)
    assert ticket is not None and (ticket.id, ticket.status) == (9003, "pending")
    [req] = zendesk.recorded()
    assert (req.method, req.path) == ("GET", TICKETS)
    assert req.query == {"sort_by": "updated_at", "sort_order": "desc", "page[size]": "100"}
    assert req.authorization == zendesk.expected_authorization


@pytest.mark.parametrize("status", ["new", "open", "pending", "hold"])
def test_each_unresolved_status_is_found(zendesk: FakeZendesk, status: str) -> None:
    zendesk.add_ticket(7000, 600, "solved", "2026-11-09T00:00:00Z")
    zendesk.add_ticket(7001, 600, status, "2026-11-08T00:00:00Z")
    ticket = api(zendesk).latest_unresolved_ticket(600)
    assert ticket is not None and (ticket.id, ticket.status) == (7001, status)


def test_no_unresolved_ticket(zendesk: FakeZendesk) -> None:
    zendesk.add_ticket(7100, 601, "solved", "2026-11-09T00:00:00Z")
    zendesk.add_ticket(7101, 601, "closed", "2026-11-08T00:00:00Z")
    assert api(zendesk).latest_unresolved_ticket(601) is None
    assert api(zendesk).latest_unresolved_ticket(999) is None


def test_cursor_pagination_follows_links_next(zendesk: FakeZendesk) -> None:
    # Page 1 (ids in order): an old open ticket and solved ones; page 2: the open
    # ticket updated last, which is the one.
    zendesk.add_ticket(9_500, 700, "open", "2025-01-01T00:00:00Z")
    for i in range(150):
        zendesk.add_ticket(
            10_000 + i, 700, "solved", f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"
        )
    zendesk.add_ticket(20_000, 700, "open", "2026-01-01T00:00:00Z")
    ticket = api(zendesk).latest_unresolved_ticket(700)
    assert ticket is not None and ticket.id == 20_000
    first, second = zendesk.recorded()
    assert "page[after]" not in first.query
    assert second.path == "/api/v2/users/700/tickets/requested.json"
    assert second.query["page[size]"] == "100" and second.query["page[after]"]
    assert second.authorization == zendesk.expected_authorization


def test_private_comment_exact_request(zendesk: FakeZendesk) -> None:
    api(zendesk).add_private_comment("9002", "Call summary: menu 1, waited 42 s, answered.")
    [req] = zendesk.recorded()
    assert (req.method, req.path, req.query) == ("PUT", "/api/v2/tickets/9002.json", {})
    assert req.body == {
        "ticket": {
            "comment": {"body": "Call summary: menu 1, waited 42 s, answered.", "public": False}
        }
    }
    assert req.authorization == zendesk.expected_authorization
    assert zendesk.comments[9002] == [req.body["ticket"]["comment"]]


def test_closed_ticket_is_not_editable(zendesk: FakeZendesk) -> None:
    with pytest.raises(TicketNotEditable) as info:
        api(zendesk).add_private_comment(9006, "note")
    assert info.value.status == 422 and info.value.kind == "rejected"
    assert "ticket-closed" in str(info.value)
    assert len(zendesk.recorded()) == 1  # never retried
    with pytest.raises(TicketNotEditable, match="ticket-not-found"):
        api(zendesk).add_private_comment(123456, "note")


def test_429_waits_for_retry_after_then_succeeds(zendesk: FakeZendesk) -> None:
    zendesk.fail_next(Failure(429, retry_after="1"))
    started = time.monotonic()
    assert api(zendesk).lookup_caller("34600111222").kind == "found"
    elapsed = time.monotonic() - started
    first, second = zendesk.recorded()
    assert second.at - first.at >= 0.95 and elapsed < 2.0
    assert first.query == second.query and second.authorization == zendesk.expected_authorization


def test_429_on_put_is_retried_too(zendesk: FakeZendesk) -> None:
    zendesk.fail_next(Failure(429, retry_after="0"))
    api(zendesk).add_private_comment(9001, "note")
    assert [r.method for r in zendesk.recorded()] == ["PUT", "PUT"]
    assert len(zendesk.comments[9001]) == 1


def test_429_longer_than_the_bound_is_not_waited_for(zendesk: FakeZendesk) -> None:
    zendesk.fail_next(Failure(429, retry_after="30"))
    started = time.monotonic()
    with pytest.raises(ConnectorError) as info:
        api(zendesk).lookup_caller("34600111222")
    assert time.monotonic() - started < 0.5
    assert (info.value.kind, info.value.status, info.value.retry_after_s) == (
        "unavailable",
        429,
        30.0,
    )
    assert len(zendesk.recorded()) == 1


def test_500_on_get_is_retried_within_the_bound(zendesk: FakeZendesk) -> None:
    zendesk.fail_next(Failure(500))
    assert api(zendesk).lookup_caller("34600111222").kind == "found"
    assert len(zendesk.recorded()) == 2
    zendesk.requests.clear()
    zendesk.fail_next(*[Failure(500)] * 5)
    with pytest.raises(ConnectorError) as info:
        api(zendesk).lookup_caller("34600111222")
    assert (info.value.kind, info.value.status) == ("unavailable", 500)
    assert len(zendesk.recorded()) == 3  # retry.attempts


def test_500_on_put_is_not_retried(zendesk: FakeZendesk) -> None:
    zendesk.fail_next(Failure(500))
    with pytest.raises(ConnectorError) as info:
        api(zendesk).add_private_comment(9001, "note")
    assert (info.value.kind, info.value.status) == ("unavailable", 500)
    assert len(zendesk.recorded()) == 1


def test_slow_past_the_timeout(zendesk: FakeZendesk) -> None:
    zendesk.delay_s = 1.5  # read_s is 0.5, overall_s 2
    started = time.monotonic()
    with pytest.raises(ConnectorError) as info:
        api(zendesk).lookup_caller("34600111222")
    elapsed = time.monotonic() - started
    assert info.value.kind == "timeout" and info.value.status is None
    assert elapsed < 2.3  # the overall timeout holds, retries included
    assert 1 <= len(zendesk.recorded()) <= 3


def test_slow_put_is_not_sent_twice(zendesk: FakeZendesk) -> None:
    zendesk.delay_s = 1.0
    with pytest.raises(ConnectorError) as info:
        api(zendesk).add_private_comment(9001, "note")
    assert info.value.kind == "timeout"
    assert len(zendesk.recorded()) == 1


def test_service_down_is_unavailable_after_bounded_attempts() -> None:
    fake = FakeZendesk(port=free_port())  # never started: connection refused
    started = time.monotonic()
    with pytest.raises(ConnectorError) as info:
        api(fake).lookup_caller("34600111222")
    assert info.value.kind == "unavailable" and info.value.status is None
    assert time.monotonic() - started < 2.0


def test_wrong_token_is_rejected(zendesk: FakeZendesk) -> None:
    zd = api(zendesk)
    zendesk.api_token = "rotated-token"  # the token in the secrets is no longer valid
    with pytest.raises(ConnectorError) as info:
        zd.lookup_caller("34600111222")
    assert (info.value.kind, info.value.status) == ("rejected", 401)
    assert len(zendesk.recorded()) == 1


def test_unknown_endpoint_is_not_found(zendesk: FakeZendesk) -> None:
    client = ConnectorClient(settings_for(zendesk))
    with pytest.raises(ConnectorError) as info:
        client.request("zendesk", "GET", "/api/v2/nothing.json")
    assert (info.value.kind, info.value.status) == ("not-found", 404)


def test_hosts_outside_the_allowlist_are_never_contacted(zendesk: FakeZendesk) -> None:
    client = ConnectorClient(settings_for(zendesk))
    for url in (
        f"http://localhost:{zendesk.port}/api/v2/users/search.json",
        f"https://127.0.0.1:{zendesk.port}/x",
        "ftp://127.0.0.1/x",
    ):
        with pytest.raises(ConnectorError) as info:
            client.request("zendesk", "GET", url)
        assert info.value.kind == "rejected"
    with pytest.raises(ConnectorError, match="not configured"):
        client.request("crm", "GET", "/")
    assert zendesk.recorded() == []


def test_outputs_mapped_by_path(zendesk: FakeZendesk) -> None:
    client = ConnectorClient(settings_for(zendesk))
    response = client.request(
        "zendesk", "GET", "/api/v2/users/search.json", query={"query": "phone:34600111222"}
    )
    outputs = {"user_id": parse_path("users[0].id"), "count": parse_path("count")}
    assert map_outputs(response.json, outputs) == {"user_id": 501, "count": 1}
    with pytest.raises(PathMissing, match=r"users\[1\].id: no item \[1\] \(list of 1\) at users"):
        map_outputs(response.json, {"x": parse_path("users[1].id")})


def test_no_secret_or_caller_number_in_logs_or_errors(
    zendesk: FakeZendesk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    zd = api(zendesk)
    errors: list[str] = []
    zendesk.fail_next(Failure(429, retry_after="0"), *[Failure(500)] * 3)
    for call in (
        lambda: zd.lookup_caller("34600111222"),
        lambda: zd.lookup_caller("34600111222"),
        lambda: zd.add_private_comment(9006, "secret-note-body"),
    ):
        try:
            call()
        except ConnectorError as exc:
            errors.append(f"{exc!s} {exc!r}")
    text = caplog.text + " ".join(errors)
    assert errors and "HTTP 500" in text
    for secret in (
        zendesk.api_token,
        zendesk.expected_authorization.split()[1],
        "34600111222",
        "secret-note-body",
    ):
        assert secret not in text
