"""The shared internal secret and the settings that carry passwords, without any process."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.internal_auth import load_or_create_secret, secret_matches
from shared.settings import Settings


def test_the_first_of_many_makes_the_secret_and_all_read_it(tmp_path):
    path = tmp_path / "secrets" / "internal.key"
    with ThreadPoolExecutor(16) as pool:
        seen = set(pool.map(lambda _: load_or_create_secret(path), range(64)))
    assert len(seen) == 1 and len(seen.pop()) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["internal.key"]  # no temporary files left


def test_an_existing_secret_is_kept_and_made_private(tmp_path):
    path = tmp_path / "internal.key"
    path.write_text("chosen-by-the-operator\n")
    path.chmod(0o644)
    assert load_or_create_secret(path) == "chosen-by-the-operator"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        load_or_create_secret(path)


def test_secret_comparison():
    assert secret_matches("abc", "abc") and secret_matches(b"abc", "abc")
    assert not any(secret_matches(given, "abc") for given in (None, "", "abd", "abcd", b"ab"))


def redis_url(**variables: str) -> str:
    """effective_redis_url of the settings of just these MEDIASEARCH_* variables (no .env)."""
    return Settings.from_env({f"MEDIASEARCH_{k.upper()}": v for k, v in variables.items()}, None).effective_redis_url


def test_the_redis_url_carries_the_password():
    assert redis_url(redis_port="7000") == "redis://127.0.0.1:7000/0"
    assert redis_url(redis_port="7000", redis_password="") == "redis://127.0.0.1:7000/0"
    assert redis_url(redis_port="7000", redis_password="p/w@x") == "redis://:p%2Fw%40x@127.0.0.1:7000/0"
    assert redis_url(redis_url="redis://redis:6379/0", redis_password="pw") == "redis://:pw@redis:6379/0"
    # A URL with its own credentials is taken as it is.
    own = "redis://user:theirs@redis:6379/0"
    assert redis_url(redis_url=own, redis_password="pw") == own
