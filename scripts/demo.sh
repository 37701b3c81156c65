#!/usr/bin/env bash
# The main job: build, start shmbusd, let a producer and a consumer process talk through it over
# a topic, let a producer and two competing consumers share a queue, show `shmbus stat`, then
# measure the one-way latency against the raw shared-memory floor, and a queue's hand-off.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build

BIN=build
DIR="$(mktemp -d /tmp/shmbus-demo.XXXXXX)"
LOG="$DIR/shmbusd.log"
"$BIN/daemon/shmbusd" --dir "$DIR" 2>"$LOG" &
DAEMON=$!
REPL_PIDS=()
cleanup() {
  kill -TERM "$DAEMON" "${REPL_PIDS[@]}" 2>/dev/null || true
  wait "$DAEMON" "${REPL_PIDS[@]}" 2>/dev/null || true
}
trap cleanup EXIT

# Wait (bounded) until the daemon on ${1:-$DIR} answers.
wait_daemon() {
  for _ in $(seq 1 100); do
    "$BIN/bus/shmbus" --dir "${1:-$DIR}" stat >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "shmbusd did not answer; its log:" >&2
  cat "${2:-$LOG}" >&2
  return 1
}
wait_daemon

echo "== a consumer process subscribes to topic://demo; a producer process sends 5 lines"
"$BIN/bus/shmbus" --dir "$DIR" recv topic://demo --count 5 --timeout 10000 >"$DIR/received.txt" 2>"$DIR/recv.err" &
RECV=$!
# Wait until the subscription is visible before publishing (topics are not durable).
for _ in $(seq 1 200); do
  "$BIN/bus/shmbus" --dir "$DIR" stat --json 2>/dev/null | grep -q '"consumers":1' && break
  sleep 0.02
done
printf 'hello from pid %s\nmessage 2\nmessage 3\nmessage 4\nlast message\n' "$$" |
  "$BIN/bus/shmbus" --dir "$DIR" send topic://demo -
wait "$RECV"
echo "-- the consumer printed:"
sed 's/^/   /' "$DIR/received.txt"

echo "== queue://jobs: a producer process queues 1000 numbered jobs before any consumer exists;"
echo "   two competing consumer processes share them (each job goes to exactly one of them)"
seq 1 1000 | "$BIN/bus/shmbus" --dir "$DIR" send queue://jobs -
"$BIN/bus/shmbus" --dir "$DIR" recv queue://jobs --count 500 --timeout 10000 --ack client >"$DIR/jobs-a.txt" 2>/dev/null &
JOBS_A=$!
"$BIN/bus/shmbus" --dir "$DIR" recv queue://jobs --count 500 --timeout 10000 --ack client >"$DIR/jobs-b.txt" 2>/dev/null &
JOBS_B=$!
wait "$JOBS_A" "$JOBS_B"
echo "-- consumer A took $(wc -l <"$DIR/jobs-a.txt") jobs, consumer B $(wc -l <"$DIR/jobs-b.txt");" \
  "distinct jobs: $(sort -n "$DIR/jobs-a.txt" "$DIR/jobs-b.txt" | uniq | wc -l) of 1000"

echo "== typed messages and a selector: three orders with properties; a consumer selects the EU ones over 100"
for o in "EU 250" "US 900" "EU 40"; do
  set -- $o
  "$BIN/bus/shmbus" --dir "$DIR" send queue://orders --property region=$1 --property amount:int=$2 \
    --correlation-id "order-$1-$2" "order $1 $2" 2>/dev/null
done
"$BIN/bus/shmbus" --dir "$DIR" recv queue://orders --count 1 --timeout 10000 --verbose \
  --selector "region = 'EU' AND amount > 100" 2>/dev/null | sed 's/^/   /'
echo "-- the other two stay in the queue for other consumers: $("$BIN/bus/shmbus" --dir "$DIR" recv queue://orders --count 2 --timeout 10000 2>/dev/null | tr '\n' ';')"

echo "== persistence: 5 PERSISTENT jobs sent with durable acks, 2 acknowledged, then shmbusd is killed (SIGKILL)"
echo "   and restarted on the same directory: the 3 unacknowledged come back, flagged redelivered"
"$BIN/bus/shmbus" --dir "$DIR" recv topic://audit --durable auditor --timeout 100 2>/dev/null || true  # creates the subscription
seq 1 5 | sed 's/^/ledger entry /' | "$BIN/bus/shmbus" --dir "$DIR" send queue://ledger --persistent --acks durable - 2>/dev/null
printf 'audit 1\naudit 2\n' | "$BIN/bus/shmbus" --dir "$DIR" send topic://audit --persistent - 2>/dev/null
"$BIN/bus/shmbus" --dir "$DIR" recv queue://ledger --count 2 --ack client 2>/dev/null | sed 's/^/   acknowledged: /'
# The daemon logs each acknowledgement as a settle record (fsync'ed within --fsync interval:10);
# wait for both (5 messages + 2 settlements: offset 7 durable) so that the kill finds them on disk.
for _ in $(seq 1 200); do
  "$BIN/bus/shmbus" --dir "$DIR" stat --json 2>/dev/null | grep -q '"durable_offset":7' && break
  sleep 0.01
done
kill -KILL "$DAEMON"; wait "$DAEMON" 2>/dev/null || true
"$BIN/daemon/shmbusd" --dir "$DIR" 2>>"$LOG" &
DAEMON=$!
wait_daemon
"$BIN/bus/shmbus" --dir "$DIR" recv queue://ledger --count 3 --timeout 10000 --verbose 2>/dev/null |
  awk '/^JMSRedelivered:/ { r = $2 } /^ledger/ { print "   after the restart: " $0 " (JMSRedelivered " r ")" }'
echo "-- the durable subscription 'auditor' of topic://audit gets what was published while it was away:"
"$BIN/bus/shmbus" --dir "$DIR" recv topic://audit --durable auditor --count 2 --timeout 10000 2>/dev/null | sed 's/^/   /'

echo "== shmbus stat"
"$BIN/bus/shmbus" --dir "$DIR" stat

echo "== replication: a leader shmbusd and a follower on loopback TCP; 5 PERSISTENT jobs sent with"
echo "   replicated acks (each returns once the follower has it), the leader is killed (SIGKILL),"
echo "   the follower is promoted and delivers all 5"
LEAD="$DIR/leader" FOLL="$DIR/follower"
mkdir -p "$LEAD" "$FOLL"
head -c 32 /dev/urandom | base64 >"$LEAD/replication.secret"
cp "$LEAD/replication.secret" "$FOLL/replication.secret"
chmod 600 "$LEAD/replication.secret" "$FOLL/replication.secret"
P1=$((20000 + RANDOM % 20000)); P2=$((P1 + 1))
"$BIN/daemon/shmbusd" --dir "$LEAD" --listen 127.0.0.1:$P1 --replicate-to 127.0.0.1:$P2 2>"$DIR/leader.log" &
LEADER=$!
"$BIN/daemon/shmbusd" --dir "$FOLL" --listen 127.0.0.1:$P2 --follow 127.0.0.1:$P1 2>"$DIR/follower.log" &
REPL_PIDS=($LEADER $!)
wait_daemon "$LEAD" "$DIR/leader.log"
wait_daemon "$FOLL" "$DIR/follower.log"
for _ in $(seq 1 200); do  # the follower joins the in-sync set
  "$BIN/bus/shmbus" --dir "$LEAD" stat --json 2>/dev/null | grep -q "\"in_sync\":\[\"127.0.0.1:$P1\",\"127.0.0.1:$P2\"\]" && break
  sleep 0.02
done
seq 1 5 | sed 's/^/replicated job /' | "$BIN/bus/shmbus" --dir "$LEAD" send queue://work --persistent --acks replicated -
"$BIN/bus/shmbus" --dir "$LEAD" stat | grep -A4 '^replication' | sed 's/^/   /'
kill -KILL "$LEADER"; wait "$LEADER" 2>/dev/null || true
"$BIN/bus/shmbus" --dir "$FOLL" promote | sed 's/^/   /'
"$BIN/bus/shmbus" --dir "$FOLL" recv queue://work --count 5 --timeout 10000 2>/dev/null | sed 's/^/   from the promoted follower: /'

echo "== latency: two-process ping-pong through shmbusd vs two raw atomics (the floor)"
"$BIN/bench/shmbus-bench" pingpong --quick --dir "$DIR"

echo "== queue hand-off latency (acknowledged) next to the topic, same run"
"$BIN/bench/shmbus-bench" queue-latency --quick --dir "$DIR"

echo "== daemon log"
sed 's/^/   /' "$LOG"
