#!/usr/bin/env bash
# Fuzz smoke run: every cargo-fuzz target of wsdrain for N seconds each.
#
#   fuzz/smoke.sh            # 20 s per target
#   fuzz/smoke.sh 300        # 5 min per target
#   FUZZ_TARGETS=decode fuzz/smoke.sh 60
#
# Installs cargo-fuzz (from crates.io) if it is missing; needs a nightly
# toolchain (`cargo +nightly`). Starts from the committed seeds
# (fuzz/seeds/<target>/) plus the local, git-ignored corpus
# (fuzz/corpus/<target>/, where new inputs go). Exits non-zero as soon as a
# target crashes (panic, oracle violation, hang past the op timeouts, ...);
# the crashing input is in fuzz/artifacts/<target>/, and
# `cargo +nightly fuzz fmt <target> <file>` prints it (for op_model: the
# operation sequence).
set -euo pipefail

seconds="${1:-20}"
case "$seconds" in
'' | *[!0-9]*)
	echo "usage: $0 [SECONDS_PER_TARGET]" >&2
	exit 2
	;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! cargo +nightly --version >/dev/null 2>&1; then
	echo "fuzz smoke: a nightly toolchain is needed (cargo +nightly)" >&2
	exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz smoke: installing cargo-fuzz" >&2
	cargo install --locked cargo-fuzz
fi

targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
for target in $targets; do
	corpus="fuzz/corpus/$target"
	seeds="fuzz/seeds/$target"
	mkdir -p "$corpus"
	dirs=("$corpus")
	if [ -d "$seeds" ]; then
		dirs+=("$seeds")
	fi
	echo "fuzz smoke: $target for ${seconds}s" >&2
	# -timeout: one input may not run for more than 20 s (a hang in
	# op_model is caught much earlier by its own timeouts).
	if ! cargo +nightly fuzz run "$target" "${dirs[@]}" -- \
		-max_total_time="$seconds" -timeout=20 -print_final_stats=1; then
		echo "fuzz smoke: $target FAILED; input in fuzz/artifacts/$target/" >&2
		exit 1
	fi
done
echo "fuzz smoke: all targets ran ${seconds}s without a crash" >&2
