#!/usr/bin/env bash
# A throw-away single-node ZooKeeper on loopback, for tests and local clusters of shmbusd.
#   scripts/zookeeper.sh start DIR PORT   writes DIR/zoo.cfg, starts ZooKeeper in the background
#                                         (log DIR/zk.log, pid DIR/zk.pid, data DIR/data) and
#                                         returns once it serves 127.0.0.1:PORT (at most ~30 s)
#   scripts/zookeeper.sh stop DIR         stops it and waits until the JVM has exited
#   scripts/zookeeper.sh status DIR       exit 0 if it is running
# Starting again on a DIR keeps DIR/data: the znodes (and so the leader epoch) survive a restart.
# ZK_OWNER_PID=PID (optional): ZooKeeper is also stopped when process PID exits, so a test that
# crashes does not leave a JVM behind.
# Needs the Debian package `zookeeper` (Java 17). Works as root and as any other user.
set -euo pipefail

ZK_JAR=/usr/share/java/zookeeper.jar
START_TIMEOUT_S="${ZK_START_TIMEOUT_S:-30}"

usage() {
  echo "usage: $0 start DIR PORT | stop DIR | status DIR" >&2
  exit 2
}

die() {
  echo "zookeeper.sh: $*" >&2
  exit 1
}

# The pid in DIR/zk.pid if that process is still our ZooKeeper (guards against pid reuse).
running_pid() {
  local dir="$1" pid
  [ -f "$dir/zk.pid" ] || return 1
  pid="$(cat "$dir/zk.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "QuorumPeerMain $dir/zoo.cfg" || return 1
  echo "$pid"
}

# True once the server answers "srvr" with its mode (it serves requests, not just listens).
probe() {
  local port="$1" reply
  reply="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf srvr >&3 && cat <&3" 2>/dev/null || true)"
  [[ "$reply" == *"Mode:"* ]]
}

# Waits until process $1 has exited, at most $2 seconds (tail --pid: no sleep loop of ours).
wait_gone() {
  timeout "$2" tail -s 0.1 --pid="$1" -f /dev/null 2>/dev/null || true
  ! kill -0 "$1" 2>/dev/null
}

cmd_start() {
  local dir="$1" port="$2"
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] || die "bad port '$port'"
  [ -f "$ZK_JAR" ] || die "ZooKeeper is not installed ($ZK_JAR missing): apt-get install zookeeper"
  local java="${JAVA:-}"
  [ -n "$java" ] || { [ -n "${JAVA_HOME:-}" ] && java="$JAVA_HOME/bin/java"; } || true
  [ -n "$java" ] || java="$(command -v java || true)"
  [ -n "$java" ] && [ -x "$java" ] || die "no java found (apt-get install zookeeper pulls one in)"

  mkdir -p "$dir/data"
  dir="$(cd "$dir" && pwd)"
  if pid="$(running_pid "$dir")"; then
    die "ZooKeeper already running in $dir (pid $pid)"
  fi

  # Something else on the port would answer our readiness probe: refuse rather than be fooled.
  if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
    die "127.0.0.1:$port is already in use"
  fi

  # tickTime 500 ms: sessions may be as short as 1 s (2 ticks), so failover tests are quick.
  cat >"$dir/zoo.cfg" <<EOF
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat
EOF
  # Debian's zookeeper.jar names its dependencies in its manifest; add a log4j binding so
  # the server logs to DIR/zk.log instead of nowhere.
  cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
EOF
  local cp="$ZK_JAR"
  for j in /usr/share/java/slf4j-log4j12.jar /usr/share/java/log4j-1.2.jar; do
    [ -f "$j" ] && cp="$cp:$j"
  done

  : >"$dir/zk.log"
  # setsid: own session, so the caller's terminal signals do not reach it; stdio detached so a
  # caller reading our output through a pipe is not kept waiting by the JVM.
  setsid "$java" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Djava.net.preferIPv4Stack=true -Dlog4j.configuration="file:$dir/log4j.properties" \
    -Dzookeeper.jmx.log4j.disable=true \
    -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
    </dev/null >>"$dir/zk.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/zk.pid"

  if [ -n "${ZK_OWNER_PID:-}" ]; then
    # Watchdog: stops this ZooKeeper once the owner exits (or returns once ZooKeeper itself has).
    setsid bash -c '
      while kill -0 "$2" 2>/dev/null && kill -0 "$1" 2>/dev/null; do
        timeout 5 tail --pid="$1" -f /dev/null 2>/dev/null || true
      done
      kill -0 "$2" 2>/dev/null && kill -KILL "$2" 2>/dev/null
      exit 0' zk-watchdog "$ZK_OWNER_PID" "$pid" </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/watchdog.pid"
  fi

  # Wait for the server to come up: bounded, polling its "srvr" command.
  local deadline=$((SECONDS + START_TIMEOUT_S))
  while :; do
    if probe "$port" && kill -0 "$pid" 2>/dev/null; then
      echo "zookeeper.sh: ZooKeeper serving 127.0.0.1:$port (pid $pid, dir $dir)" >&2
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "zookeeper.sh: ZooKeeper exited during startup; last lines of $dir/zk.log:" >&2
      tail -n 30 "$dir/zk.log" >&2 || true
      rm -f "$dir/zk.pid"
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "zookeeper.sh: ZooKeeper did not answer on 127.0.0.1:$port within ${START_TIMEOUT_S} s; last lines of $dir/zk.log:" >&2
      tail -n 30 "$dir/zk.log" >&2 || true
      cmd_stop "$dir" || true
      exit 1
    fi
    sleep 0.1
  done
}

cmd_stop() {
  local dir="$1" pid
  [ -d "$dir" ] || die "no such directory: $dir"
  dir="$(cd "$dir" && pwd)"
  if [ -f "$dir/watchdog.pid" ]; then
    local wd
    wd="$(cat "$dir/watchdog.pid" 2>/dev/null || true)"
    [[ "$wd" =~ ^[0-9]+$ ]] && kill -TERM "$wd" 2>/dev/null || true
    rm -f "$dir/watchdog.pid"
  fi
  if ! pid="$(running_pid "$dir")"; then
    rm -f "$dir/zk.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" 15; then
    echo "zookeeper.sh: ZooKeeper (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "ZooKeeper (pid $pid) did not exit"
  fi
  rm -f "$dir/zk.pid"
}

[ $# -ge 1 ] || usage
case "$1" in
  start) [ $# -eq 3 ] || usage; cmd_start "$2" "$3" ;;
  stop) [ $# -eq 2 ] || usage; cmd_stop "$2" ;;
  status) [ $# -eq 2 ] || usage; [ -d "$2" ] && running_pid "$(cd "$2" && pwd)" >/dev/null ;;
  *) usage ;;
esac
