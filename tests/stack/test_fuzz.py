"""Property-based fuzzing of the public API from its own OpenAPI document (schemathesis over hypothesis),
against a private running stack, and path traversal attempts sent byte for byte.

For every operation schemathesis generates valid and invalid requests; every answer must be a non-5xx
whose status code, content type, headers and body are the ones the OpenAPI document declares. The run
is bounded (examples per operation) and derandomised, so it is the same run every time.
"""

from __future__ import annotations

import http.client
import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.gateway.app import create_app
from shared.schemas import SearchResponse
from shared.settings import Settings
from tests.conftest import PHOTOS, running_stack

# A bounded, repeatable run; FUZZ_SEED=<n> FUZZ_EXAMPLES=<n> explore further.
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("FUZZ_SEED", "20261121"))
SECRET = "fuzz canary: this file must never be served"


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory, tiny_clip_dir):
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "secret.txt").write_text(SECRET)  # beside the data dir
    with running_stack(tmp, tiny_clip_dir, "fuzz", MEDIASEARCH_API_KEY=API_KEY,
                     MEDIASEARCH_RATE_LIMIT_SEARCH_PER_MIN="0", MEDIASEARCH_RATE_LIMIT_UPLOAD_PER_MIN="0") as running:
        running.client.headers["X-API-Key"] = API_KEY
        photos = sorted(PHOTOS.glob("*.JPEG"))[300:303]
        job = running.wait_job(running.upload([(f"fuzz/{p.name}", p.read_bytes()) for p in photos]))
        assert job["indexed"] == len(photos)  # a few media, frames and a collection for the ids to hit
        running.tmp = tmp
        yield running


API_KEY = "fuzz-api-key-1d0e9"  # with a key set, requests without it must be refused: schemathesis tries that
# The document the running gateway serves at /openapi.json, built from the same code without starting it.
schema = schemathesis.openapi.from_dict(
    # (an app that is never started: its data dir and internal secret are never used)
    create_app(Settings(data_dir=Path("unused"), internal_secret="unused")).openapi(),
    config=schemathesis.Config.from_dict({"seed": SEED, "auth": {"openapi": {"APIKeyHeader": {"api_key": API_KEY}}}}))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_and_never_5xx(fuzz_stack, case):
    response = case.call(base_url=fuzz_stack.url, timeout=60)
    if response.status_code == 400 and response.content == UVICORN_MALFORMED:
        return  # not HTTP (a header such as "Content-Length: c:"): the server refuses it before the app sees it
    case.validate_response(response, checks=CHECKS)


UVICORN_MALFORMED = b"Invalid HTTP request received."


# -- search with any valid parameters: the generated cases above mostly name unknown collections --------------
SEARCH_PARAMETERS = st.fixed_dictionaries(
    {"q": st.text(min_size=1, max_size=200).filter(str.strip)},
    optional={"k": st.integers(1, 50), "offset": st.integers(0, 60), "ef": st.integers(1, 500),
              "min_similarity": st.floats(-1, 1), "type": st.sampled_from(["image", "video"]),
              "group": st.just("video"), "folder": st.sampled_from(["fuzz", "fuzz/", "elsewhere", "%", "_"])})


@given(params=SEARCH_PARAMETERS)
@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_any_valid_search_gives_a_ranked_page_of_at_most_k(fuzz_stack, params):
    reply = fuzz_stack.client.get("/search", params=params)
    assert reply.status_code == 200, reply.text
    page = SearchResponse.model_validate(reply.json())
    similarities = [result.similarity for result in page.results]
    assert len(page.results) <= params.get("k", 20) and similarities == sorted(similarities, reverse=True)
    assert all(-1.001 <= s <= 1.001 and s >= params.get("min_similarity", -2) for s in similarities)


@given(data=st.binary(max_size=4096))
@settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_any_bytes_as_a_query_image_give_a_result_or_a_readable_400(fuzz_stack, data):
    reply = fuzz_stack.client.post("/search/image", files={"file": ("query", data)})
    assert reply.status_code in (200, 400), reply.text
    assert reply.status_code == 200 or reply.json()["detail"]


# -- path traversal, sent without any client-side normalisation ----------------------------------------------
def raw_get(stack, target: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", stack.settings.gateway_port, timeout=30)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.endheaders()
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


@pytest.mark.parametrize("target", [
    "/../pyproject.toml", "/%2e%2e/pyproject.toml", "/..%2fpyproject.toml", "/%2e%2e%2fpyproject.toml",
    "/..%5cpyproject.toml", "/....//....//pyproject.toml", "/index.html/../../pyproject.toml",
    "/static/../../pyproject.toml", "//etc/passwd", "/..;/pyproject.toml", "/%252e%252e/pyproject.toml",
    "/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/frame/..%2f..%2fsecret.txt", "/media/1/..%2f..%2f..%2fsecret.txt", "/video/%2e%2e", "/thumb/1%00",
    "/media/1/original/../../../secret.txt", "/jobs/..%2f..%2fsecret.txt/events",
])
def test_path_traversal_never_reaches_a_file_outside_the_ui_and_media(fuzz_stack, target):
    status, body = raw_get(fuzz_stack, target)
    assert 400 <= status < 500, (target, status)
    assert b"[project]" not in body and b"root:" not in body and SECRET.encode() not in body


@pytest.mark.parametrize("path", ["{tmp}/../..", "{tmp}/secret.txt", "{tmp}/data/../secret.txt", "/proc/self",
                                  "/etc/../etc", "{data}/catalog.sqlite3", "{roots}/../../.."])
def test_folder_ingest_refuses_everything_outside_its_roots(fuzz_stack, path):
    roots = fuzz_stack.settings.ingest_roots[0]
    reply = fuzz_stack.client.post("/ingest", json={"path": path.format(
        tmp=fuzz_stack.tmp, data=fuzz_stack.settings.data_path, roots=roots)})
    assert reply.status_code in (400, 403), reply.text
    assert reply.json()["detail"]


def test_an_uploaded_name_that_climbs_out_fails_alone_and_writes_nothing_outside(fuzz_stack):
    before = sorted(p.name for p in fuzz_stack.tmp.iterdir())
    job = fuzz_stack.wait_job(fuzz_stack.upload([("../../secret.txt", b"overwritten?"),
                                                 ("../data/catalog.sqlite3", b"overwritten?"),
                                                 ("/etc/cron.d/evil", b"* * * * * root true")]))
    reasons = {error["file"]: error["reason"] for error in job["errors"]}
    assert "climbs out of its folder" in reasons["../../secret.txt"]
    assert "climbs out of its folder" in reasons["../data/catalog.sqlite3"]
    assert reasons["etc/cron.d/evil"].startswith("not an image or video")  # recorded relative, stored by number
    assert (fuzz_stack.tmp / "secret.txt").read_text() == SECRET
    assert sorted(p.name for p in fuzz_stack.tmp.iterdir()) == before
