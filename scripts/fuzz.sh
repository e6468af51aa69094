#!/usr/bin/env bash
# Runs fuzz targets one after another (one fuzzer process at a time: -jobs/-workers
# are never raised), each for SECONDS from its committed seeds (fuzz/seeds/<target>)
# plus the local corpus it grows (fuzz/corpus/<target>, not committed). Prints one
# summary line per target from libFuzzer's final stats; logs go to fuzz/logs/.
# A crash stops the run with a non-zero status; the input is in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh SECONDS TARGET...     (TARGET `python` is the atheris target)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=$1
shift
PY=${PY:-.venv/bin/python}
mkdir -p fuzz/logs
summary=()
for target in "$@"; do
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  log="fuzz/logs/$target.log"
  flags=(-max_total_time="$seconds" -print_final_stats=1 -timeout=20 -rss_limit_mb=2048
         -artifact_prefix="fuzz/artifacts/$target/")
  echo "fuzz: $target for ${seconds}s (log: $log)"
  start=$(date +%s)
  status=0
  if [[ $target == python ]]; then
    "$PY" fuzz/python/fuzz_reader.py "fuzz/corpus/$target" "fuzz/seeds/$target" "${flags[@]}" >"$log" 2>&1 || status=$?
  else
    cargo +nightly fuzz run -a "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- "${flags[@]}" >"$log" 2>&1 || status=$?
  fi
  elapsed=$(( $(date +%s) - start ))
  # The input files the ffi_reader and python targets write (libFuzzer exits without unwinding).
  rm -f /dev/shm/exitless-fuzz-ffi-* /dev/shm/exitless-fuzz-py-* "${TMPDIR:-/tmp}"/exitless-fuzz-{ffi,py}-*
  execs=$(grep -a 'stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
  units=$(find "fuzz/corpus/$target" -type f | wc -l)
  bytes=$(du -sb "fuzz/corpus/$target" | cut -f1)
  line="$target: ${elapsed}s, ${execs:-?} execs, corpus ${units} units (${bytes} bytes), exit ${status}"
  echo "fuzz: $line"
  summary+=("$line")
  if [[ $status != 0 ]]; then
    tail -40 "$log"
    echo "fuzz: $target FAILED; reproduce with the input in fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
done
printf 'fuzz summary:\n'
printf '  %s\n' "${summary[@]}"
