#!/usr/bin/env bash
# Local Redis + PostgreSQL + Kafka (KRaft) for tickstream integration tests and dev.
#
#   scripts/services.sh start   [redis|postgres|kafka ...]   # install what is missing, start, wait
#   scripts/services.sh stop    [redis|postgres|kafka ...]   # clean shutdown
#   scripts/services.sh restart <redis|postgres|kafka ...>   # postgres: pg_ctl restart -m immediate
#   scripts/services.sh kill    <redis|postgres|kafka ...>   # SIGKILL the main process (fault tests)
#   scripts/services.sh status  [redis|postgres|kafka ...]   # exit 1 if any is down
#
# No service name means all three. Everything lives under <repo>/.services/ and `start` writes
# <repo>/.services/env (REDIS_URL, DATABASE_URL, KAFKA_BOOTSTRAP) that tests/integration reads.
# Idempotent: `start` with everything up only re-checks readiness. Ports are non-default so
# nothing collides with a system instance: Redis 6390, PostgreSQL 5440, Kafka 9093 (+9094 KRaft
# controller). Needs root for the first-time package install and for running PostgreSQL as the
# `postgres` system user.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd)"
cd "$ROOT"

SVC="$ROOT/.services"
HOST=127.0.0.1

REDIS_PORT=6390
REDIS_DIR="$SVC/redis"
REDIS_CONF="$REDIS_DIR/redis.conf"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"

PG_PORT=5440
PG_VERSION_MAJOR=15
PG_BIN="${PG_BIN:-/usr/lib/postgresql/$PG_VERSION_MAJOR/bin}"
PG_LINK="$SVC/pg"
# .services/pg is the cluster's directory, or a link to it when the checkout is somewhere the
# postgres user cannot enter (a `mktemp -d` clone is 0700): see pg_relocate
PG_DIR=$([[ -L $PG_LINK ]] && readlink -f "$PG_LINK" || printf '%s' "$PG_LINK")
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
PG_USER=tickstream
PG_PASSWORD=tickstream
PG_DB=tickstream
PG_OS_USER=postgres

KAFKA_PORT=9093
KAFKA_CONTROLLER_PORT=9094
KAFKA_DIR="$SVC/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_OUT="$KAFKA_DIR/kafka.out"
KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_LOG4J="$SCRIPT_DIR/kafka/log4j.properties"
# Fixed KRaft cluster id (22-char base64 UUID) so the storage format is reproducible.
KAFKA_CLUSTER_ID="XovIbMmrSvSJJhYaSMl9lQ"
KAFKA_READY_TIMEOUT=90

REDIS_URL="redis://$HOST:$REDIS_PORT/0"
DATABASE_URL="postgresql://$PG_USER:$PG_PASSWORD@$HOST:$PG_PORT/$PG_DB"
KAFKA_BOOTSTRAP="$HOST:$KAFKA_PORT"

ALL_SERVICES=(redis postgres kafka)

# ---------------------------------------------------------------------------------------------
# helpers

log() { printf '[services] %s\n' "$*" >&2; }
die() {
  printf '[services] ERROR: %s\n' "$*" >&2
  exit 1
}

# tail of a log file on stderr, for failure messages
show_tail() {
  local f=$1 n=${2:-40}
  if [[ -s $f ]]; then
    printf -- '----- last %s lines of %s -----\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2 || true
    printf -- '-----\n' >&2
  fi
}

# alive = exists and is not a zombie (PID 1 in some containers never reaps orphans)
pid_alive() {
  local pid=${1:-} state
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

read_pid() {
  if [[ -s $1 ]]; then head -n1 "$1" | tr -dc '0-9'; fi
  return 0
}

# wait_gone PID SECONDS -> 0 when the process is gone
wait_gone() {
  local pid=$1 deadline=$((SECONDS + $2))
  while pid_alive "$pid"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# wait_port_closed PORT SECONDS -> 0 once nothing accepts on PORT. A SIGKILLed multi-threaded
# process (JVM, redis) shows as a zombie before its other threads have released the sockets.
wait_port_closed() {
  local deadline=$((SECONDS + $2))
  while port_open "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

is_root() { [[ $EUID -eq 0 ]]; }

# Run a command as the PostgreSQL OS user (postgres refuses to run as root).
as_pg() {
  if is_root; then
    runuser -u "$PG_OS_USER" -- "$@"
  else
    "$@"
  fi
}

valid_service() {
  case $1 in redis | postgres | kafka) return 0 ;; *) return 1 ;; esac
}

# ---------------------------------------------------------------------------------------------
# installation

java_bin() {
  local c
  # Kafka 3.9 supports Java 11/17/21; prefer a Debian JDK 17/21 over whatever is first on PATH.
  for c in "${KAFKA_JAVA:-}" /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/java-21-openjdk-*/bin/java \
    "$(command -v java 2>/dev/null || true)"; do
    if [[ -n $c && -x $c ]]; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  return 1
}

pom_stamp() { sha256sum "$KAFKA_POM" | cut -d' ' -f1; }

kafka_libs_ok() {
  [[ -f $KAFKA_LIBS/.pom.sha256 ]] &&
    [[ $(cat "$KAFKA_LIBS/.pom.sha256") == "$(pom_stamp)" ]] &&
    compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null
}

apt_install() {
  is_root || die "need to install: $* (run this script as root, or install them yourself)"
  command -v apt-get >/dev/null || die "apt-get not found; install manually: $*"
  local created_policy=0
  # Keep the packages' init scripts from starting default instances (6379 / 5432).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  log "installing Debian packages: $*"
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
  } </dev/null >"$SVC/apt.log" 2>&1 || rc=$?
  ((created_policy)) && rm -f /usr/sbin/policy-rc.d
  if ((rc != 0)); then
    show_tail "$SVC/apt.log" 30
    die "apt-get install $* failed (rc=$rc)"
  fi
}

ensure_packages() {
  local pkgs=() s
  for s in "$@"; do
    case $s in
      redis)
        if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
          pkgs+=(redis-server redis-tools)
        fi
        ;;
      postgres)
        [[ -x $PG_BIN/postgres ]] || pkgs+=("postgresql-$PG_VERSION_MAJOR")
        ;;
      kafka)
        java_bin >/dev/null || pkgs+=(openjdk-17-jre-headless)
        if ! kafka_libs_ok && ! command -v mvn >/dev/null; then pkgs+=(maven); fi
        ;;
    esac
  done
  if ((${#pkgs[@]})); then apt_install "${pkgs[@]}"; fi
  return 0
}

ensure_kafka_libs() {
  kafka_libs_ok && return 0
  log "downloading Kafka broker jars (scripts/kafka/pom.xml) into .services/kafka/libs"
  local tmp="$KAFKA_DIR/libs.partial"
  rm -rf "$tmp"
  mkdir -p "$KAFKA_DIR"
  if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" </dev/null >"$KAFKA_DIR/mvn.log" 2>&1; then
    show_tail "$KAFKA_DIR/mvn.log" 30
    die "mvn dependency:copy-dependencies failed (see $KAFKA_DIR/mvn.log)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "mvn did not produce kafka_2.13 jar in $tmp"
  pom_stamp >"$tmp/.pom.sha256"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
}

# ---------------------------------------------------------------------------------------------
# Redis

redis_cli() { redis-cli -h "$HOST" -p "$REDIS_PORT" --no-auth-warning "$@"; }
redis_ready() { [[ $(redis_cli ping 2>/dev/null) == PONG ]]; }

redis_write_conf() {
  mkdir -p "$REDIS_DIR"
  cat >"$REDIS_CONF" <<EOF
# generated by scripts/services.sh -- edits are overwritten on start
bind $HOST
port $REDIS_PORT
protected-mode yes
daemonize yes
supervised no
dir $REDIS_DIR
pidfile $REDIS_PID
logfile $REDIS_LOG
loglevel notice
databases 16
appendonly yes
appendfsync everysec
aof-load-truncated yes
save 3600 1 300 100 60 10000
maxclients 2000
EOF
}

redis_start() {
  if redis_ready; then
    log "redis already running on $HOST:$REDIS_PORT"
    return 0
  fi
  local pid
  pid=$(read_pid "$REDIS_PID")
  if ! pid_alive "$pid"; then
    wait_port_closed "$REDIS_PORT" 5 ||
      die "port $REDIS_PORT is in use by something that does not answer PING"
    rm -f "$REDIS_PID"
    redis_write_conf
    log "starting redis on $HOST:$REDIS_PORT"
    redis-server "$REDIS_CONF" </dev/null >>"$REDIS_LOG" 2>&1 9>&- ||
      {
        show_tail "$REDIS_LOG"
        die "redis-server failed to start"
      }
  fi
  local deadline=$((SECONDS + 60))
  until redis_ready; do
    if ((SECONDS >= deadline)); then
      show_tail "$REDIS_LOG"
      die "redis did not answer PING within 60s"
    fi
    sleep 0.1
  done
  log "redis ready ($REDIS_URL)"
}

redis_stop() {
  local pid
  pid=$(read_pid "$REDIS_PID")
  if redis_ready; then
    log "stopping redis"
    [[ -n $pid ]] || pid=$(redis_cli info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')
    redis_cli shutdown >/dev/null 2>&1 || true
  fi
  if pid_alive "$pid"; then
    wait_gone "$pid" 60 || {
      log "redis did not exit in 60s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || true
    }
  fi
  rm -f "$REDIS_PID"
}

redis_kill() {
  local pid
  pid=$(read_pid "$REDIS_PID")
  pid_alive "$pid" || pid=$(redis_cli info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')
  if pid_alive "$pid"; then
    log "SIGKILL redis (pid $pid)"
    kill -KILL "$pid"
    wait_gone "$pid" 10 || die "redis pid $pid still alive after SIGKILL"
    wait_port_closed "$REDIS_PORT" 10 || die "port $REDIS_PORT still open after SIGKILL"
  else
    log "redis is not running"
  fi
}

redis_status() {
  if redis_ready; then
    local v
    v=$(redis_cli info server 2>/dev/null | tr -d '\r' | sed -n 's/^redis_version://p')
    printf '%-9s up    %s (redis %s, pid %s)\n' redis "$REDIS_URL" "$v" "$(read_pid "$REDIS_PID")"
  else
    printf '%-9s down  %s\n' redis "$REDIS_URL"
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

pg_ready() { "$PG_BIN/pg_isready" -h "$HOST" -p "$PG_PORT" -q 2>/dev/null; }
pg_ctl() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" "$@"; }
# postmaster pid if it is really running. Not `pg_ctl status`: it trusts kill(pid, 0), which also
# succeeds for a SIGKILLed postmaster that nobody has reaped yet (zombie).
pg_pid() {
  local pid
  pid=$(read_pid "$PG_DATA/postmaster.pid")
  if pid_alive "$pid" && grep -q postgres "/proc/$pid/comm" 2>/dev/null; then
    printf '%s\n' "$pid"
  fi
}
pg_running() { [[ -n $(pg_pid) ]]; }
pg_psql() {
  as_pg "$PG_BIN/psql" -X -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -qAt "$@"
}

ensure_pg_os_user() {
  is_root || return 0
  if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
    log "creating system user $PG_OS_USER"
    useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
      --shell /usr/sbin/nologin "$PG_OS_USER"
  fi
}

pg_relocate() {
  # The checkout's path is closed to the postgres user (a parent directory without o+x). Rather
  # than open the user's directories, keep the cluster under the postgres user's home, one per
  # checkout, and link it from .services/pg.
  local home target
  home=$(getent passwd "$PG_OS_USER" | cut -d: -f6)
  target="${home:-/var/lib/postgresql}/tickstream-$(printf '%s' "$SVC" | sha256sum | cut -c1-12)"
  log "user $PG_OS_USER cannot reach $PG_DIR; keeping the cluster in $target (linked from $PG_LINK)"
  rm -rf "$PG_DIR"
  mkdir -p "$target"
  chown "$PG_OS_USER:" "$target"
  runuser -u "$PG_OS_USER" -- test -w "$target" || die "user $PG_OS_USER cannot write $target"
  ln -sfn "$target" "$PG_LINK"
  PG_DIR=$target PG_DATA="$target/data" PG_LOG="$target/postgres.log"
}

pg_init() {
  [[ -s $PG_DATA/PG_VERSION ]] && return 0
  ensure_pg_os_user
  mkdir -p "$PG_DIR"
  if is_root; then
    chown "$PG_OS_USER:" "$PG_DIR"
    runuser -u "$PG_OS_USER" -- test -w "$PG_DIR" || pg_relocate
  fi
  chmod 755 "$PG_DIR"
  # unix socket paths are limited to 107 bytes
  ((${#PG_DIR} + 16 < 107)) || die "socket path under $PG_DIR is too long for a unix socket"
  log "initdb $PG_DATA"
  rm -rf "$PG_DATA"
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 </dev/null >"$PG_DIR/initdb.log" 2>&1 || {
    show_tail "$PG_DIR/initdb.log"
    die "initdb failed"
  }
  cat >>"$PG_DATA/postgresql.conf" <<EOF

# ---- tickstream dev/test instance (scripts/services.sh) ----
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 200
password_encryption = scram-sha-256
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = -1
EOF
}

pg_provision() {
  local has
  has=$(pg_psql -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'") ||
    die "psql as postgres failed"
  if [[ $has != 1 ]]; then
    log "creating role $PG_USER"
    pg_psql -c "CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
  fi
  has=$(pg_psql -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")
  if [[ $has != 1 ]]; then
    log "creating database $PG_DB"
    pg_psql -c "CREATE DATABASE $PG_DB OWNER $PG_USER"
  fi
}

pg_wait_ready() {
  local deadline=$((SECONDS + ${1:-60}))
  until pg_ready; do
    if ((SECONDS >= deadline)); then
      show_tail "$PG_LOG"
      die "postgres not ready on $HOST:$PG_PORT"
    fi
    sleep 0.2
  done
}

pg_start() {
  ensure_pg_os_user
  if ! pg_running; then
    wait_port_closed "$PG_PORT" 5 || die "port $PG_PORT is in use by something else"
    pg_init
    if [[ -e $PG_DATA/postmaster.pid || -e $PG_DIR/.s.PGSQL.$PG_PORT.lock ]]; then
      # left behind by a SIGKILL; postgres itself refuses them while the old pid is a zombie
      log "removing stale postmaster.pid and socket lock file"
      rm -f "$PG_DATA/postmaster.pid" "$PG_DIR/.s.PGSQL.$PG_PORT.lock" "$PG_DIR/.s.PGSQL.$PG_PORT"
    fi
    log "starting postgres on $HOST:$PG_PORT"
    local attempt ok=0
    # after a SIGKILL of the postmaster, orphaned backends may hold shared memory for a moment
    for attempt in 1 2 3 4 5; do
      if pg_ctl -l "$PG_LOG" -w -t 60 start </dev/null >/dev/null 2>&1 9>&-; then
        ok=1
        break
      fi
      pg_running && {
        ok=1
        break
      }
      log "pg_ctl start failed (attempt $attempt), retrying"
      sleep 1
    done
    if ((!ok)); then
      show_tail "$PG_LOG"
      die "postgres failed to start"
    fi
  else
    log "postgres already running on $HOST:$PG_PORT"
  fi
  pg_wait_ready 60
  pg_provision
  log "postgres ready ($DATABASE_URL)"
}

pg_stop() {
  if pg_running; then
    log "stopping postgres"
    pg_ctl -m fast -w -t 120 stop </dev/null >/dev/null 2>&1 9>&- || {
      show_tail "$PG_LOG"
      die "pg_ctl stop failed"
    }
  fi
}

pg_restart() {
  if pg_running; then
    log "restarting postgres (pg_ctl restart -m immediate)"
    pg_ctl -m immediate -l "$PG_LOG" -w -t 120 restart </dev/null >/dev/null 2>&1 9>&- || {
      show_tail "$PG_LOG"
      die "pg_ctl restart failed"
    }
    pg_wait_ready 60
    log "postgres ready ($DATABASE_URL)"
  else
    pg_start
  fi
}

pg_kill() {
  local pid
  pid=$(pg_pid)
  if [[ -n $pid ]]; then
    log "SIGKILL postgres postmaster (pid $pid)"
    kill -KILL "$pid"
    wait_gone "$pid" 10 || die "postgres pid $pid still alive after SIGKILL"
    wait_port_closed "$PG_PORT" 10 || die "port $PG_PORT still open after SIGKILL"
  else
    log "postgres is not running"
  fi
}

pg_status() {
  if pg_ready; then
    local v
    v=$("$PG_BIN/postgres" --version 2>/dev/null | awk '{print $3}')
    printf '%-9s up    %s (postgres %s, pid %s)\n' postgres "$DATABASE_URL" "$v" \
      "$(pg_pid)"
  else
    printf '%-9s down  %s\n' postgres "$DATABASE_URL"
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
# Kafka (KRaft, single combined broker+controller)

# One Metadata (v4) request over a plain socket; prints "node_id=.. cluster_id=.." on success.
KAFKA_METADATA_PY='
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
cid = b"tickstream-services"
req = struct.pack(">hhih", 3, 4, 7, len(cid)) + cid + struct.pack(">ib", -1, 0)
with socket.create_connection((host, port), timeout=5) as s:
    s.settimeout(10)
    s.sendall(struct.pack(">i", len(req)) + req)
    def recv(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                sys.exit("connection closed by broker")
            buf += chunk
        return buf
    data = recv(struct.unpack(">i", recv(4))[0])
corr, _throttle, nbrokers = struct.unpack_from(">iii", data, 0)
off, nodes = 12, []
for _ in range(nbrokers):
    node, hl = struct.unpack_from(">ih", data, off); off += 6 + hl
    _port, rl = struct.unpack_from(">ih", data, off); off += 6 + max(rl, 0)
    nodes.append(node)
cl = struct.unpack_from(">h", data, off)[0]; off += 2
cluster = data[off:off + cl].decode() if cl >= 0 else None; off += max(cl, 0)
controller = struct.unpack_from(">i", data, off)[0]
if corr != 7 or not nodes:
    sys.exit("metadata response without brokers")
print("node_id=%s cluster_id=%s controller_id=%s" % (",".join(map(str, nodes)), cluster, controller))
'

kafka_metadata() {
  local py
  py=$(command -v python3 2>/dev/null || true)
  if [[ -n $py ]]; then
    timeout 15 "$py" -I -S -c "$KAFKA_METADATA_PY" "$HOST" "$KAFKA_PORT" 2>/dev/null
  else
    # no python: Kafka's own tool (sends a MetadataRequest, then ApiVersions to each broker)
    timeout 30 "$(java_bin)" -Xmx128m -cp "$KAFKA_LIBS/*" \
      -Dlog4j.configuration="file:$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_LOGS" \
      kafka.admin.BrokerApiVersionsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" >/dev/null 2>&1 &&
      echo "node_id=? cluster_id=$KAFKA_CLUSTER_ID"
  fi
}

kafka_pid() {
  local pid
  pid=$(read_pid "$KAFKA_PID")
  if pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'; then
    printf '%s\n' "$pid"
  fi
}

kafka_write_props() {
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  cat >"$KAFKA_PROPS" <<EOF
# generated by scripts/services.sh -- edits are overwritten on start
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
# after a SIGKILL the new incarnation is refused (DUPLICATE_BROKER_REGISTRATION) until the old
# registration's session expires: keep that short (default 9 s) so kill+start recovers quickly
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=268435456
EOF
}

kafka_format() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  log "formatting Kafka KRaft storage (cluster id $KAFKA_CLUSTER_ID)"
  "$(java_bin)" -Xmx256m -cp "$KAFKA_LIBS/*" \
    -Dlog4j.configuration="file:$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_LOGS" \
    kafka.tools.StorageTool format --ignore-formatted -t "$KAFKA_CLUSTER_ID" -c "$KAFKA_PROPS" \
    </dev/null >"$KAFKA_DIR/format.log" 2>&1 || {
    show_tail "$KAFKA_DIR/format.log"
    die "kafka storage format failed"
  }
}

kafka_wait_ready() {
  local pid=$1 deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
  while :; do
    if ! pid_alive "$pid"; then
      show_tail "$KAFKA_OUT" 20
      show_tail "$KAFKA_LOGS/server.log" 40
      die "kafka (pid $pid) exited during startup"
    fi
    if port_open "$KAFKA_PORT" && KAFKA_META=$(kafka_metadata); then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      show_tail "$KAFKA_OUT" 20
      show_tail "$KAFKA_LOGS/server.log" 40
      die "kafka not ready on $KAFKA_BOOTSTRAP within ${KAFKA_READY_TIMEOUT}s (pid $pid still running)"
    fi
    sleep 0.5
  done
}

kafka_start() {
  local pid java
  pid=$(kafka_pid)
  if [[ -z $pid ]]; then
    wait_port_closed "$KAFKA_PORT" 10 ||
      die "port $KAFKA_PORT is in use by a process that is not our Kafka"
    wait_port_closed "$KAFKA_CONTROLLER_PORT" 10 ||
      die "port $KAFKA_CONTROLLER_PORT is in use by something else"
    ensure_kafka_libs
    kafka_write_props
    kafka_format
    java=$(java_bin) || die "no java found"
    log "starting kafka (KRaft) on $KAFKA_BOOTSTRAP"
    rm -f "$KAFKA_PID"
    # setsid: own session, so the caller's process group / terminal signals do not reach it
    nohup setsid "$java" -Xmx512m -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dlog4j.configuration="file:$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_LOGS" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
      </dev/null >"$KAFKA_OUT" 2>&1 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$KAFKA_PID"
  else
    log "kafka already running (pid $pid)"
  fi
  kafka_wait_ready "$pid"
  log "kafka ready ($KAFKA_BOOTSTRAP, $KAFKA_META)"
}

kafka_stop() {
  local pid
  pid=$(kafka_pid)
  if [[ -n $pid ]]; then
    log "stopping kafka (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 90 || {
      log "kafka did not exit in 90s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || true
    }
    wait_port_closed "$KAFKA_PORT" 10 || true
    wait_port_closed "$KAFKA_CONTROLLER_PORT" 10 || true
  fi
  rm -f "$KAFKA_PID"
}

kafka_kill() {
  local pid
  pid=$(kafka_pid)
  if [[ -n $pid ]]; then
    log "SIGKILL kafka (pid $pid)"
    kill -KILL "$pid"
    wait_gone "$pid" 10 || die "kafka pid $pid still alive after SIGKILL"
    wait_port_closed "$KAFKA_PORT" 10 || die "port $KAFKA_PORT still open after SIGKILL"
    wait_port_closed "$KAFKA_CONTROLLER_PORT" 10 || die "port $KAFKA_CONTROLLER_PORT still open"
  else
    log "kafka is not running"
  fi
}

kafka_status() {
  local pid meta
  pid=$(kafka_pid)
  if [[ -n $pid ]] && port_open "$KAFKA_PORT" && meta=$(kafka_metadata); then
    printf '%-9s up    %s (kafka %s, %s, pid %s)\n' kafka "$KAFKA_BOOTSTRAP" \
      "$(kafka_version)" "$meta" "$pid"
  else
    printf '%-9s down  %s\n' kafka "$KAFKA_BOOTSTRAP"
    return 1
  fi
}

kafka_version() {
  local j
  j=$(compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" | head -n1) || true
  j=${j##*/kafka_2.13-}
  printf '%s\n' "${j%.jar}"
}

# ---------------------------------------------------------------------------------------------
# commands

write_env() {
  local tmp="$SVC/env.tmp.$$"
  printf 'REDIS_URL=%s\nDATABASE_URL=%s\nKAFKA_BOOTSTRAP=%s\n' \
    "$REDIS_URL" "$DATABASE_URL" "$KAFKA_BOOTSTRAP" >"$tmp"
  mv -f "$tmp" "$SVC/env"
}

lock() {
  mkdir -p "$SVC"
  exec 9>"$SVC/.lock"
  flock -w 600 9 || die "another services.sh is still running (lock $SVC/.lock)"
}

do_start() {
  ensure_packages "$@"
  local s
  for s in "$@"; do
    case $s in
      redis) redis_start ;;
      postgres) pg_start ;;
      kafka) kafka_start ;;
    esac
  done
  write_env
  cat "$SVC/env"
}

do_stop() {
  local i s
  # reverse order: kafka, postgres, redis
  for ((i = $# ; i >= 1; i--)); do
    s=${!i}
    case $s in
      redis) if command -v redis-cli >/dev/null; then redis_stop; fi ;;
      postgres) if [[ -x $PG_BIN/pg_ctl && -d $PG_DATA ]]; then pg_stop; fi ;;
      kafka) kafka_stop ;;
    esac
  done
  return 0
}

do_restart() {
  local s
  for s in "$@"; do
    case $s in
      redis)
        redis_stop
        do_start redis
        ;;
      postgres)
        ensure_packages postgres
        pg_restart
        write_env
        ;;
      kafka)
        kafka_stop
        do_start kafka
        ;;
    esac
  done
}

do_kill() {
  local s
  for s in "$@"; do
    case $s in
      redis) if command -v redis-cli >/dev/null; then redis_kill; fi ;;
      postgres) pg_kill ;;
      kafka) kafka_kill ;;
    esac
  done
  return 0
}

do_status() {
  local s rc=0
  for s in "$@"; do
    case $s in
      redis) if command -v redis-cli >/dev/null; then redis_status || rc=1; else
        printf '%-9s down  (not installed)\n' redis
        rc=1
      fi ;;
      postgres) pg_status || rc=1 ;;
      kafka) kafka_status || rc=1 ;;
    esac
  done
  return "$rc"
}

usage() {
  sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  local cmd=${1:-}
  [[ -n $cmd ]] || usage
  shift
  local services=("$@") s
  if ((${#services[@]} == 0)); then
    case $cmd in
      restart | kill) usage ;;
      *) services=("${ALL_SERVICES[@]}") ;;
    esac
  fi
  for s in "${services[@]}"; do
    valid_service "$s" || die "unknown service '$s' (expected redis, postgres or kafka)"
  done
  # keep the canonical order redis, postgres, kafka whatever order was given
  local ordered=()
  for s in "${ALL_SERVICES[@]}"; do
    [[ " ${services[*]} " == *" $s "* ]] && ordered+=("$s")
  done
  case $cmd in
    start)
      lock
      do_start "${ordered[@]}"
      ;;
    stop)
      lock
      do_stop "${ordered[@]}"
      ;;
    restart)
      lock
      do_restart "${ordered[@]}"
      ;;
    kill) do_kill "${ordered[@]}" ;;
    status) do_status "${ordered[@]}" ;;
    -h | --help | help) usage ;;
    *) usage ;;
  esac
}

main "$@"
