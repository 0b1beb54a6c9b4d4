"""Every setting of every service, read from environment variables prefixed ``MEDIASEARCH_``.

One object for the whole product so that the gateway, the workers, the embedder and the index agree
on paths and addresses. Lists are given as JSON (``MEDIASEARCH_INDEX_URLS='["http://a:8002"]'``)
or comma separated (``MEDIASEARCH_INGEST_ROOTS=/photos,/videos``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
# What int8 promises: every photo's and every text's vector has at least this cosine with its fp32 vector.
INT8_MIN_COSINE = 0.99


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIASEARCH_", env_file=".env", extra="ignore")

    # Storage: everything the product keeps lives under this one folder (the "data volume").
    data_dir: Path = Path("./data")

    # Model
    clip_model: str = DEFAULT_CLIP_MODEL
    clip_random_weights: bool = False
    # Fetch MEDIASEARCH_CLIP_MODEL into the model cache (HF_HOME) on first start when it names a hub repository
    # the cache lacks (services/embedder/download.py); HF_HUB_OFFLINE=1 forbids it too.
    model_download: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int = 0  # 0: one per physical core
    embed_max_batch: int = Field(32, ge=1, le=1024)
    embed_max_wait_ms: float = Field(5.0, ge=0, le=1000)
    text_cache_size: int = Field(1024, ge=0)
    # CPU only: dynamic int8 quantisation of the Linear layers, both towers by default (clip_int8: ingest keeps
    # up with the raw fp32 model, make bench-ingest), or the text tower alone (clip_text_int8, which a search
    # waits on: about 3x faster) when images stay fp32. Every photo's and text's vector agrees with fp32 to
    # cosine >= INT8_MIN_COSINE (0.99): tests/service/test_embedder.py asserts it on a tiny CLIP,
    # bench/bench_embedder.py on ViT-B/32 with random weights (1,000 texts). GPUs run fp16 instead.
    clip_int8: bool = True
    clip_text_int8: bool = True
    # CPU only: the text tower on ONNX Runtime (exported once into the model cache; 1.3-1.9x torch's int8 for
    # one query and closer to fp32, make bench-embedder) or on torch.
    clip_text_runtime: Literal["onnxruntime", "torch"] = "onnxruntime"

    # Network
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    embedder_host: str = "127.0.0.1"
    embedder_port: int = 8001
    embedder_url: str = "http://127.0.0.1:8001"  # unset: follows embedder_port on this machine
    index_host: str = "127.0.0.1"
    index_port: int = 8002
    index_urls: Annotated[list[str], NoDecode] = ["http://127.0.0.1:8002"]
    redis_url: str | None = None  # unset: `make run` starts its own Redis on redis_port
    redis_port: int = 6379
    # Accounts (shared/accounts.py): nothing but /health and the web UI's files answers without signing in.
    # api_key: a static key (header X-API-Key or Authorization: Bearer) for automation, acting as the owner.
    api_key: SecretStr | None = None
    session_max_age_days: float = Field(30.0, gt=0, le=3650)
    # Host names the gateway answers to, besides IP addresses, localhost and this machine's own names
    # (services/gateway/hosts.py; against DNS rebinding). ".example.com" takes every subdomain; "*" any name.
    allowed_hosts: Annotated[list[str], NoDecode] = []
    # Reverse proxies (addresses or networks, e.g. 172.18.0.0/16) whose X-Forwarded-Proto and X-Forwarded-For
    # are believed: the session cookie is Secure behind TLS, and the limits see the real client address.
    trusted_proxies: Annotated[list[str], NoDecode] = []

    # Internal authentication. The embedder and the index answer only callers presenting the internal
    # secret (header X-Internal-Secret; shared/internal_auth.py): this one when set, else the one in
    # <data_dir>/secrets/internal.key, made (mode 0600) by the first process to need it. Redis's password:
    # `make run` generates one (<data_dir>/secrets/redis.password) when it starts Redis itself; compose
    # takes it from .env (docker/init-env.sh writes it). effective_redis_url carries it.
    internal_secret: SecretStr | None = None
    redis_password: SecretStr | None = None

    cors_origins: Annotated[list[str], NoDecode] = []
    # Requests per minute per client IP (a token bucket holding one minute's worth); 0 turns it off.
    # Kept in the gateway's memory: right for one gateway process; behind a reverse proxy every
    # client has the proxy's address, so limit there instead.
    rate_limit_search_per_min: int = Field(600, ge=0)
    rate_limit_upload_per_min: int = Field(300, ge=0)  # POST /uploads and /ingest (the UI sends 500-file batches)

    # Index shard this process owns: rows with row % index_shard_count == index_shard_id.
    index_shard_id: int = Field(0, ge=0)
    index_shard_count: int = Field(1, ge=1)
    index_snapshot_seconds: float = Field(60.0, gt=0)
    index_m: int = Field(16, ge=4, le=128)  # HNSW links per node (2*M on layer 0)
    index_ef_construction: int = Field(200, ge=8, le=4096)
    index_ef_search: int = Field(64, ge=1, le=10_000)  # default search breadth; a request's ef overrides
    # Threads that insert a large batch of new rows together (a rebuild, a big upload): every core by default.
    index_insert_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)

    # Ingest
    # Files one ingest worker process handles at once (threads). Each file sends its frames to the embedder and
    # waits; the embedder batches what is waiting into one forward pass, so a batch is full only while at
    # least embed_max_batch frames wait: twice that keeps one batch collecting while the other runs.
    worker_concurrency: int = Field(64, ge=1, le=256)
    # Files one worker process decodes at once (their decoding children; a video's can hold hundreds of MB);
    # the other files in flight wait for a slot. 0: one per CPU core this process may run on.
    worker_decode_slots: int = Field(0, ge=0, le=256)
    ingest_roots: Annotated[list[Path], NoDecode] = []
    max_upload_bytes: int = 2 * 1024**3  # one request
    max_file_bytes: int = 1024**3  # one file inside it
    max_upload_files: int = 10_000
    max_image_pixels: int = 100_000_000
    frame_max_side: int = Field(512, ge=32, le=4096)
    thumb_max_side: int = Field(256, ge=16, le=1024)
    jpeg_quality: int = Field(88, ge=30, le=100)
    video_sample_fps: float = Field(1.0, gt=0, le=30)
    video_min_spacing_s: float = Field(0.4, ge=0)
    video_hist_threshold: float = Field(0.15, ge=0, le=1)
    video_max_frames: int = Field(600, ge=1)
    phash_max_distance: int = Field(6, ge=0, le=64)
    embed_batch_size: int = Field(16, ge=1, le=512)  # frames per request from a worker
    # Transient faults (embedder down or busy, database locked): retry with exponential backoff.
    ingest_max_retries: int = Field(10, ge=0)
    ingest_retry_base_s: float = Field(2.0, ge=0)
    ingest_retry_max_s: float = Field(120.0, ge=0)
    # A task taken by a worker that dies unacknowledged goes back to the queue after this long: the
    # backstop behind the heartbeat reaper (a file is claimed in the catalog, so it never runs twice at once).
    task_visibility_timeout: float = Field(600.0, gt=0)

    # Request and disk limits. Request bodies are counted as they stream in (services/gateway/body_limits.py):
    # POST /uploads up to max_upload_bytes, POST /search/image up to max_query_image_bytes (plus its form's
    # framing), every other body (JSON) up to max_json_bytes; beyond them 413. Uploads that would leave less
    # than disk_reserve_bytes free on the data volume are refused with 507; /health warns below twice that.
    max_json_bytes: int = Field(1024**2, ge=1024)
    max_query_image_bytes: int = Field(50 * 1024**2, ge=1024)
    disk_reserve_bytes: int = Field(1024**3, ge=0)

    # Poison files and recovery
    # A file whose processing dies this many times (its decoder crashes, is killed, e.g. by the OOM killer,
    # or runs past its time limit; or its whole worker dies) fails with a reason instead of coming back.
    ingest_max_attempts: int = Field(3, ge=1)
    # Each file is decoded in a decoder process (one file at a time), killed at a hard time limit of: base + per MB of
    # the file + per second of video (as its container declares it), at most max.
    ingest_time_limit_base_s: float = Field(60.0, gt=0)
    ingest_time_limit_per_mb_s: float = Field(2.0, ge=0)
    ingest_time_limit_per_video_s: float = Field(1.0, ge=0)
    ingest_time_limit_max_s: float = Field(4 * 3600.0, gt=0)
    # Every ingest worker refreshes a heartbeat key in Redis every worker_heartbeat_s; the key expires after
    # worker_heartbeat_ttl_s (at least twice the interval is used). A reaper in each worker (at its start,
    # then every reaper_interval_s, one worker at a time) sends again the tasks of the items held by
    # workers without a heartbeat.
    worker_heartbeat_s: float = Field(5.0, gt=0)
    worker_heartbeat_ttl_s: float = Field(20.0, gt=0)
    reaper_interval_s: float = Field(15.0, gt=0)
    # Modules adding decoders for more file types, comma separated; each defines DECODERS, a list of
    # services.ingest_worker.plugins.DecoderPlugin.
    decoder_plugins: str = ""

    # Libraries: server folders indexed in place (shared/libraries/). Scans skip NAS and OS clutter (@eaDir,
    # #recycle, .Trash*, .thumbnails, ._*, hidden files and folders, editors' sidecars); library_exclude adds
    # glob patterns, comma separated: a name ("*.tmp", "Private") or a path in the library ("2019/drafts").
    # The watcher (python -m services.watcher) follows changes with inotify and rescans every library this
    # often besides (network mounts, where inotify sees nothing).
    library_exclude: Annotated[list[str], NoDecode] = []
    library_rescan_minutes: float = Field(15.0, gt=0)

    # Search
    search_max_k: int = 1000

    # The words in pictures (services/ingest_worker/ocr.py, shared/text_match.py). Each worker reads the
    # text of every indexed photo and kept video frame in the background (one at a time, at a lower CPU
    # priority than ingest), at up to ocr_max_side pixels on the longest side; lines below ocr_min_confidence
    # are dropped. Search fuses CLIP's ranking with the text match (reciprocal rank fusion, the text list
    # weighted search_text_weight) when the query's words are found at text_match_min_quality or better.
    ocr: bool = True
    ocr_max_side: int = Field(2048, ge=256, le=8192)
    ocr_min_confidence: float = Field(0.5, ge=0, le=1)
    ocr_max_attempts: int = Field(3, ge=1)
    ocr_idle_poll_s: float = Field(2.0, gt=0)  # how often an idle reader looks for newly indexed media
    text_match_min_quality: float = Field(0.75, gt=0, le=1)
    search_text_weight: float = Field(2.0, ge=0)

    # Observability (shared/logs.py, shared/metrics.py). Logs: one line per event on stderr, "text" or
    # "json" (one JSON object a line: time, level, service, logger, message, request_id and job_id when
    # known). Metrics: Prometheus text at each service's /metrics; the gateway's (API key) covers them all.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object, info) -> object:  # LOG_FORMAT=JSON, LOG_LEVEL=debug
        if not isinstance(value, str):
            return value
        return value.strip().lower() if info.field_name == "log_format" else value.strip().upper()

    # Library organisation. Thresholds are cosine similarities between the model's vectors; unset, each is
    # the model family's (shared/model_families.py: calibration(settings)).
    cluster_threshold: float | None = Field(None, ge=-1, le=1)  # join an album / merge two albums at or above
    cluster_relabel_cosine: float | None = Field(None, ge=-1, le=1)  # relabel once the centroid moved below this
    # "visual duplicates" at or above (a pair list grows fast below)
    duplicate_visual_threshold: float | None = Field(None, ge=0.8, le=1)
    recluster_debounce_s: float = Field(10.0, ge=0)  # GET /clusters asks for re-clustering at most this often

    # Static web UI served by the gateway at "/"
    frontend_dir: Path = Path(__file__).resolve().parents[1] / "frontend"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], env_file: Path | str | None = ".env") -> Settings:
        """The settings a process started with the environment ``environ`` (in a working directory
        holding ``env_file``) reads, without reading or changing this process's environment. As in
        ``Settings()``, a variable wins over the same line in ``env_file``."""
        token = _ENVIRON.set(environ)
        try:
            return cls(_env_file=env_file)
        finally:
            _ENVIRON.reset(token)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' order (arguments, variables, .env, secrets); under ``from_env`` its mapping
        stands for the variables."""
        environ = _ENVIRON.get()
        if environ is not None:  # from_env: that mapping instead of os.environ
            env_settings = _EnvironSource(settings_cls, environ)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    @field_validator("index_urls", "cors_origins", "ingest_roots", "allowed_hosts", "trusted_proxies", "library_exclude",
                     mode="before")
    @classmethod
    def _lists_from_text(cls, value: object) -> object:
        return _split_commas(value)

    @model_validator(mode="after")
    def _embedder_url_follows_port(self) -> Settings:
        if "embedder_url" not in self.model_fields_set:
            self.embedder_url = f"http://127.0.0.1:{self.embedder_port}"
        return self

    @cached_property
    def data_path(self) -> Path:
        return self.data_dir.resolve()

    @property
    def catalog_path(self) -> Path:
        return self.data_path / "catalog.sqlite3"

    @property
    def media_dir(self) -> Path:
        return self.data_path / "media"

    @property
    def uploads_dir(self) -> Path:
        return self.data_path / "uploads"

    @property
    def vectors_dir(self) -> Path:
        return self.data_path / "vectors"

    @property
    def index_dir(self) -> Path:
        return self.data_path / "index" / f"shard-{self.index_shard_id}-of-{self.index_shard_count}"

    @property
    def effective_redis_url(self) -> str:
        """redis_url (or Redis on this machine's redis_port) with redis_password in it, unless the URL
        names its own credentials."""
        url = self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"
        password = self.redis_password.get_secret_value() if self.redis_password else ""
        scheme, _, rest = url.partition("://")
        if not password or scheme not in ("redis", "rediss") or "@" in rest.split("/", 1)[0]:
            return url
        return f"{scheme}://:{quote(password, safe='')}@{rest}"


_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("mediasearch_settings_environ", default=None)


class _EnvironSource(EnvSettingsSource):
    """The MEDIASEARCH_* variables of a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        super().__init__(settings_cls)
        self.env_vars = {name if self.case_sensitive else name.lower(): value for name, value in environ.items()}
