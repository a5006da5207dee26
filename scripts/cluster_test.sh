#!/usr/bin/env bash
# The cluster test (scripts/cluster_test.py): redis-server, three `brief serve` replicas sharing it and nginx in
# front, all on loopback, with the tiny fixture models. redis-server and nginx come from Debian's packages
# (scripts/services.sh installs them when missing). Called by .ci/run after `cargo test`.
#   scripts/cluster_test.sh [path/to/brief] [cluster_test.py options]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
brief=${1:-$root/target/debug/brief}
[ $# -gt 0 ] && shift
[ -x "$brief" ] || { echo "cluster_test.sh: $brief is not built (cargo build first)" >&2; exit 2; }
bash "$root/scripts/services.sh"
export PATH="$PATH:/usr/sbin"
exec python3 "$root/scripts/cluster_test.py" --brief "$brief" "$@"
