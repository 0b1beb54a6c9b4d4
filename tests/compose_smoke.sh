#!/usr/bin/env bash
# Smoke test of the Docker deployment (`make compose-smoke`): builds the images, starts the whole compose
# stack with two ingest workers, creates the owner account with the setup token from the gateway's log
# (as README.md's first start says) and an API key, uploads photos and a video through the gateway, waits for the job,
# searches, fetches a frame, restarts the embedder, searches again, and always removes the stack. On the way
# it checks that Redis, the embedder and the index refuse callers without their password or secret.
#
# Here no registry is reachable: ../shared/tools/docker-sandbox/up.sh starts a Docker engine and builds
# stand-ins for the base images (where it is missing, the ambient `docker` is used). There are no
# weights either: the embedder runs the real CLIP config with random weights (development mode).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=$(cd "$REPO/../shared" && pwd)
DATA=$SHARED/data
TORCH_WHEELS=${TORCH_WHEELS:-/opt/wheels}  # where a local CPU torch wheel may be (saves its download)
START=$SECONDS

step() { printf '[compose-smoke %4ds] %s\n' $((SECONDS - START)) "$*" >&2; }
fail() { step "FAIL: $*"; exit 1; }

# Waits for a command to succeed, polling; the last failure's output is shown on timeout.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { "$@" || true; fail "$what: not within ${timeout}s"; }
    sleep 1
  done
}

command -v jq >/dev/null || fail "needs jq"
command -v curl >/dev/null || fail "needs curl"
cd "$REPO"

SANDBOX_UP=$SHARED/tools/docker-sandbox/up.sh
STARTED_ENGINE=
if [ -f "$SANDBOX_UP" ]; then
  sandbox=${DOCKER_SANDBOX:-/tmp/docker-sandbox}
  DOCKER_HOST="unix://$sandbox/docker.sock" DOCKER_CONFIG="$sandbox/cfg" docker info >/dev/null 2>&1 || STARTED_ENGINE=1
  step "docker sandbox up"
  # shellcheck source=/dev/null
  source "$SANDBOX_UP"  # exports DOCKER_HOST and DOCKER_CONFIG
fi

export COMPOSE_PROJECT_NAME=mediasearch-smoke  # never the user's "mediasearch" project and its volumes
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MEDIASEARCH_PUBLISH=127.0.0.1:$PORT
export MEDIASEARCH_MODELS_DIR=$SHARED/models  # the real config and tokenizer, no weights
export MEDIASEARCH_CLIP_MODEL=/models/clip-vit-base-patch32
export MEDIASEARCH_CLIP_RANDOM_WEIGHTS=1
export HF_HUB_OFFLINE=1
BASE=http://127.0.0.1:$PORT
WORK=$(mktemp -d)
# The first-run step of README.md: docker/init-env.sh writes a Redis password; here into a private file,
# never the user's .env, and exported (the environment wins over .env).
docker/init-env.sh "$WORK/env" >/dev/null
MEDIASEARCH_REDIS_PASSWORD=$(sed -n 's/^MEDIASEARCH_REDIS_PASSWORD=//p' "$WORK/env")
export MEDIASEARCH_REDIS_PASSWORD
# A photo folder of the user's, mounted read-only at /library (README: "Your photo folder as a library").
LIBRARY_PHOTOS=(n02123045_tabby n02504458_African_elephant n03792782_mountain_bike)
mkdir -p "$WORK/library/trip"
for name in "${LIBRARY_PHOTOS[@]}"; do cp "$DATA/photos/imagenet-sample/$name.JPEG" "$WORK/library/trip/"; done
chmod -R a+rX "$WORK"  # the services run as uid 10001
export MEDIASEARCH_LIBRARY_DIR=$WORK/library

cleanup() {
  local status=$?
  trap - EXIT
  if [ "$status" != 0 ]; then
    step "failed: state and recent logs of the stack"
    docker compose ps -a || true
    docker compose logs --no-color --tail 60 || true
  fi
  rm -rf "$WORK"
  step "docker compose down -v"
  docker compose down -v --remove-orphans >/dev/null 2>&1 || true
  if [ -n "$STARTED_ENGINE" ]; then
    "$SHARED/tools/docker-sandbox/down.sh" || true
  fi
  step "$([ "$status" = 0 ] && echo PASSED || echo FAILED) in $((SECONDS - START))s"
  exit "$status"
}
trap cleanup EXIT

for overrides in "" "-f docker-compose.gpu.yml"; do
  # shellcheck disable=SC2086
  docker compose -f docker-compose.yml $overrides config -q || fail "docker compose config: docker-compose.yml $overrides"
done

for wheel in "$TORCH_WHEELS"/torch-*+cpu-cp311-*.whl; do
  if [ -f "$wheel" ]; then cp -u "$wheel" docker/wheels/; fi
done

step "building the images"
build_start=$SECONDS
docker compose build
step "built in $((SECONDS - build_start))s: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' mediasearch)"

step "starting the stack (two ingest workers)"
up_start=$SECONDS
docker compose up -d --wait --wait-timeout 600 --scale ingest_worker=2
step "healthy in $((SECONDS - up_start))s"
docker compose ps

# Only the gateway publishes a port; the app containers run as a non-root user.
published=$(docker compose ps --format json | jq -rs 'flatten | map(select(any(.Publishers[]?; .PublishedPort > 0)) | .Service) | unique | join(" ")')
[ "$published" = gateway ] || fail "services publishing ports: '$published' (only the gateway may)"
[ "$(docker compose ps -q ingest_worker | wc -l)" = 2 ] || fail "expected two ingest_worker containers"
for service in gateway embedder index ingest_worker watcher; do
  [ "$(docker compose exec -T "$service" id -u)" != 0 ] || fail "$service runs as root"
done

step "internal services refuse callers without the password or the secret"
anonymous=$(docker compose exec -T redis env -u REDISCLI_AUTH redis-cli ping 2>&1 || true)
[[ $anonymous == *NOAUTH* ]] || fail "redis answers a client without its password: $anonymous"
[ "$(docker compose exec -T gateway stat -c %a /data/secrets/internal.key)" = 600 ] \
  || fail "/data/secrets/internal.key is not mode 0600"
docker compose exec -T gateway python - <<'PY' || fail "the embedder or the index answers without the internal secret"
import json
import urllib.error
import urllib.request


def call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


assert call("http://index:8002/delete", {"rows": [0]})[0] == 401
assert call("http://index:8002/search", {"vector": [1.0], "k": 1})[0] == 401
assert call("http://embedder:8001/embed/text", {"texts": ["x"]})[0] == 401
for url in ("http://index:8002/health", "http://embedder:8001/health"):
    assert call(url) == (200, {"ready": True}), url  # anonymous: up or not, nothing more
PY

step "first start: strangers get nothing; the owner is made with the setup token from the log"
[ "$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/jobs")" = 401 ] || fail "GET /jobs answers a stranger"
[ "$(curl -sSf "$BASE/health")" = '{"status":"ok"}' ] || fail "anonymous /health says more than ok"
[ "$(curl -sS -o /dev/null -w '%{http_code}' -H 'Host: rebound.example' "$BASE/health")" = 400 ] \
  || fail "the gateway answers an unknown Host name"
token=$(docker compose logs --no-color gateway | sed -n 's/.*create it with the setup token \([^ ]*\) .*/\1/p' | tail -1)
[ -n "$token" ] || fail "no setup token in the gateway's log"
[ "$(docker compose exec -T gateway stat -c %a /data/secrets/setup.token)" = 600 ] || fail "setup.token is not 0600"
jar=$WORK/cookies
curl -sSf -c "$jar" -H 'Content-Type: application/json' \
  -d "{\"token\": \"$token\", \"username\": \"owner\", \"password\": \"smoke test password\"}" \
  "$BASE/auth/setup" | jq -e '.role == "owner"' >/dev/null || fail "the setup token did not make the owner"
KEY=$(curl -sSf -b "$jar" -H "Origin: $BASE" -H 'Content-Type: application/json' -d '{"name": "compose smoke"}' \
  "$BASE/auth/api-keys" | jq -r .key)
api() { curl -sSf -H "X-API-Key: $KEY" "$@"; }
api "$BASE/auth/me" | jq -e '.username == "owner" and .via == "api_key"' >/dev/null || fail "the API key is not the owner's"
step "owner and API key made"

step "uploading photos and a video"
photos=(n02085936_Maltese_dog n02099601_golden_retriever n02110185_Siberian_husky n01440764_tench n04285008_sports_car)
parts=()
for name in "${photos[@]}"; do
  parts+=(-F "files=@$DATA/photos/imagenet-sample/$name.JPEG;filename=smoke/photos/$name.JPEG")
done
parts+=(-F "files=@$DATA/videos/asl_gestures/book.mkv;filename=smoke/videos/book.mkv")
job=$(api "${parts[@]}" "$BASE/uploads" | jq -r .job_id)
step "job $job"

job_finished() { api "$BASE/jobs/$job" | jq -e '.status == "done" or .status == "failed"'; }
wait_for 600 "job $job finished" job_finished
status=$(api "$BASE/jobs/$job")
echo "$status" | jq -c '{status, total, indexed, duplicates, failed, errors}'
echo "$status" | jq -e --argjson n $((${#photos[@]} + 1)) \
  '.status == "done" and .total == $n and .failed == 0 and .indexed + .duplicates == $n' >/dev/null \
  || fail "job did not index every file"

search_has_results() { api "$BASE/search?q=$1&k=5" | jq -e '.results | length > 0'; }
wait_for 120 "search returns results" search_has_results a+dog
api "$BASE/search?q=a+dog&k=5" | jq -c '[.results[] | {name, kind, timestamp, similarity}]'

frame_url=$(api "$BASE/search?q=a+dog&k=5" | jq -r '.results[0].frame_url')
content_type=$(api -o "$WORK/frame.jpg" -w '%{content_type}' "$BASE$frame_url")
[ "$content_type" = image/jpeg ] || fail "$frame_url served $content_type"
[ "$(head -c 2 "$WORK/frame.jpg" | od -An -tx1 | tr -d ' ')" = ffd8 ] || fail "$frame_url is not a JPEG"
step "$frame_url serves a JPEG"

step "the photo folder as a library, indexed in place"
library=$(api -H 'Content-Type: application/json' -d '{"path": "/library", "name": "smoke library"}' \
  "$BASE/libraries" | jq -r .id)
library_ready() { api "$BASE/libraries/$library" | jq -e --argjson n ${#LIBRARY_PHOTOS[@]} '.status == "ready" and .media == $n'; }
wait_for 300 "library $library ready with its ${#LIBRARY_PHOTOS[@]} photos" library_ready
api "$BASE/libraries/$library" | jq -c '{name, status, media, failed, watching}'
stored=$(docker compose exec -T gateway sh -c 'find /data -type f -exec sha256sum {} + 2>/dev/null' | cut -d' ' -f1)
for name in "${LIBRARY_PHOTOS[@]}"; do
  sum=$(sha256sum "$WORK/library/trip/$name.JPEG" | cut -d' ' -f1)
  ! grep -q "$sum" <<<"$stored" || fail "the data volume holds a copy of the library's $name.JPEG"
done
step "library indexed; no original copied into the data volume"

step "restarting the embedder"
docker compose restart embedder
docker compose up -d --wait --wait-timeout 300 --scale ingest_worker=2
# A new query, so the restarted embedder has to embed it.
wait_for 120 "search after the embedder restart" search_has_results a+dog+in+the+snow
step "search works after the embedder restart"
