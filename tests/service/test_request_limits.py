"""Bounded requests: every body is limited by its route while it streams in, before anything parses,
spools or authenticates it (services/gateway/body_limits.py), and a multipart upload's fields and part
headers are bounded too (services/gateway/uploads.py). Everything over a limit is a 413 with a reason.

The first tests run the gateway app in-process; the memory tests start the real gateway
(``python -m services.gateway``, uvicorn) as a subprocess on loopback and read its resident memory from
``/proc/<pid>/status`` around hostile requests: the peak (VmHWM) may not grow by more than 50 MB.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from services.gateway.body_limits import FORM_FRAMING_BYTES
from services.gateway.uploads import MAX_PART_HEADERS, MAX_TEXT_FIELDS
from tests.conftest import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
BOUNDARY = "limits-5b2e"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
MB = 1024**2
MAX_GROWTH = 50 * MB
API_KEY = "limits-static-key"
SIGNED_IN = {"X-API-Key": API_KEY}  # the limits hold for users too; strangers are refused before any body


def part(name: str, content: bytes, filename: str | None = None, extra_headers: str = "") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    return (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{extra_headers}\r\n").encode() + content + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """``data`` as a body without a length (sent chunked)."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def assert_413(reply: httpx.Response, *words: str) -> str:
    assert reply.status_code == 413, reply.text
    detail = reply.json()["detail"]
    assert all(word in detail for word in words), detail
    return detail


# -- in process: the limits and their messages ---------------------------------------------------------
def test_a_json_body_over_its_limit_is_413_by_length_or_by_count_and_one_within_reaches_the_route(make_client):
    client = make_client(max_json_bytes=4096)
    within = json.dumps({"media_ids": [1] * 1000}).encode()  # 4 KB of ids: the route answers (no such media)
    assert len(within) <= 4096
    reply = client.post("/media/delete", content=within, headers={"Content-Type": "application/json"})
    assert reply.status_code == 404, reply.text
    over = json.dumps({"media_idz": [1] * 2000}).encode()  # a wrong key too: the size answers, not validation
    for body in (over, chunks(over, 1000)):  # with a Content-Length, then chunked
        reply = client.post("/media/delete", content=body, headers={"Content-Type": "application/json"})
        assert_413(reply, "the request body is larger than the limit of 4096 bytes", "MEDIASEARCH_MAX_JSON_BYTES")
        assert reply.headers["connection"] == "close"
        assert reply.headers["x-content-type-options"] == "nosniff"  # the other middleware still wrap it
    # Any route, even one that takes no body; a stranger's body within the limit is never read: 401 first.
    assert_413(client.post("/jobs/x/cancel", content=b"x" * 5000), "MEDIASEARCH_MAX_JSON_BYTES")
    stranger = make_client(signed_in=False, max_json_bytes=4096)
    assert_413(stranger.post("/jobs/x/cancel", content=b"x" * 5000), "MEDIASEARCH_MAX_JSON_BYTES")
    refused = stranger.post("/jobs/x/cancel", content=b"{not json")
    assert refused.status_code == 401 and refused.headers["connection"] == "close"


def test_uploads_are_bounded_by_the_upload_total_not_the_json_limit(make_client):
    client = make_client(max_json_bytes=1024, max_upload_bytes=100_000)
    body = multipart(part("files", b"x" * 50_000, "a.jpg"))
    assert client.post("/uploads", content=body, headers=MULTIPART).status_code == 202
    big = multipart(part("files", b"x" * 100_001, "a.jpg"))
    for content in (big, chunks(big)):
        assert_413(client.post("/uploads", content=content, headers=MULTIPART),
                   "the upload is larger than the limit of 100000 bytes", "MEDIASEARCH_MAX_UPLOAD_BYTES")
    uploads = client.app.state.gateway.settings.uploads_dir
    assert len(list(uploads.iterdir())) == 1  # the accepted one; nothing of the refused


def test_an_image_query_over_its_cap_is_413_before_the_form_is_read(make_client):
    client = make_client(max_query_image_bytes=10_000)
    over = multipart(part("file", b"x" * (10_000 + FORM_FRAMING_BYTES + 1), "q.jpg"))
    for content in (over, chunks(over)):
        assert_413(client.post("/search/image", content=content, headers=MULTIPART),
                   "the query image is larger than the limit of 10000 bytes", "MEDIASEARCH_MAX_QUERY_IMAGE_BYTES")
    # Within the body's framing allowance but over the cap: the image part's own size is checked.
    slightly = multipart(part("file", b"x" * 10_001, "q.jpg"))
    assert_413(client.post("/search/image", content=slightly, headers=MULTIPART), "MEDIASEARCH_MAX_QUERY_IMAGE_BYTES")
    # Within the cap it reaches the embedder (closed here: 503).
    fits = multipart(part("file", b"x" * 10_000, "q.jpg"))
    assert client.post("/search/image", content=fits, headers=MULTIPART).status_code == 503


@pytest.mark.parametrize("parts, words", [
    ([part(f"field{n}", b"x") for n in range(MAX_TEXT_FIELDS + 1)], ["too many form fields"]),
    ([part("files", b"x", "a.jpg", "".join(f"X-Header-{n}: y\r\n" for n in range(MAX_PART_HEADERS)))],
     ["too many or too long headers"]),
    ([part("files", b"x", "a" * 20_000 + ".jpg")], ["too many or too long headers"]),
])
def test_multipart_fields_and_part_headers_are_bounded(client, parts, words):
    body = multipart(part("files", b"x", "first.jpg"), *parts)
    assert_413(client.post("/uploads", content=body, headers=MULTIPART), *words)
    uploads = client.app.state.gateway.settings.uploads_dir
    assert not uploads.exists() or not any(uploads.iterdir())


# -- the real gateway: memory stays flat --------------------------------------------------------------
def memory(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


class Gateway:
    def __init__(self, process: subprocess.Popen, port: int):
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def grows(self, send) -> tuple[httpx.Response, dict[str, int]]:
        """``send()``'s reply and how much the gateway's memory grew meanwhile: now (VmRSS) and at its peak
        (VmHWM, the high-water mark since the process started)."""
        before = memory(self.process.pid)
        reply = send()
        after = memory(self.process.pid)
        growth = {name: after[name] - before[name] for name in before}
        print(f"memory growth: VmRSS {growth['VmRSS'] / MB:+.1f} MB, VmHWM {growth['VmHWM'] / MB:+.1f} MB "
              f"(VmRSS {after['VmRSS'] / MB:.0f} MB after)")
        return reply, growth


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, redis_url) -> Gateway:
    """``python -m services.gateway`` on a free loopback port; embedder and index at closed ports."""
    home = tmp_path_factory.mktemp("gateway")
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("MEDIASEARCH_")}
    env.update({"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
                "MEDIASEARCH_DATA_DIR": str(home / "data"), "MEDIASEARCH_REDIS_URL": redis_url,
                "MEDIASEARCH_GATEWAY_PORT": str(port),
                "MEDIASEARCH_EMBEDDER_URL": f"http://127.0.0.1:{free_port()}",
                "MEDIASEARCH_INDEX_URLS": f"http://127.0.0.1:{free_port()}",
                "MEDIASEARCH_MAX_QUERY_IMAGE_BYTES": str(MB),
                "MEDIASEARCH_DISK_RESERVE_BYTES": "0", "MEDIASEARCH_API_KEY": API_KEY})
    with open(home / "gateway.log", "wb") as log:  # run where no .env is: only these settings apply
        process = subprocess.Popen([sys.executable, "-m", "services.gateway"], cwd=home, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        def answers() -> bool:
            assert process.poll() is None, (home / "gateway.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, 60, interval=0.1, message="the gateway to start")
        running = Gateway(process, port)
        # Warm up what a first request loads (JSON and multipart parsing), so it is not counted as growth.
        httpx.post(f"{running.url}/media/delete", json={"media_ids": [1]}, headers=SIGNED_IN, timeout=30)
        httpx.post(f"{running.url}/uploads", content=multipart(part("folder", b"x")), headers={**MULTIPART, **SIGNED_IN},
                   timeout=30)
        yield running
    finally:
        process.terminate()
        process.wait(timeout=30)


class Counted:
    """A body of ``total`` bytes made of ``piece`` repeated, streamed from a generator (so sent chunked);
    ``sent`` counts what the client managed to hand over before the server answered."""

    def __init__(self, total: int, piece: bytes = b"x" * (256 * 1024), head: bytes = b""):
        self.total, self.piece, self.head, self.sent = total, piece, head, 0

    def __repr__(self) -> str:
        return f"{self.sent / MB:.1f} MB of {self.total / MB:.0f} MB sent"

    def __iter__(self) -> Iterator[bytes]:
        if self.head:
            self.sent += len(self.head)
            yield self.head
        while self.sent < self.total:
            self.sent += len(self.piece)
            yield self.piece


def request_head(path: str, headers: dict[str, str], method: str = "POST") -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in {"Host": "127.0.0.1", **SIGNED_IN, **headers}.items())
    return f"{method} {path} HTTP/1.1\r\n{lines}\r\n".encode()


def raw_request(port: int, *pieces: bytes | Iterable[bytes]) -> tuple[int, dict]:
    """Send raw bytes (a request, or only the start of one), then read the answer: (status, its JSON)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        try:
            for piece in pieces:
                for data in [piece] if isinstance(piece, bytes) else piece:
                    sock.sendall(data)
        except OSError:
            pass  # the server may answer and close before it took all of it
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    status_line, _, rest = received.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(body)


def test_a_4gb_json_body_is_413_with_flat_memory_chunked_or_declared(gateway):
    body = Counted(4 * 1024**3)
    reply, growth = gateway.grows(lambda: httpx.post(f"{gateway.url}/media/delete", content=body, timeout=120,
                                                     headers={"Content-Type": "application/json", **SIGNED_IN}))
    assert_413(reply, "MEDIASEARCH_MAX_JSON_BYTES")
    print(body)
    assert growth["VmHWM"] < MAX_GROWTH and body.sent < 256 * MB, (growth, body)

    declared = {"Content-Type": "application/json", "Content-Length": str(4 * 1024**3)}
    start = request_head("/media/delete", declared) + b'{"media_idz": ['
    (status, answer), growth = gateway.grows(lambda: raw_request(gateway.port, start, b"1," * (4 * MB)))
    assert status == 413 and "MEDIASEARCH_MAX_JSON_BYTES" in answer["detail"], answer
    assert growth["VmHWM"] < MAX_GROWTH, growth


def test_a_strangers_4gb_body_is_401_before_a_byte_of_it_is_read(gateway):
    body = Counted(4 * 1024**3)
    reply, growth = gateway.grows(lambda: httpx.post(f"{gateway.url}/media/delete", content=body, timeout=120,
                                                     headers={"Content-Type": "application/json"}))
    assert reply.status_code == 401 and "sign in" in reply.json()["detail"], reply.text
    print(body)
    assert growth["VmHWM"] < MAX_GROWTH and body.sent < 64 * MB, (growth, body)
    malformed = httpx.post(f"{gateway.url}/media/delete", content=b"{not json", timeout=30,
                           headers={"Content-Type": "application/json", "X-API-Key": "wrong"})
    assert malformed.status_code == 401, malformed.text  # who asks is settled before the body is parsed


def test_a_million_tiny_form_fields_are_413_with_flat_memory(gateway):
    fields = b"".join(part(f"f{n:07d}", b"x") for n in range(10_000))  # 10,000 fields a piece
    body = Counted(100 * len(fields), piece=fields)
    reply, growth = gateway.grows(lambda: httpx.post(f"{gateway.url}/uploads", content=body,
                                                     headers={**MULTIPART, **SIGNED_IN}, timeout=120))
    assert_413(reply, "too many form fields")
    print(body)
    assert growth["VmHWM"] < MAX_GROWTH and body.sent < body.total, (growth, body)


def test_an_image_query_over_its_cap_is_413_before_it_is_spooled(gateway):
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="q.jpg"\r\n\r\n'.encode()
    body = Counted(256 * MB, head=head)
    reply, growth = gateway.grows(lambda: httpx.post(f"{gateway.url}/search/image", content=body,
                                                     headers={**MULTIPART, **SIGNED_IN}, timeout=120))
    assert_413(reply, f"the query image is larger than the limit of {MB} bytes")
    # The gateway read little more than the cap: what the client got rid of is at most that and the
    # sockets' buffers, far from the whole body.
    print(body)
    assert growth["VmHWM"] < MAX_GROWTH and body.sent < 64 * MB, (growth, body)

    declared = {**MULTIPART, "Content-Length": str(256 * MB)}
    status, answer = raw_request(gateway.port, request_head("/search/image", declared), head)
    assert status == 413 and "MEDIASEARCH_MAX_QUERY_IMAGE_BYTES" in answer["detail"], answer


def test_endless_request_headers_are_431_with_flat_memory(gateway):
    def endless_header() -> Iterator[bytes]:  # one header line of 1 GB, never finished
        yield b"X-Endless: "
        for _ in range(4096):
            yield b"a" * (256 * 1024)

    start = b"POST /media/delete HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    (status, answer), growth = gateway.grows(lambda: raw_request(gateway.port, start, endless_header()))
    assert status == 431 and "headers are larger than the limit" in answer["detail"], answer
    assert growth["VmHWM"] < MAX_GROWTH, growth
    many = request_head("/media/delete", {f"X-Header-{n}": "y" for n in range(20_000)})  # many short ones
    status, answer = raw_request(gateway.port, many)
    assert status == 431, answer
    assert httpx.get(f"{gateway.url}/health", headers={"X-Fine": "y" * 8000}, timeout=30).status_code == 200
