#!/usr/bin/env bash
# ElasticMQ: a real SQS-compatible server (JVM) for local load tests; moto is fine for correctness but far too
# slow for load. The jars come from Maven Central: tools/elasticmq/pom.xml declares the one dependency
# (org.elasticmq:elasticmq-server_2.13) and maven-dependency-plugin copies it with its transitive jars into
# $TOOLS_DIR/elasticmq/<version>/lib. Maven's local repository (~/.m2) caches the downloads across clones.
# devstack/elasticmq.py (ElasticMQServer) starts it with
#   java -Dconfig.file=... -cp '$TOOLS_DIR/elasticmq/<version>/lib/*' org.elasticmq.server.Main
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

POM="$REPO_ROOT/tools/elasticmq/pom.xml"
# Single source of truth for the version: the pom's <elasticmq.version> property.
ELASTICMQ_VERSION="$(sed -n 's:.*<elasticmq.version>\([^<]*\)</elasticmq.version>.*:\1:p' "$POM")"
[ -n "$ELASTICMQ_VERSION" ] || { log "no <elasticmq.version> in $POM"; exit 1; }
DEST="$TOOLS_DIR/elasticmq/$ELASTICMQ_VERSION"
SERVER_JAR="$DEST/lib/elasticmq-server_2.13-$ELASTICMQ_VERSION.jar"

JAVA_ID="$(java -version 2>&1 | tr -s '[:space:]' ' ')" || JAVA_ID="none"
CDS_STAMP="$ELASTICMQ_VERSION $JAVA_ID"

# A class-data-sharing archive of the classes ElasticMQ loads at start-up roughly halves the JVM's start-to-ready
# time (measured ~5.6 s -> ~3.0 s on 2 busy cores). It is tied to the JDK build, hence its own stamp.
# devstack/elasticmq.py passes -XX:SharedArchiveFile when the file exists; a JVM that cannot use it ignores it.
build_cds_archive() {
  local work port="" pid
  log "building a class-data-sharing archive of ElasticMQ (faster start-ups; a few seconds)"
  work="$(mktemp -d)"
  cat >"$work/elasticmq.conf" <<CONF
include classpath("application.conf")
rest-sqs { enabled = true, bind-port = 0, bind-hostname = "127.0.0.1", sqs-limits = strict }
rest-stats { enabled = false, bind-port = 0, bind-hostname = "127.0.0.1" }
generate-node-address = true
queues { warmup-dlq {}, warmup { deadLettersQueue { name = "warmup-dlq", maxReceiveCount = 5 } } }
CONF
  rm -f "$DEST/elasticmq.jsa"
  java -XX:ArchiveClassesAtExit="$DEST/elasticmq.jsa" -Dconfig.file="$work/elasticmq.conf" \
    -cp "$DEST/lib/*" org.elasticmq.server.Main >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    port="$(sed -n 's/.*bind address 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/log" | head -n1)"
    if [ -n "$port" ] && grep -q 'ElasticMQ server .* started' "$work/log"; then break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -n "$port" ] && command -v curl >/dev/null 2>&1; then
    # A few calls over the JSON protocol so that the request-handling classes are archived too.
    for target in ListQueues GetQueueUrl SendMessage ReceiveMessage; do
      curl -fsS -o /dev/null -X POST "http://127.0.0.1:$port/" \
        -H 'Content-Type: application/x-amz-json-1.0' -H "X-Amz-Target: AmazonSQS.$target" \
        -d "{\"QueueName\":\"warmup\",\"QueueUrl\":\"http://127.0.0.1:$port/000000000000/warmup\",\"MessageBody\":\"x\"}" \
        || true
    done
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || true
  if [ -s "$DEST/elasticmq.jsa" ]; then
    stamp_set elasticmq-cds "$CDS_STAMP"
  else
    log "could not build the CDS archive (start-up will just be slower):"; tail -n 20 "$work/log" >&2
  fi
  rm -rf "$work"
}

if stamp_ok elasticmq "$ELASTICMQ_VERSION" && [ -f "$SERVER_JAR" ]; then
  if ! { stamp_ok elasticmq-cds "$CDS_STAMP" && [ -s "$DEST/elasticmq.jsa" ]; }; then
    build_cds_archive
  fi
  exit 0
fi

if ! command -v java >/dev/null 2>&1; then
  log "no Java runtime (java) on PATH: installing Debian's default-jre-headless for ElasticMQ"
  apt_install default-jre-headless
  command -v java >/dev/null 2>&1 || { log "still no java on PATH after installing default-jre-headless"; exit 1; }
fi
command -v mvn >/dev/null 2>&1 || { log "no Maven (mvn): installing Debian's maven to fetch the jars"; apt_install maven; }

log "fetching ElasticMQ $ELASTICMQ_VERSION and its jars from Maven Central (once; ~/.m2 caches them)"
staging="$(mktemp -d "$TOOLS_DIR/.elasticmq.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
# -f: the pom stays read-only in the repo; copy-dependencies of a pom-packaged project writes nothing beside it.
# Maven's output goes to a log (it is shown only on failure).
if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$staging/lib" >"$staging/mvn.log" 2>&1; then
  cat "$staging/mvn.log" >&2
  exit 1
fi
rm -f "$staging/mvn.log"
[ -f "$staging/lib/elasticmq-server_2.13-$ELASTICMQ_VERSION.jar" ] || {
  log "maven did not produce elasticmq-server_2.13-$ELASTICMQ_VERSION.jar"; exit 1;
}
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
chmod 755 "$staging"
mv "$staging" "$DEST"
trap - EXIT
stamp_set elasticmq "$ELASTICMQ_VERSION"
JAVA_ID="$(java -version 2>&1 | tr -s '[:space:]' ' ')"
CDS_STAMP="$ELASTICMQ_VERSION $JAVA_ID"
build_cds_archive
log "ElasticMQ $ELASTICMQ_VERSION installed in $DEST ($(find "$DEST/lib" -name '*.jar' | wc -l) jars)"
