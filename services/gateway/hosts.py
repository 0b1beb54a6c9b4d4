"""The Host allow-list, against DNS rebinding: a web page on ``evil.example`` whose name is made to resolve to
the gateway's address would otherwise be "same origin" with it. Such a request still names ``evil.example``
in its Host header, so the gateway answers only Host names it knows:

- any IP address (a page cannot rebind an address, only a name);
- any name without a dot (``nas``, ``gateway`` in compose): public DNS has no such names, so no stranger's
  page can be served from one;
- ``localhost`` and ``*.localhost`` (browsers resolve them to loopback themselves);
- this machine's own names (its host name, fully qualified name, and ``<name>.local`` for mDNS);
- MEDIASEARCH_ALLOWED_HOSTS: exact names, ``.example.com`` for a domain and its subdomains, or ``*`` for any.

In compose the gateway's container does not know the host's names: ``docker/init-env.sh`` writes them into
``.env``. A refused Host gets a 400 page naming the setting.
"""

from __future__ import annotations

import html
import ipaddress
import json
import socket

from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.response_headers import HttpMiddleware
from shared.settings import Settings

SETTING = "MEDIASEARCH_ALLOWED_HOSTS"


def machine_names() -> set[str]:
    names = {"localhost"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower())
            names.add(f"{name.split('.')[0].lower()}.local")
    return names


def hostname_of(host_header: str) -> str:
    """The name in a Host header, without its port (``[::1]:8000`` → ``::1``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AllowedHosts:
    def __init__(self, configured: list[str]):
        entries = {entry.strip().lower().rstrip(".") for entry in configured if entry.strip()}
        self.any = "*" in entries
        self.names = machine_names() | {entry for entry in entries if not entry.startswith(".")}
        self.suffixes = tuple(entry for entry in entries if entry.startswith(".")) + (".localhost",)

    def allows(self, host_header: str) -> bool:
        name = hostname_of(host_header).rstrip(".")
        if not name:
            return False
        return (self.any or is_ip_address(name) or "." not in name or name in self.names
                or name.endswith(self.suffixes) or f".{name}" in self.suffixes)


class HostAllowList(HttpMiddleware):
    def __init__(self, app: ASGIApp, settings: Settings):
        super().__init__(app)
        self.allowed = AllowedHosts(settings.allowed_hosts)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), "")
        if self.allowed.allows(host):
            await self.app(scope, receive, send)
            return
        await refuse(scope, send, hostname_of(host))


async def refuse(scope: Scope, send: Send, name: str) -> None:
    reason = (f"this server does not answer to the name {name!r}: add it to {SETTING} "
              "(comma separated) if that is how you reach it")
    accept = next((value for header, value in scope["headers"] if header == b"accept"), b"")
    if b"text/html" in accept:
        body = ("<!doctype html><meta charset=utf-8><title>Unknown host name</title>"
                f"<h1>Unknown host name</h1><p>{html.escape(reason)}.</p>").encode()
        content_type = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"detail": reason}).encode()
        content_type = b"application/json"
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
