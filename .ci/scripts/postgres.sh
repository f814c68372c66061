#!/usr/bin/env bash
# PostgreSQL for the store tests: the Debian package, one cluster listening on 127.0.0.1 only,
# role `chatops` (password `pg-test-Qx7w`, no word the bot says: a scrubbed secret) owning database `chatops_test`. Safe to run again.
# Prints the URL for the tests (CHATOPS_TEST_POSTGRES_URL) alone on stdout, progress on stderr;
# exits non-zero with the reason when the server does not answer.
set -euo pipefail

ROLE=chatops
PASSWORD=pg-test-Qx7w
DATABASE=chatops_test
CLUSTER=main

say() { echo "postgres.sh: $*"; }
die() { echo "postgres.sh: error: $*" >&2; exit 1; }

main() {
  [ "$(id -u)" -eq 0 ] || die "run as root (it installs a package and starts a system service)"

  if ! command -v pg_lsclusters >/dev/null || [ -z "$(ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null)" ]; then
    say "installing PostgreSQL from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi

  # the newest installed server version; a cluster for it (the package makes one, unless
  # something removed it)
  VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  [ -x "/usr/lib/postgresql/$VERSION/bin/postgres" ] || die "no PostgreSQL server binary found"
  if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$VERSION $CLUSTER"; then
    say "creating cluster $VERSION/$CLUSTER"
    pg_createcluster "$VERSION" "$CLUSTER" >/dev/null
  fi

  # loopback only; a changed setting needs a restart to take effect
  CONF_DIR=/etc/postgresql/$VERSION/$CLUSTER
  grep -Eq "^include_dir *= *'conf.d'" "$CONF_DIR/postgresql.conf" ||
    die "$CONF_DIR/postgresql.conf has no include_dir = 'conf.d'"
  mkdir -p "$CONF_DIR/conf.d"
  WANTED="listen_addresses = '127.0.0.1'"
  CHANGED=no
  if [ "$(cat "$CONF_DIR/conf.d/chatops.conf" 2>/dev/null)" != "$WANTED" ]; then
    echo "$WANTED" >"$CONF_DIR/conf.d/chatops.conf"
    CHANGED=yes
  fi

  status() { pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {print $4}'; }
  LOG=/var/log/postgresql/postgresql-$VERSION-$CLUSTER.log
  PORT=$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {print $3}')

  if [ "$(status)" = online ] && [ "$CHANGED" = yes ]; then
    say "restarting cluster $VERSION/$CLUSTER (listen on 127.0.0.1 only)"
    pg_ctlcluster "$VERSION" "$CLUSTER" restart
  elif [ "$(status)" != online ]; then
    say "starting cluster $VERSION/$CLUSTER"
    # no systemd here: pg_ctlcluster runs pg_ctl as the postgres user; service(8) as fallback
    pg_ctlcluster "$VERSION" "$CLUSTER" start || service postgresql start ||
      die "PostgreSQL $VERSION/$CLUSTER did not start (log: $LOG)"
  fi

  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p "$PORT" && break
    sleep 1
  done
  pg_isready -q -h 127.0.0.1 -p "$PORT" ||
    die "PostgreSQL $VERSION/$CLUSTER does not answer on 127.0.0.1:$PORT (log: $LOG)"

  as_postgres() { (cd /tmp && runuser -u postgres -- "$@"); }
  psql_admin() { as_postgres psql -p "$PORT" -X -q -v ON_ERROR_STOP=1 -tA "$@"; }

  psql_admin -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
      CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD';
    ELSE
      ALTER ROLE $ROLE LOGIN PASSWORD '$PASSWORD';
    END IF;
  END \$\$;"
  if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
    as_postgres createdb -p "$PORT" -O "$ROLE" "$DATABASE"
  fi
  psql_admin -c "ALTER DATABASE $DATABASE OWNER TO $ROLE"

  # the check that matters: the tests' own way in (password over TCP on loopback)
  ANSWER=$(PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=5 psql -X -h 127.0.0.1 -p "$PORT" -U "$ROLE" \
    -d "$DATABASE" -tA -c "SELECT current_user || ' ' || current_database()" 2>&1) || true
  [ "$ANSWER" = "$ROLE $DATABASE" ] ||
    die "cannot log in as $ROLE to $DATABASE on 127.0.0.1:$PORT: $ANSWER"

  say "ready on 127.0.0.1:$PORT"
  URL="postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"
}

# whatever the tools print goes to stderr (and no daemon keeps our stdout open): stdout
# carries only the URL
URL=""
main >&2
echo "$URL"
