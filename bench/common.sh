# Sourced by the store benches (bench/store.sh, bench/auth.sh): their arguments, the
# load generator, the release server and the generator of full-size stores and request
# files (tests/examples/store_bench.rs). Sets repo, shared, port, secs, conc, dir, bin
# and gen.
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$repo/../shared}
port=$1; secs=${2:-5}; conc=${3:-64}
dir=${STORE_DIR:-/tmp/raida-store-bench}
bin=${TMPDIR:-/tmp}/raida-bench-bin
mkdir -p "$bin" "$dir"
gcc -O2 -o "$bin/loadgen" "$shared/bench/loadgen.c" -lz
cargo build --release -q -p raida-server --bin raida-server
cargo build --release -q -p raida-tests --example store_bench
gen=$repo/target/release/examples/store_bench
