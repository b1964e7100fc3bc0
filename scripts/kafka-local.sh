#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft) on 127.0.0.1:9092 for development, tests and the demo.
#
#   scripts/kafka-local.sh start [--fresh]   fetch (first time), format and start; returns once it accepts connections
#   scripts/kafka-local.sh stop              stop the broker this script started (and nothing else)
#   scripts/kafka-local.sh status
#
# The pinned release (scripts/kafka/pom.xml) and its runtime jars come from Maven
# Central through `mvn dependency:copy-dependencies` and are cached under
# ~/.cache/riskwatch/kafka-<version>. Data, logs and the pid file live in
# $RISKWATCH_KAFKA_DIR (default: .kafka-local/ in the checkout). Needs Java 17.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pom="$root/scripts/kafka/pom.xml"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
cache="${RISKWATCH_CACHE:-$HOME/.cache/riskwatch}/kafka-$version"
dir="${RISKWATCH_KAFKA_DIR:-$root/.kafka-local}"
port="${RISKWATCH_KAFKA_PORT:-9092}"
controller_port="${RISKWATCH_KAFKA_CONTROLLER_PORT:-9093}"
pidfile="$dir/kafka.pid"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

fetch() {
    [ -f "$cache/libs/kafka_2.13-$version.jar" ] && return
    echo "fetching Apache Kafka $version from Maven Central into $cache" >&2
    rm -rf "$cache/libs.tmp"
    mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$cache/libs.tmp" >&2
    rm -rf "$cache/libs"
    mv "$cache/libs.tmp" "$cache/libs"
}

configure() {
    mkdir -p "$dir/data" "$dir/logs"
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# A killed worker's open transaction is aborted at the first check after it
# times out; workers recovering state wait for that (default check: every 10 s).
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS
    cat > "$dir/log4j2.properties" <<'LOG'
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
LOG
}

jvm() {
    jvm_cmd=(java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
             -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir/logs"
             -cp "$cache/libs/*")
}

start() {
    if running; then
        echo "kafka already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"
        return
    fi
    if listening; then
        echo "port $port is taken by another process; not starting" >&2
        exit 1
    fi
    [ "${1:-}" = "--fresh" ] && rm -rf "$dir/data"
    fetch
    configure
    jvm
    if [ ! -f "$dir/data/meta.properties" ]; then
        "${jvm_cmd[@]}" kafka.tools.StorageTool format -t "$("${jvm_cmd[@]}" kafka.tools.StorageTool random-uuid)" \
            -c "$dir/server.properties" >"$dir/logs/format.out" 2>&1 || { cat "$dir/logs/format.out" >&2; exit 1; }
    fi
    nohup "${jvm_cmd[@]}" kafka.Kafka "$dir/server.properties" >"$dir/logs/kafka.out" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 120); do
        if listening; then
            echo "kafka $version started (pid $(cat "$pidfile")) on 127.0.0.1:$port"
            return
        fi
        if ! running; then
            echo "kafka exited during start-up; see $dir/logs" >&2
            tail -20 "$dir/logs/kafka.out" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    echo "kafka did not accept connections within 60 s; see $dir/logs" >&2
    exit 1
}

stop() {
    if ! running; then
        echo "kafka not running (no live pid in $pidfile)"
        rm -f "$pidfile"
        return
    fi
    pid="$(cat "$pidfile")"
    kill "$pid"
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "kafka stopped"; return; }
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    echo "kafka killed after 30 s"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    status) if running; then echo "running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; else echo "not running"; exit 1; fi ;;
    *) echo "usage: $0 start [--fresh] | stop | status" >&2; exit 2 ;;
esac
