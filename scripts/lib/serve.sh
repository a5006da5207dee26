# Sourced by the test scripts (browser_test.sh, feed_test.sh): starts a `brief serve` on a free loopback port and
# waits until it answers /health.
#   serve_brief LOG ARGS...   runs "$brief" serve --bind 127.0.0.1:0 ARGS with its log in LOG, and sets
#                             served_url and served_pid; fails, printing the log, if it is not up within 20 s.
serve_brief() {
  local log=$1
  shift
  "$brief" serve --bind 127.0.0.1:0 "$@" 2>"$log" &
  served_pid=$!
  served_url=""
  for _ in $(seq 1 200); do
    served_url=$(sed -n 's/^brief listening on //p' "$log" | head -n 1)
    if [ -n "$served_url" ] && curl -fs "$served_url/health" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "brief serve did not start within 20 s:"
  cat "$log"
  return 1
}
