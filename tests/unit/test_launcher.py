"""The native launcher (tools/stack.py) and the settings it reads, without starting anything: every
service gets its whole environment explicitly, and the launcher's own environment is never touched."""

from __future__ import annotations

import os
import stat
import sys

from shared.settings import Settings
from tools.stack import REPO_ROOT, Stack


def test_settings_from_a_mapping_read_only_that_mapping(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDIASEARCH_GATEWAY_PORT", "1234")
    before = dict(os.environ)
    env_file = tmp_path / ".env"
    env_file.write_text("MEDIASEARCH_EMBEDDER_PORT=9001\nMEDIASEARCH_INDEX_PORT=9002\n")
    settings = Settings.from_env({"MEDIASEARCH_INDEX_PORT": "9102", "MEDIASEARCH_WORKER_CONCURRENCY": "5",
                                  "MEDIASEARCH_INGEST_ROOTS": "/a,/b"}, env_file=env_file)
    assert (settings.gateway_port, settings.embedder_port, settings.index_port) == (8000, 9001, 9102)
    assert settings.embedder_url == "http://127.0.0.1:9001"  # follows the port, as in Settings()
    assert settings.worker_concurrency == 5 and [str(p) for p in settings.ingest_roots] == ["/a", "/b"]
    assert dict(os.environ) == before
    assert Settings().gateway_port == 1234  # Settings() still reads this process's environment


def test_each_service_gets_its_settings_in_its_own_environment(tmp_path):
    before = dict(os.environ)
    stack = Stack(env={"MEDIASEARCH_DATA_DIR": str(tmp_path), "MEDIASEARCH_WORKER_CONCURRENCY": "3",
                       "MEDIASEARCH_INDEX_URLS": "http://127.0.0.1:9101,http://127.0.0.1:9102"}, workers=2)
    assert dict(os.environ) == before
    assert stack.settings.worker_concurrency == 3 and stack.settings.data_path == tmp_path.resolve()
    assert [s.name for s in stack.services if s.name != "redis"] == [  # redis: unless MEDIASEARCH_REDIS_URL is set
        "embedder", "index-0", "index-1", "worker-0", "worker-1", "watcher", "gateway"]
    shards = [stack.service(f"index-{n}") for n in range(2)]
    assert [s.argv for s in shards] == [[sys.executable, "-m", "services.index"]] * 2
    assert [(s.env["MEDIASEARCH_INDEX_SHARD_ID"], s.env["MEDIASEARCH_INDEX_SHARD_COUNT"],
             s.env["MEDIASEARCH_INDEX_PORT"]) for s in shards] == [("0", "2", "9101"), ("1", "2", "9102")]
    for service in stack.services:
        assert service.env["MEDIASEARCH_DATA_DIR"] == str(tmp_path)
        assert service.env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO_ROOT)
        if not service.name.startswith("index-"):
            assert "MEDIASEARCH_INDEX_SHARD_ID" not in service.env
    for worker in ("worker-0", "worker-1"):
        argv = stack.service(worker).argv
        assert argv[argv.index("--concurrency") + 1] == "3"


def test_a_relative_data_dir_is_the_one_in_the_repo_root_wherever_the_launcher_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stack = Stack(env={"MEDIASEARCH_DATA_DIR": "test-output/launcher-data",
                       "MEDIASEARCH_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert stack.settings.data_path == REPO_ROOT / "test-output" / "launcher-data"
    assert stack.service("gateway").env["MEDIASEARCH_DATA_DIR"] == str(REPO_ROOT / "test-output" / "launcher-data")
    assert "redis" not in [s.name for s in stack.services]  # an external Redis is not started


def test_the_launcher_makes_the_secrets_private_and_hands_out_only_what_each_needs(tmp_path):
    # Empty: whatever a developer's .env says, the launcher makes both.
    stack = Stack(env={"MEDIASEARCH_DATA_DIR": str(tmp_path), "MEDIASEARCH_REDIS_PASSWORD": "",
                       "MEDIASEARCH_INTERNAL_SECRET": ""})
    secrets = tmp_path / "secrets"
    key, password_file = secrets / "internal.key", secrets / "redis.password"
    assert {stat.S_IMODE(p.stat().st_mode) for p in (key, password_file)} == {0o600}
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    password, secret = password_file.read_text().strip(), key.read_text().strip()
    redis_server = stack.service("redis")
    assert password not in " ".join(redis_server.argv) and redis_server.stdin == f'requirepass "{password}"\n'
    argv = redis_server.argv
    assert argv[argv.index("--protected-mode") + 1] == "yes" and argv[-1] == "-"  # "-": config from stdin
    assert stack.settings.effective_redis_url == f"redis://:{password}@127.0.0.1:{stack.settings.redis_port}/0"
    for service in stack.services:
        assert service.env["MEDIASEARCH_REDIS_PASSWORD"] == password
        assert service.env.get("MEDIASEARCH_INTERNAL_SECRET", "") == ""  # each reads the key file itself
    # Health checks with the secret get the whole report (the reason a service is not ready).
    assert {s.name: s.health_headers for s in stack.services if s.health_headers} == {
        "embedder": {"X-Internal-Secret": secret}, "index-0": {"X-Internal-Secret": secret}}
    again = Stack(env={"MEDIASEARCH_DATA_DIR": str(tmp_path), "MEDIASEARCH_REDIS_PASSWORD": "",
                       "MEDIASEARCH_INTERNAL_SECRET": ""})
    assert again.settings.effective_redis_url == stack.settings.effective_redis_url  # kept across starts
