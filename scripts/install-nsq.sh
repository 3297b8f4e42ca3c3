#!/usr/bin/env bash
# Builds the official NSQ 1.3.0 binaries (the reference peers of the compatibility tests and
# benchmarks) into .cache/nsq/bin, or into $NSQ_BIN_DIR when set.
# `go install github.com/nsqio/nsq/apps/nsqd@v1.3.0` cannot be used: nsq's go.mod carries a
# `replace` directive (judwhite/go-svc => mreiferson/go-svc), which `go install pkg@version`
# refuses. scripts/nsq-tools is a tiny module that requires nsq v1.3.0 with the same replace,
# and go.sum pins every module.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${NSQ_BIN_DIR:-$root/.cache/nsq/bin}
mkdir -p "$bin"
tools=(nsqd nsqlookupd nsqadmin to_nsq nsq_tail nsq_stat bench_writer bench_reader)
missing=0
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || missing=1; done
if [ "$missing" = 0 ] && "$bin/nsqd" --version 2>/dev/null | grep -q 'nsqd v1.3.0'; then
  echo "NSQ 1.3.0 binaries already in $bin"
  exit 0
fi
command -v go >/dev/null || { echo "install-nsq: Go is required (apt-get install golang-go)" >&2; exit 1; }
cd "$here/nsq-tools"
pkgs=()
for t in "${tools[@]}"; do
  case "$t" in
    bench_*) pkgs+=("github.com/nsqio/nsq/bench/$t") ;;
    *) pkgs+=("github.com/nsqio/nsq/apps/$t") ;;
  esac
done
GOFLAGS=-mod=mod go build -o "$bin/" "${pkgs[@]}"
"$bin/nsqd" --version
echo "NSQ binaries installed in $bin"
