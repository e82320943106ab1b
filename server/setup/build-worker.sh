#!/usr/bin/env bash
# Builds mediasoup-worker from the mediasoup npm tarball against Debian's libraries, with no
# download but the npm registry, Debian's packages and pip's configured index (meson, ninja).
#
#   build-worker.sh VERSION OUT_BINARY
#
# Used by setup.mjs only when the official prebuilt worker cannot be downloaded. Steps:
#   1. Debian -dev packages the shims forward to (installed by setup.mjs before this runs).
#   2. meson >= 1.1 and ninja in a private venv (Debian bookworm's meson 1.0.1 is too old).
#   3. `npm pack mediasoup@VERSION` for the worker sources.
#   4. make-shims.sh: every meson subproject forwards to the Debian library via pkg-config,
#      plus two compatibility headers (see the comments in make-shims.sh).
#   5. meson setup --wrap-mode=nodownload; ninja (progress shown); strip.
set -euo pipefail
VER="$1"; OUT="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="${STAGEGATE_BUILD_DIR:-${TMPDIR:-/tmp}/stagegate-worker-build}"
mkdir -p "$WORK" "$(dirname "$OUT")"
step() { printf '[worker-build] %s\n' "$*"; }

# Two setups at once (two checkouts, a test and `npm start`) share $WORK: the second waits for
# the first and then uses the binary it built.
exec 9>"$WORK/lock"
if ! flock -n 9; then
  step "another build of the worker is running; waiting for it"
  flock 9
fi
if [ -x "$OUT" ]; then step "built meanwhile: $OUT"; exit 0; fi

if [ ! -x "$WORK/venv/bin/meson" ]; then
  step "creating a python venv with meson and ninja"
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q --retries 0 --timeout 10 'meson>=1.1' ninja
fi
export PATH="$WORK/venv/bin:$PATH"

step "fetching mediasoup@$VER sources from the npm registry"
cd "$WORK"
rm -rf "src-$VER" && mkdir "src-$VER"
npm pack "mediasoup@$VER" --silent >/dev/null
tar xzf "mediasoup-$VER.tgz" -C "src-$VER"
PKG="$WORK/src-$VER/package"

step "creating subproject shims onto Debian's libraries"
"$HERE/make-shims.sh" "$PKG" >/dev/null

step "configuring (meson, no downloads)"
cd "$PKG/worker"
EXTRA=()
grep -q ms_disable_liburing meson_options.txt && EXTRA+=(-Dms_disable_liburing=true)
meson setup --wrap-mode=nodownload --buildtype release -Db_ndebug=true "${EXTRA[@]}" build >/dev/null
# Older versions lack an order dependency on the generated FlatBuffers headers: generate them first.
# (targets listed into a variable first: `grep -q` on a pipe would SIGPIPE ninja under pipefail)
TARGETS="$(ninja -C build -t targets all)"
if grep -q '^fbs/FBS:' <<<"$TARGETS"; then ninja -C build fbs/FBS >/dev/null; fi

step "compiling with $(nproc) jobs (3 to 5 minutes on 2 cores)"
# ninja prints one "[n/m] ..." line per compiled file: that is the progress.
if ! ninja -C build -j"$(nproc)" mediasoup-worker 2>&1 | tee "$WORK/ninja.log" \
    | while IFS= read -r line; do
        # one "[n/m] ..." line per compiled file; show every 25th
        if [[ $line =~ ^\[([0-9]+)/([0-9]+)\] ]] && { (( BASH_REMATCH[1] % 25 == 0 )) || [[ ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]]; }; then
          echo "[worker-build] compiled ${BASH_REMATCH[1]} of ${BASH_REMATCH[2]} files"
        fi
      done; then
  tail -n 60 "$WORK/ninja.log" >&2
  echo "[worker-build] compile failed; full log: $WORK/ninja.log" >&2
  exit 1
fi
strip -o "$OUT.tmp.$$" build/mediasoup-worker
mv "$OUT.tmp.$$" "$OUT"
step "built $OUT"
