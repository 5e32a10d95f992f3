#!/usr/bin/env bash
# Builds every example wasm strategy into $CARGO_TARGET_DIR/wasm/ (default target/wasm/):
#   sma_cross_as.wasm, probe_as.wasm    AssemblyScript (the compiler pinned in
#                                       sdk/assemblyscript/package.json, installed under
#                                       target/wasm-sdk/ with npm ci: never globally)
#   sma_cross_c.wasm, probe_c.wasm      C (Debian's clang --target=wasm32 and lld's wasm-ld)
#   minimal.wasm                        WAT (wabt's wat2wasm)
# and checks each module imports nothing but "tickline" functions and exports memory,
# tl_abi_version, tl_buffer, tl_init and tl_on_event (the host refuses anything else).
#
# Idempotent: a module newer than all its sources is not rebuilt. A language whose toolchain is
# missing is skipped with a NOTICE (after one best-effort apt-get install of clang/lld/wabt when
# running as root or with password-less sudo; set TICKLINE_WASM_NO_INSTALL=1 to skip that); a
# compile error or a module with a foreign import fails the script.
#
# Usage: strategies/wasm/build.sh [--quiet]
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/wasm"
SDK="$TARGET/wasm-sdk"
QUIET=0
[ "${1:-}" = "--quiet" ] && QUIET=1
mkdir -p "$OUT" "$SDK"

say() { [ "$QUIET" = 1 ] || echo "$@"; }
notice() { echo "NOTICE: $*" >&2; }

# Several tests may run this at once: one build at a time.
if command -v flock >/dev/null && [ -z "${TICKLINE_WASM_LOCKED:-}" ]; then
    export TICKLINE_WASM_LOCKED=1
    exec flock "$SDK/.lock" "$0" "$@"
fi

# True when $1 is missing or older than any of the other arguments.
stale() {
    local out="$1"
    shift
    [ -f "$out" ] || return 0
    local src
    for src in "$@"; do
        [ "$src" -nt "$out" ] && return 0
    done
    return 1
}

# One best-effort apt-get install of the Debian packages named, never failing the build.
tried_apt=0
apt_install() {
    [ -z "${TICKLINE_WASM_NO_INSTALL:-}" ] || return 0
    [ "$tried_apt" = 0 ] || return 0
    tried_apt=1
    command -v apt-get >/dev/null || return 0
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null && sudo -n true 2>/dev/null || return 0
        sudo="sudo -n"
    fi
    notice "installing $* with apt-get (best effort)"
    timeout 300 $sudo apt-get install -y -q "$@" >"$SDK/apt.log" 2>&1 ||
        notice "apt-get install $* failed (see $SDK/apt.log)"
}

need_debs=()
command -v clang >/dev/null || need_debs+=(clang)
command -v wasm-ld >/dev/null || need_debs+=(lld)
command -v wat2wasm >/dev/null || need_debs+=(wabt)
[ "${#need_debs[@]}" = 0 ] || apt_install "${need_debs[@]}"

# ---- the module check ------------------------------------------------------------------------

check_node() {
    node -e '
const fs = require("fs");
const m = new WebAssembly.Module(fs.readFileSync(process.argv[1]));
const bad = WebAssembly.Module.imports(m).filter(i => i.module !== "tickline" || i.kind !== "function");
const have = new Set(WebAssembly.Module.exports(m).map(e => e.name));
const missing = ["memory", "tl_abi_version", "tl_buffer", "tl_init", "tl_on_event"].filter(n => !have.has(n));
if (bad.length || missing.length) {
  console.error(process.argv[1] + ": foreign imports " + JSON.stringify(bad) + ", missing exports " + JSON.stringify(missing));
  process.exit(1);
}' "$1"
}

check_objdump() {
    local f="$1" dump
    dump="$(wasm-objdump -x -j Import -j Export "$f")"
    if echo "$dump" | grep -E '^ - (func|memory|table|global)\[[0-9]+\].* <- ' | grep -vq ' <- tickline\.'; then
        echo "$f: imports something other than tickline functions:" >&2
        echo "$dump" >&2
        return 1
    fi
    local name
    for name in memory tl_abi_version tl_buffer tl_init tl_on_event; do
        echo "$dump" | grep -q "-> \"$name\"" || { echo "$f: no export $name" >&2; return 1; }
    done
}

check() {
    if command -v node >/dev/null; then
        check_node "$1"
    elif command -v wasm-objdump >/dev/null; then
        check_objdump "$1"
    else
        notice "neither node nor wasm-objdump: $1's imports are not checked here (the host still checks them at deploy)"
    fi
}

built=()

# ---- C -----------------------------------------------------------------------------------------

C_SDK=("$HERE/include/tickline.h" "$HERE/sdk/c/tickline_sdk.h" "$HERE/sdk/c/tickline_sdk.c")
if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null; then
    notice "clang or wasm-ld (Debian: apt-get install clang lld) not found: the C examples are skipped"
else
    for name in sma_cross probe; do
        src="$HERE/examples/c/$name.c"
        out="$OUT/${name}_c.wasm"
        if stale "$out" "$src" "${C_SDK[@]}" "$0"; then
            say "C    $name -> $out"
            clang --target=wasm32 -nostdlib -O2 -mbulk-memory -std=c11 -Wall -Wextra -Werror \
                -I "$HERE/include" -I "$HERE/sdk/c" \
                -Wl,--no-entry -Wl,--allow-undefined -Wl,--strip-all \
                -o "$out.tmp" "$src" "$HERE/sdk/c/tickline_sdk.c"
            check "$out.tmp"
            mv "$out.tmp" "$out"
        fi
        built+=("$out")
    done
fi

# ---- AssemblyScript ----------------------------------------------------------------------------

AS_PKG="$HERE/sdk/assemblyscript"
AS_DIR="$SDK/assemblyscript"
ASC="$AS_DIR/node_modules/assemblyscript/bin/asc.js"
as_ready=0
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    notice "node/npm not found: the AssemblyScript examples are skipped"
else
    mkdir -p "$AS_DIR"
    if stale "$AS_DIR/.installed" "$AS_PKG/package.json" "$AS_PKG/package-lock.json" || [ ! -f "$ASC" ]; then
        say "npm  installing the pinned AssemblyScript compiler under $AS_DIR"
        cp "$AS_PKG/package.json" "$AS_PKG/package-lock.json" "$AS_DIR/"
        if (cd "$AS_DIR" && npm ci --no-audit --no-fund --loglevel=error >"$AS_DIR/npm.log" 2>&1); then
            touch "$AS_DIR/.installed"
            as_ready=1
        else
            notice "npm ci failed (no registry?), see $AS_DIR/npm.log: the AssemblyScript examples are skipped"
        fi
    else
        as_ready=1
    fi
fi
if [ "$as_ready" = 1 ]; then
    for name in sma_cross probe; do
        src="$HERE/examples/assemblyscript/$name.ts"
        out="$OUT/${name}_as.wasm"
        if stale "$out" "$src" "$AS_PKG/tickline.ts" "$AS_DIR/.installed" "$0"; then
            say "AS   $name -> $out"
            # The abort alias is a path relative to the working directory.
            (cd "$HERE" && node "$ASC" "examples/assemblyscript/$name.ts" \
                --runtime stub --use abort=sdk/assemblyscript/tickline/tlAbort \
                -O3 --noAssert -o "$out.tmp")
            check "$out.tmp"
            mv "$out.tmp" "$out"
        fi
        built+=("$out")
    done
fi

# ---- WAT ---------------------------------------------------------------------------------------

if ! command -v wat2wasm >/dev/null; then
    notice "wat2wasm (Debian: apt-get install wabt) not found: minimal.wat is not built"
else
    src="$HERE/examples/wat/minimal.wat"
    out="$OUT/minimal.wasm"
    if stale "$out" "$src" "$0"; then
        say "WAT  minimal -> $out"
        wat2wasm "$src" -o "$out.tmp"
        check "$out.tmp"
        mv "$out.tmp" "$out"
    fi
    built+=("$out")
fi

for f in "${built[@]}"; do
    say "$(wc -c <"$f" | tr -d ' ') bytes  $f"
done
