#!/bin/sh
# First run of `docker compose`: gives the .env next to docker-compose.yml a Redis password and the names
# this machine is reached by, once.
#
#     docker/init-env.sh            # or: docker/init-env.sh path/to/env-file
#
# Creates the file when it is missing and makes it mode 0600. Unless the file already sets them, appends
# MEDIASEARCH_REDIS_PASSWORD=<64 random hex digits> (compose refuses to start without it; Redis requires
# it, every service uses it) and MEDIASEARCH_ALLOWED_HOSTS=<this machine's host names> (the gateway's
# container cannot know them; it answers only Host names it knows, against DNS rebinding, and IP addresses
# always). Never changes an existing line.
set -eu

file=${1:-"$(cd "$(dirname "$0")/.." && pwd)/.env"}
umask 077
touch "$file"
chmod 600 "$file"  # it holds a password
# A last line without its newline would swallow ours.
if [ -s "$file" ] && [ "$(tail -c 1 "$file" | od -An -c | tr -d ' ')" != '\n' ]; then echo >> "$file"; fi

if grep -q '^MEDIASEARCH_ALLOWED_HOSTS=' "$file"; then
  echo "$file already sets MEDIASEARCH_ALLOWED_HOSTS; left as it is"
else
  name=$(hostname 2>/dev/null || uname -n)
  full=$(hostname -f 2>/dev/null || echo "$name")
  hosts=$(printf '%s\n' "$name" "$full" "${name%%.*}.local" | awk 'NF && !seen[$0]++' | paste -sd, -)
  printf '# Host names the gateway answers to besides IP addresses and localhost (docker/init-env.sh).\nMEDIASEARCH_ALLOWED_HOSTS=%s\n' \
    "$hosts" >> "$file"
  echo "wrote MEDIASEARCH_ALLOWED_HOSTS=$hosts into $file"
fi

if grep -q '^MEDIASEARCH_REDIS_PASSWORD=.' "$file"; then
  echo "$file already sets MEDIASEARCH_REDIS_PASSWORD; left as it is"
  exit 0
fi
password=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
[ "${#password}" = 64 ] || { echo "could not read 32 random bytes from /dev/urandom" >&2; exit 1; }
printf '# Redis password (docker/init-env.sh): Redis refuses clients without it.\nMEDIASEARCH_REDIS_PASSWORD=%s\n' \
  "$password" >> "$file"
echo "wrote a new MEDIASEARCH_REDIS_PASSWORD into $file"
