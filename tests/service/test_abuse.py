"""Hostile input and access control, against the gateway app in-process (a real Redis, a real SQLite
catalog, real files) and the ingest pipeline called directly for the files that get through.

Every test here runs under ``outside_untouched``: the folder around the data volume (the data dir's
parent, holding a canary folder and the ingest root) is listed before and after, and must not change.
"""

from __future__ import annotations

import hmac
import io
import re
import zipfile
import zlib
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from services.gateway import ratelimit
from services.gateway.app import create_app
from services.ingest_worker.pipeline import IngestContext, ingest_item
from shared import catalog
from shared.settings import Settings
from tests.samples import PHOTOS, bomb_png
from tests.service.conftest import TEST_API_KEY, settings_for

REPO = Path(__file__).resolve().parents[2]
PHOTO = PHOTOS / "n01440764_tench.JPEG"
BOUNDARY = "abuse-7d41a9"
ARCHIVE_REASON = "an archive or compressed file: archives are not expanded; upload the files in it"


def tree(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` but inside ``skip``, with its size and modification time."""
    listing = {}
    for path in root.rglob("*"):
        if not path.is_relative_to(skip):
            info = path.lstat()
            listing[str(path.relative_to(root))] = (info.st_size if path.is_file() else 0, info.st_mtime_ns)
    return listing


@pytest.fixture(autouse=True)
def outside_untouched(tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret.txt").write_text("must not be read, moved or overwritten")
    (tmp_path / "root").mkdir()
    before = tree(tmp_path, skip=tmp_path / "data")
    yield canary
    assert tree(tmp_path, skip=tmp_path / "data") == before


def multipart(parts: list[tuple[bytes, bytes | None, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A multipart body from raw ``(field, file name or None, content)`` parts: names go out byte for byte,
    as a hostile client would send them (an HTTP library would escape or refuse some)."""
    body = b""
    for field, filename, content in parts:
        disposition = b'form-data; name="' + field + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        body += f"--{BOUNDARY}\r\n".encode() + b"Content-Disposition: " + disposition + b"\r\n\r\n" + content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def job_items(client: TestClient, job_id: str) -> list[tuple[str, str, str | None, str]]:
    conn = catalog.connect(client.app.state.gateway.settings.catalog_path)
    return [tuple(row) for row in conn.execute(
        "SELECT file, status, reason, stored_path FROM job_items WHERE job_id=? ORDER BY id", (job_id,))]


def assert_readable_4xx(reply, status: int | None = None) -> None:
    assert 400 <= reply.status_code < 500 and (status is None or reply.status_code == status), reply.text
    detail = reply.json()["detail"]
    assert isinstance(detail, str) and detail and "Traceback" not in detail


# -- uploads: names, limits, contents ----------------------------------------------------------------------
def test_hostile_file_names_are_recorded_or_refused_never_used_as_paths(client, tmp_path):
    absolute = str(tmp_path / "canary" / "absolute.jpg").encode()
    names = [
        (b"../../canary/pwned.jpg", "failed", "climbs out of its folder"),
        (absolute, "queued", None),  # recorded as a relative name; the bytes go to the job folder
        (b"a\x00b.jpg", "failed", "NUL byte"),
        (b"x" * 1500 + b".jpg", "failed", "too long"),
        (b"..\\..\\canary\\windows.jpg", "failed", "climbs out of its folder"),
        (b"C:\\Windows\\evil.jpg", "queued", None),
        (b"trip/%2e%2e/%2e%2e/encoded.jpg", "queued", None),  # not decoded: just a strange name
        (b"", "failed", "empty file name"),
    ]
    body, headers = multipart([(b"files", name, b"payload %d" % n) for n, (name, _, _) in enumerate(names)])
    reply = client.post("/uploads", content=body, headers=headers)
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["job_id"]
    items = job_items(client, job_id)
    for (name, status, reason), (recorded, found_status, found_reason, stored) in zip(names, items, strict=True):
        assert found_status == status, (name, found_reason)
        if reason:
            assert reason in found_reason and stored == ""
        else:
            assert stored.startswith(f"uploads/{job_id}/") and not recorded.startswith("/")
    uploads = client.app.state.gateway.settings.uploads_dir / job_id
    assert sorted(p.name for p in uploads.iterdir()) == ["1", "5", "6"]  # by position, whatever the name
    assert (uploads / "1").read_bytes() == b"payload 1"


@pytest.mark.parametrize("limits, parts, message", [
    ({"max_upload_files": 3}, [(b"files", b"%d.jpg" % n, b"x") for n in range(4)], "too many files"),
    ({"max_file_bytes": 1000}, [(b"files", b"big.jpg", b"x" * 1001)], "larger than the limit of 1000 bytes per file"),
    ({"max_upload_bytes": 5000}, [(b"files", b"%d.jpg" % n, b"x" * 2000) for n in range(3)], "upload is larger"),
    ({}, [(b"files", b"a.jpg", b"x"), (b"folder", None, b"../../canary")], "bad folder name"),
    ({}, [(b"evil", b"a.jpg", b"x")], "send files as 'files'"),
    ({}, [(b"files", b"a.jpg", b"x"), (b"folder", None, b"a"), (b"folder", None, b"b")], "sent more than once"),
])
def test_upload_limits_and_bad_fields_are_4xx_and_leave_no_files(make_client, limits, parts, message):
    client = make_client(**limits)
    body, headers = multipart(parts)
    reply = client.post("/uploads", content=body, headers=headers)
    assert_readable_4xx(reply)
    assert message in reply.json()["detail"]
    uploads = client.app.state.gateway.settings.uploads_dir
    assert not uploads.exists() or not any(uploads.iterdir())


def test_malformed_multipart_bodies_are_4xx(client):
    for content, content_type in [
        (b"--abuse\r\nno headers at all", "multipart/form-data; boundary=abuse"),
        (multipart([(b"files", b"a.jpg", b"x" * 100)])[0][:60], f"multipart/form-data; boundary={BOUNDARY}"),
        (b"\x00" * 100, f"multipart/form-data; boundary={BOUNDARY}"),
        (multipart([(b"files", b"x" * 20_000, b"x")])[0], f"multipart/form-data; boundary={BOUNDARY}"),  # header
        (b"files=a", "multipart/form-data"),  # no boundary
        (b"files=a", "application/x-www-form-urlencoded"),
    ]:
        assert_readable_4xx(client.post("/uploads", content=content, headers={"Content-Type": content_type}))


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def test_archives_and_bombs_fail_as_items_with_a_reason_and_are_never_expanded(client):
    photo = PHOTO.read_bytes()
    files = {
        "photos.zip": zipped({"a.jpg": photo}),
        "slip.zip": zipped({"../../canary/slipped.jpg": photo, "/tmp/absolute-slip.jpg": photo}),
        "photo.jpg.gz": zlib.compress(photo, wbits=31),  # gzip
        "bomb.png": bomb_png(100_000, 100_000),
        "wide.png": bomb_png(2**31 - 1, 1),
    }
    reply = client.post("/uploads", files=[("files", (name, data)) for name, data in files.items()])
    assert reply.status_code == 202, reply.text
    settings: Settings = client.app.state.gateway.settings
    context = IngestContext.open(settings)  # no embedder: none of these files may get that far
    try:
        items = context.conn.execute("SELECT id, file FROM job_items WHERE job_id=?", (reply.json()["job_id"],))
        outcomes = {file: ingest_item(item_id, context) for item_id, file in items.fetchall()}
    finally:
        context.close()
    reasons = {name: (outcome.status, outcome.reason) for name, outcome in outcomes.items()}
    for name in ("photos.zip", "slip.zip", "photo.jpg.gz"):
        assert reasons[name] == ("failed", ARCHIVE_REASON)
    for name in ("bomb.png", "wide.png"):
        assert reasons[name][0] == "failed" and reasons[name][1].startswith("image too large: it declares")
    assert catalog.counts(catalog.connect(settings.catalog_path)) == {"media": 0, "frames": 0}
    assert not Path("/tmp/absolute-slip.jpg").exists()
    # Failed uploads are removed; nothing was unpacked into the data volume either (the catalog and the
    # secrets, the setup token among them, aside).
    assert not any(path.is_file() for path in settings.data_path.rglob("*")
                   if "catalog" not in path.name and path.parent.name != "secrets")


# -- requests: malformed bodies, query strings and numbers out of range --------------------------------------
HUGE = str(10**30)


@pytest.mark.parametrize("method, url, body", [
    ("POST", "/ingest", b"{not json"),
    ("POST", "/ingest", b"[]"),
    ("POST", "/ingest", b'{"path": 5}'),
    ("POST", "/ingest", b'{"path": "' + b"a" * 5000 + b'"}'),
    ("POST", "/ingest", b'{"path": "/\\u0000"}'),
    ("POST", "/ingest", b"\xff\xfe"),
    ("POST", "/media/delete", b'{"media_ids": "all"}'),
    ("POST", "/media/delete", b'{"media_ids": [' + HUGE.encode() + b"]}"),
    ("POST", "/collections", b'{"name": null}'),
    ("PATCH", "/collections/1", b"{"),
    ("GET", "/search?q=dog&ef=0", None),
    ("GET", f"/search?q=dog&ef={HUGE}", None),
    ("GET", "/search?q=dog&ef=wide", None),
    ("GET", "/search?q=dog&offset=-1", None),
    ("GET", f"/search?q=dog&offset={HUGE}", None),
    ("GET", "/search?q=dog&k=-5", None),
    ("GET", "/search?q=dog&min_similarity=nan", None),
    ("GET", f"/search?q=dog&collection={HUGE}", None),
    ("GET", "/search?q=dog&created_after=99999-99-99", None),
    ("GET", f"/search/similar/{HUGE}", None),
    ("GET", "/search/similar/1e3", None),
    ("GET", f"/frame/{HUGE}", None),
    ("GET", "/frame/..%2F..%2Fcanary%2Fsecret.txt", None),
    ("GET", f"/media/{HUGE}/original", None),
    ("DELETE", f"/media/{HUGE}", None),
    ("GET", f"/clusters/{HUGE}", None),
    ("GET", "/jobs?limit=0", None),
    ("GET", f"/jobs?limit={HUGE}", None),
    ("GET", "/jobs/..%2F..%2Fcanary", None),
])
def test_malformed_requests_get_a_readable_4xx(client, method, url, body):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    assert_readable_4xx(client.request(method, url, content=body, headers=headers))


# -- access: API key, rate limits, CORS, headers, exposure ----------------------------------------------------
# The routes a stranger may call: how one becomes a user. Each refuses (401) without the right token or password.
ANONYMOUS = {("GET", "/health"), ("GET", "/auth/setup"), ("POST", "/auth/setup"), ("POST", "/auth/sign-in"),
             ("POST", "/auth/invitations/accept")}
WRONG_CREDENTIALS = {"token": "not-the-token", "username": "someone", "password": "not the password"}


def test_a_stranger_gets_401_from_every_route_but_health_and_the_ui_and_keys_are_compared_in_constant_time(
        make_client, monkeypatch):
    client = make_client(signed_in=False, api_key="correct horse battery staple")
    compared = []
    real_compare = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append(len(a)) or real_compare(a, b))
    assert client.get("/openapi.json").status_code == 401  # the docs page is public, the API document is not
    paths = client.get("/openapi.json", headers={"X-API-Key": "correct horse battery staple"}).json()["paths"]
    routes = [(method.upper(), re.sub(r"\{[^}]+\}", "1", path)) for path, operations in paths.items()
              for method in operations]
    assert len(routes) > 30 and ANONYMOUS <= set(routes)
    assert client.get("/").status_code == 200 and client.get("/app.js").status_code == 200  # the UI's files
    assert client.get("/health").json() == {"status": "ok"}  # up; nothing more for a stranger
    assert client.get("/auth/setup").json() == {"needed": True}
    for method, path in routes:
        if (method, path) in ANONYMOUS:
            if method == "POST":
                reply = client.post(path, json=WRONG_CREDENTIALS)
                assert reply.status_code == 401, (path, reply.text)
            continue
        for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": "correct horse battery stapl"},
                        {"Authorization": "Bearer wrong"}, {"Cookie": "mediasearch_session=made-up"}):
            reply = client.request(method, path, headers=headers, content=b"{not even json")
            assert reply.status_code == 401, (method, path, headers, reply.text)
            assert "X-API-Key" in reply.json()["detail"] or "wrong or was revoked" in reply.json()["detail"]
        allowed = client.request(method, path, headers={"X-API-Key": "correct horse battery staple"})
        assert allowed.status_code != 401, (method, path)
        allowed = client.request(method, path, headers={"Authorization": "Bearer correct horse battery staple"})
        assert allowed.status_code != 401, (method, path)
    assert compared  # every wrong key above went through hmac.compare_digest


def test_search_and_uploads_are_rate_limited_per_client_with_retry_after(tmp_path, redis_url):
    app = create_app(settings_for(tmp_path, redis_url, rate_limit_search_per_min=3, rate_limit_upload_per_min=2))
    signed_in = {"X-API-Key": TEST_API_KEY}
    with (TestClient(app, client=("192.0.2.1", 4000), headers=signed_in) as first,
          TestClient(app, client=("192.0.2.2", 4000), headers=signed_in) as second):
        allowed = [first.get("/search", params={"q": "dog"}).status_code for _ in range(3)]
        assert allowed == [503] * 3  # let through (to an embedder that is down)
        limited = first.get("/search", params={"q": "dog"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "too many search requests: at most 3 a minute per client" in limited.json()["detail"]
        assert first.get("/search/similar/1").status_code == 429  # every search route shares the bucket
        assert second.get("/search", params={"q": "dog"}).status_code == 503  # another client, its own bucket
        assert first.get("/health").status_code == 200 and first.get("/jobs").status_code == 200
        assert first.post("/uploads", files=[("files", ("a.jpg", b"1"))]).status_code == 202
        assert first.post("/ingest", json={"path": str(tmp_path / "root")}).status_code == 400  # empty folder
        refused = first.post("/uploads", files=[("files", ("b.jpg", b"2"))])
        assert refused.status_code == 429 and "too many upload requests" in refused.json()["detail"]


def test_token_buckets_refill_at_the_set_pace_and_forget_idle_clients(monkeypatch):
    now = [0.0]
    buckets = ratelimit.TokenBuckets(60, clock=lambda: now[0])  # one a second, bursts of 60
    assert [buckets.take("a") for _ in range(60)] == [0.0] * 60
    assert buckets.take("a") == pytest.approx(1.0)
    now[0] += 0.5
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.take("a") == 0.0
    monkeypatch.setattr(ratelimit, "MAX_CLIENTS", 100)
    for n in range(250):
        buckets.take(f"client-{n}")
    assert len(buckets.buckets) <= 100


def test_cors_is_closed_by_default_and_open_only_to_configured_origins(client, make_client):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "X-API-Key"}
    closed = client.options("/uploads", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in closed.headers
    assert "access-control-allow-origin" not in client.get("/jobs", headers={"Origin": "https://evil.example"}).headers
    opened = make_client(cors_origins=["https://photos.example"])
    assert opened.options("/uploads", headers={"Origin": "https://photos.example", **preflight}).headers[
        "access-control-allow-origin"] == "https://photos.example"
    assert "access-control-allow-origin" not in opened.options(
        "/uploads", headers={"Origin": "https://evil.example", **preflight}).headers


def test_the_ui_is_served_with_security_headers(client):
    for path in ("/", "/app.js", "/styles.css", "/no-such-file.js"):
        reply = client.get(path)
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["referrer-policy"] == "no-referrer"
        csp = reply.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert client.get("/").headers["content-type"].startswith("text/html")


def test_internal_services_are_not_reachable_from_outside():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    published = {name for name, service in compose["services"].items() if service.get("ports")}
    assert published == {"gateway"}
    assert not any(service.get("network_mode") == "host" for service in compose["services"].values())
    hosts = [Settings.model_fields[f"{name}_host"].default for name in ("gateway", "embedder", "index")]
    assert hosts == ["127.0.0.1"] * 3  # natively every service listens on loopback only
