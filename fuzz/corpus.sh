#!/usr/bin/env bash
# Builds the git-ignored seed corpora fuzz/corpus/<target>/ from the real captures in
# ../shared/data (TICKLINE_SHARED_DATA overrides it), never committed. Where the data is absent it
# prints a NOTICE and leaves the corpora empty (the committed fuzz/seeds/ still seed every target).
set -euo pipefail
cd "$(dirname "$0")"
data=${TICKLINE_SHARED_DATA:-../../shared/data}
targets=(binance_decode binance_diff decimal_roundtrip rest_parsers binance_api capture
         journal_bytes journal_torn config control binance_usdm_decode)
for t in "${targets[@]}"; do mkdir -p "corpus/$t"; done
spot="$data/binance-spot/btcusdt_20240808.gz"
usdm="$data/binance-usdm/btcusdt_20240808.gz"
if [[ ! -r $spot ]]; then
    echo "NOTICE: $spot not found; corpora from the real captures skipped (seeds only)"
    exit 0
fi
# One frame a file: every 40th line of each capture (about 3,400 frames, trades, bookTickers and
# depth diffs) and every REST snapshot, without the `<recv_ns> ` prefix.
split_frames() { # <gz> <prefix> <out dir>...
    local gz=$1 prefix=$2; shift 2
    for out in "$@"; do
        gzip -dc "$gz" | awk -v dir="$out" -v p="$prefix" '
            NR % 40 == 1 || index($0, "{\"lastUpdateId\"") {
                f = sprintf("%s/%s-%06d.json", dir, p, NR)
                sub(/^[0-9]+ /, ""); printf "%s", $0 > f; close(f)
            }'
    done
}
split_frames "$spot" spot corpus/binance_decode corpus/binance_diff
[[ -r $usdm ]] && split_frames "$usdm" usdm corpus/binance_decode corpus/binance_diff corpus/binance_usdm_decode
# The REST snapshots (large: several thousand levels) for the snapshot parser.
gzip -dc "$spot" | awk '/{"lastUpdateId"/ { sub(/^[0-9]+ /, ""); printf "%s", $0 > "corpus/rest_parsers/spot-snapshot.json" }'
# Prices and quantities as the captures print them, for the decimal target.
lines() { gzip -dc "$1" | sed -n "$2"; } # no early exit: no SIGPIPE under pipefail
lines "$spot" 1,2000p | grep -o '"p":"[0-9.]*","q":"[0-9.]*"' | sort -u | sed -n 1,200p |
    awk -F'"' '{ f = sprintf("corpus/decimal_roundtrip/spot-%03d.txt", NR); printf "%s %s", $4, $8 > f; close(f) }'
# Short slices of the line capture, plain and gzip, for the capture readers.
lines "$spot" 1,20p > corpus/capture/spot-head.txt
lines "$spot" 1000,1010p | gzip -c > corpus/capture/spot-slice.gz
# Coinbase: every 20th received frame of the cryptofeed capture and all its snapshots, without
# the `<ts>: ` prefix (connect and request lines skipped).
coinbase="$data/cryptofeed/COINBASE.ws.28.0"
mkdir -p corpus/coinbase_decode
if [[ -r $coinbase ]]; then
    awk '/^[0-9.]+: / && (NR % 20 == 1 || index($0, "\"type\":\"snapshot\"")) {
            f = sprintf("corpus/coinbase_decode/cb-%05d.json", NR)
            sub(/^[0-9.]+: /, ""); printf "%s", $0 > f; close(f)
        }' "$coinbase"
else
    echo "NOTICE: $coinbase not found; coinbase_decode corpus skipped (seeds only)"
fi
echo "coinbase_decode=$(ls corpus/coinbase_decode | wc -l)"
# OKX: every received frame of cryptofeed's v1 text capture, without the `<ts>: ` prefix.
okx="$data/cryptofeed/OKX.ws.1.0"
mkdir -p corpus/okx_decode
if [[ -r $okx ]]; then
    grep -v '^wss://' "$okx" | awk '{ f = sprintf("corpus/okx_decode/okx-%04d.json", NR); sub(/^[0-9.]+: /, ""); printf "%s", $0 > f; close(f) }'
fi
echo "corpora: $(for t in "${targets[@]}"; do printf '%s=%s ' "$t" "$(ls "corpus/$t" | wc -l)"; done)"
