#!/bin/sh
# A logical backup of tierline's PostgreSQL database: pg_dump's custom format (compressed,
# restored with pg_restore, one table at a time if need be), checked readable, then old
# dumps pruned. pg_dump reads a consistent snapshot while the service runs.
#
#   tierline-backup.sh [DATABASE]     DATABASE: a name or a postgresql:// URL (default: tierline)
#
# Run it where libpq can log in without a password on the command line (`ps` shows arguments):
# as the postgres user on the database host (peer authentication), or with a ~/.pgpass.
#   /etc/cron.d/tierline-backup:   15 3 * * *  postgres  /usr/local/bin/tierline-backup.sh tierline
# Environment: BACKUP_DIR (/var/backups/tierline), BACKUP_KEEP_DAYS (14).
# Restore: README, "Deploying to production" (pg_restore into an empty database).
set -eu

database="${1:-tierline}"
dir="${BACKUP_DIR:-/var/backups/tierline}"
keep="${BACKUP_KEEP_DAYS:-14}"
# TIERLINE_DATABASE_URL may name SQLAlchemy's driver; libpq wants postgresql://.
database=$(printf '%s' "$database" | sed 's#^postgresql+psycopg://#postgresql://#; s#^postgres://#postgresql://#')

umask 077
mkdir -p "$dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
partial="$dir/tierline-$stamp.dump.partial"
trap 'rm -f "$partial"' EXIT
pg_dump --format=custom --compress=6 --no-owner --no-privileges --file="$partial" --dbname="$database"
pg_restore --list "$partial" > /dev/null
mv "$partial" "$dir/tierline-$stamp.dump"
find "$dir" -maxdepth 1 -name 'tierline-*.dump' -mtime +"$keep" -delete
echo "$dir/tierline-$stamp.dump"
