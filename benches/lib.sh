# Shared by the benchmark scripts (sourced after `cd` to the repository root).

# wait_ready LOG: waits up to 10 s for `postern serve` to print `ready` into LOG; on
# failure prints LOG to standard error and returns 1.
wait_ready() {
  for _ in $(seq 1 100); do grep -q '^ready$' "$1" 2>/dev/null && return 0; sleep 0.1; done
  cat "$1" >&2
  return 1
}
