#!/bin/sh
# First run of `docker compose`: gives the .env next to docker-compose.yml a Redis password, once.
#
#     docker/init-env.sh            # or: docker/init-env.sh path/to/env-file
#
# Creates the file when it is missing and, unless the file already sets one, appends
# MEDIASEARCH_REDIS_PASSWORD=<64 random hex digits> and makes the file mode 0600; never changes an
# existing line. Compose refuses to start without that variable (docker-compose.yml); Redis requires the
# password, every service uses it.
set -eu

file=${1:-"$(cd "$(dirname "$0")/.." && pwd)/.env"}
umask 077
touch "$file"
if grep -q '^MEDIASEARCH_REDIS_PASSWORD=.' "$file"; then
  echo "$file already sets MEDIASEARCH_REDIS_PASSWORD; left as it is"
  exit 0
fi
password=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
[ "${#password}" = 64 ] || { echo "could not read 32 random bytes from /dev/urandom" >&2; exit 1; }
# A last line without its newline would swallow ours.
if [ -s "$file" ] && [ "$(tail -c 1 "$file" | od -An -c | tr -d ' ')" != '\n' ]; then echo >> "$file"; fi
chmod 600 "$file"  # it holds a password now
printf '# Redis password (docker/init-env.sh): Redis refuses clients without it.\nMEDIASEARCH_REDIS_PASSWORD=%s\n' \
  "$password" >> "$file"
echo "wrote a new MEDIASEARCH_REDIS_PASSWORD into $file"
