"""Deleting a media item while the same bytes are uploaded again never loses the new copy. Stored files are
named by their content, so the deleted item's files and the new copy's are the same files. The delete's
steps (services/gateway/media.py: catalog rows, then index rows, then files) and the worker's are put in
each order that used to lose the copy, step by step: no threads, no sleeps."""

from __future__ import annotations

import httpx
import pytest

from services.gateway.media import remove_files
from services.ingest_worker import pipeline
from services.ingest_worker.pipeline import (
    MATCH_DELETED,
    IngestContext,
    TransientFault,
    ingest_item,
    wait_for_retry,
)
from shared import catalog
from shared.media_store import MediaStore
from shared.settings import Settings
from tests.conftest import free_port
from tests.samples import PHOTOS
from tests.stand_ins import StandInEmbedder

PHOTO = (PHOTOS / "n01440764_tench.JPEG").read_bytes()


@pytest.fixture
def ctx(tmp_path) -> IngestContext:
    settings = Settings(data_dir=tmp_path / "data", disk_reserve_bytes=0, index_urls=[f"http://127.0.0.1:{free_port()}"])
    context = IngestContext(settings, catalog.connect(settings.catalog_path), MediaStore(settings.data_path),
                            StandInEmbedder(), httpx.Client(timeout=1))
    yield context
    context.close()


def upload(ctx: IngestContext, name: str) -> int:
    """An uploaded file's item, its bytes waiting in the uploads folder as the gateway leaves them."""
    job_id = catalog.new_job_id()
    folder = ctx.settings.uploads_dir / job_id
    folder.mkdir(parents=True)
    (folder / "0").write_bytes(PHOTO)
    return catalog.create_job(ctx.conn, "upload", "", [(name, f"uploads/{job_id}/0")], job_id=job_id)[1][0]


def indexed(ctx: IngestContext, name: str) -> int:
    outcome = ingest_item(upload(ctx, name), ctx)
    assert outcome.status == "indexed"
    return outcome.media_id


def delete_rows(ctx: IngestContext, media_id: int) -> catalog.DeletedMedia:
    """The delete's first step: its catalog rows (the gateway's remove_from_catalog)."""
    return catalog.delete_media(ctx.conn, media_id)


def assert_stored_whole(ctx: IngestContext, item_id: int) -> None:
    """The item is indexed, and its media and every file of it are there."""
    item = catalog.get_item(ctx.conn, item_id)
    assert item["status"] == "indexed"
    media = catalog.get_media(ctx.conn, item["media_id"])
    assert media is not None and media["status"] == "indexed"
    assert ctx.store.resolve(media["path"]).read_bytes() == PHOTO
    frames = catalog.frames_of_media(ctx.conn, media["id"])
    assert frames and all(ctx.store.resolve(path).is_file() for frame in frames
                          for path in (frame["path"], frame["thumb_path"]))


def run_like_the_worker(ctx: IngestContext, item_id: int) -> TransientFault:
    with pytest.raises(TransientFault) as caught:
        ingest_item(item_id, ctx)
    wait_for_retry(item_id, ctx, str(caught.value))  # as celery_app does, before the retry
    return caught.value


def test_the_delete_removing_files_after_the_same_bytes_were_stored_again_leaves_them(ctx):
    old = indexed(ctx, "beach.jpg")
    deleted = delete_rows(ctx, old)
    again = upload(ctx, "beach-again.jpg")
    assert ingest_item(again, ctx).status == "indexed"  # a new media item, with the very same file names
    remove_files(ctx.conn, ctx.store, [deleted])  # the delete's last step comes after
    assert_stored_whole(ctx, again)


def test_the_delete_removing_files_while_the_same_bytes_are_decoded_has_them_decoded_again(ctx, monkeypatch):
    old = indexed(ctx, "beach.jpg")
    deleted = delete_rows(ctx, old)
    again = upload(ctx, "beach-again.jpg")
    decode = pipeline.run_isolated

    def decoded_then_removed(function, args, time_limit):
        staged = decode(function, args, time_limit)
        remove_files(ctx.conn, ctx.store, [deleted])  # before the worker records what it staged
        return staged

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "run_isolated", decoded_then_removed)
        fault = run_like_the_worker(ctx, again)
    assert "being deleted" in str(fault)
    assert catalog.media_by_sha(ctx.conn, deleted.sha256) is None  # nothing recorded that names missing files
    ingest_item(again, ctx)  # its retry
    assert_stored_whole(ctx, again)


def test_a_match_with_stored_media_deleted_before_the_verdict_is_stored_anew(ctx, monkeypatch):
    old = indexed(ctx, "beach.jpg")
    again = upload(ctx, "beach-again.jpg")
    find = catalog.media_by_sha

    def found_then_deleted(conn, sha256):
        found = find(conn, sha256)
        if found is not None:  # the whole delete lands between the match and the item's verdict
            remove_files(conn, ctx.store, [delete_rows(ctx, found["id"])])
        return found

    with monkeypatch.context() as patch:
        patch.setattr(catalog, "media_by_sha", found_then_deleted)
        fault = run_like_the_worker(ctx, again)
    assert str(fault) == MATCH_DELETED
    assert ctx.store.resolve(catalog.get_item(ctx.conn, again)["stored_path"]).read_bytes() == PHOTO  # kept
    ingest_item(again, ctx)  # its retry
    assert_stored_whole(ctx, again)
    assert catalog.get_item(ctx.conn, again)["media_id"] != old


def test_a_match_that_outlives_the_verdict_is_a_duplicate_as_before(ctx):
    old = indexed(ctx, "beach.jpg")
    outcome = ingest_item(upload(ctx, "beach-again.jpg"), ctx)
    assert (outcome.status, outcome.media_id) == ("duplicate", old)
