"""The pieces of accounts that need no gateway: the sign-in backoff, Host names, proxies' addresses."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from services.gateway.auth import Proxies
from services.gateway.hosts import AllowedHosts, hostname_of
from shared.accounts import SignInThrottle
from shared.errors import TooManyAttempts
from shared.settings import Settings


def test_the_backoff_doubles_after_the_free_failures_and_a_success_clears_it():
    now = [0.0]
    throttle = SignInThrottle(free=3, max_wait_s=8, clock=lambda: now[0])
    waits = []
    for _ in range(8):
        throttle.check("192.0.2.1", "ann")  # allowed: any wait before was waited out
        throttle.failed("192.0.2.1", "ann")
        waits.append(throttle.failures["user:ann"][1] - now[0])
        if waits[-1]:
            with pytest.raises(TooManyAttempts):
                throttle.check("192.0.2.1", "ann")
        now[0] += waits[-1]
    assert waits == [0, 0, 0, 1, 2, 4, 8, 8]  # three free, then doubling, capped
    throttle.failed("192.0.2.1", "ann")
    with pytest.raises(TooManyAttempts) as refused:
        throttle.check("198.51.100.7", "ANN")  # another address, the same account (names ignore case)
    assert refused.value.headers == {"Retry-After": "8"}
    now[0] += 8
    throttle.succeeded("192.0.2.1", "ann")
    throttle.check("192.0.2.1", "ann")
    assert throttle.failures == {}


@pytest.mark.parametrize("header, name", [("example.org", "example.org"), ("Example.ORG:8000", "example.org"),
                                          ("[::1]:8000", "::1"), ("::1", "::1"), ("192.0.2.1:80", "192.0.2.1")])
def test_the_name_in_a_host_header(header, name):
    assert hostname_of(header) == name


def test_allowed_hosts_take_addresses_loopback_names_this_machine_and_the_setting():
    allowed = AllowedHosts(["photos.example.org", ".home.arpa"])
    for host in ("10.1.2.3", "[fe80::1]:8000", "localhost", "x.localhost", "photos.example.org.", "nas.home.arpa",
                 "gateway:8000", "nas"):
        assert allowed.allows(host), host
    for host in ("", "example.org", "evil-photos.example.org", "home.arpa.evil.example", "localhost.evil.example"):
        assert not allowed.allows(host), host
    assert AllowedHosts(["*"]).allows("anything.example")


def request_from(peer: str, headers: dict[str, str]) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "scheme": "http", "server": ("h", 80),
                    "client": (peer, 1), "query_string": b"",
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})


def test_forwarded_headers_count_only_from_trusted_proxies(tmp_path):
    proxies = Proxies(Settings(data_dir=tmp_path, trusted_proxies=["10.0.0.0/8", "192.0.2.5"]))
    chain = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.0.0.3", "X-Forwarded-Proto": "https"}
    assert proxies.client_address(request_from("10.0.0.2", chain)) == "203.0.113.9"  # the made-up hop is ignored
    assert proxies.is_tls(request_from("192.0.2.5", chain))
    assert proxies.client_address(request_from("198.51.100.1", chain)) == "198.51.100.1"
    assert not proxies.is_tls(request_from("198.51.100.1", chain))
