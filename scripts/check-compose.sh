#!/usr/bin/env bash
# Checks docker-compose.yml without a Docker engine: Debian's docker-compose parses and validates
# it (`config`), for the default stack and for the official-nsq profile, and the services, images
# and files the sample needs are there. Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker-compose >/dev/null; then
  echo "check-compose: docker-compose not found (Debian: apt-get install docker-compose)" >&2
  exit 1
fi

fail() {
  echo "check-compose: $*" >&2
  exit 1
}

docker-compose -f docker-compose.yml config -q || fail "docker-compose.yml is not valid"
docker-compose -f docker-compose.yml --profile official-nsq config -q || fail "docker-compose.yml is not valid with --profile official-nsq"

resolved="$(docker-compose -f docker-compose.yml --profile official-nsq config)"
services="$(docker-compose -f docker-compose.yml --profile official-nsq config --services)"
for service in mysql broker order-service points-service nsqadmin nsqd nsqlookupd nsqadmin-official order-service-official points-service-official; do
  grep -qx "$service" <<<"$services" || fail "service $service is missing"
done
for image in mysql:8.0 nsqio/nsq:v1.3.0; do
  grep -q "image: $image" <<<"$resolved" || fail "image $image is not used"
done
grep -q -- "--lookupd-http-address=broker:4161" <<<"$resolved" || fail "nsqadmin is not pointed at the broker's lookupd"
grep -q "condition: service_healthy" <<<"$resolved" || fail "no depends_on health conditions"
for file in Dockerfile docker/mysql-init.sql; do
  [[ -f "$file" ]] || fail "$file is missing"
done
echo "check-compose: docker-compose.yml OK ($(wc -l <<<"$services") services)"
