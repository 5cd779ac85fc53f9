# Sourced by scripts/*: where Syncline's tools and build live on this machine.
# One persistent cache outside the checkout, so every clone reuses one build.
: "${SYNCLINE_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/syncline}"
: "${CARGO_TARGET_DIR:=$SYNCLINE_CACHE/target}"
DUCKDB_VERSION=1.5.6
DUCKDB_NPM_PACKAGE="@duckdb/node-bindings-linux-x64@1.5.6-r.1"
: "${DUCKDB_LIB_DIR:=$SYNCLINE_CACHE/duckdb-$DUCKDB_VERSION}"
export SYNCLINE_CACHE CARGO_TARGET_DIR DUCKDB_LIB_DIR
export DUCKDB_DOWNLOAD_LIB=0
export LD_LIBRARY_PATH="$DUCKDB_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# Clippy lints this workspace's crates while they are built (Cargo's
# workspace wrapper, which `cargo clippy` itself uses), so the lint pass and
# the test build are one build: `cargo clippy` compiles the libraries this
# workspace depends on a second time in check mode (most of the 15 minutes
# its pass took in a cold 57-minute `.ci/run` on 2 cores). Dependencies build
# as without it; Cargo keeps the workspace's own crates apart by wrapper, so
# a plain `cargo build` in the same target folder builds a copy of those.
# Lints are warnings here (a newer toolchain's new lint never stops the
# demo); `scripts/test` refuses a build that warns. A release build leaves
# the wrapper out (`without_lints`): clippy's driver keeps MIR unoptimised.
if [ -z "${RUSTC_WORKSPACE_WRAPPER+set}" ]; then
  if SYNCLINE_CLIPPY_DRIVER=$(rustup which clippy-driver 2>/dev/null) &&
    "$SYNCLINE_CLIPPY_DRIVER" -V >/dev/null 2>&1; then
    export RUSTC_WORKSPACE_WRAPPER="$SYNCLINE_CLIPPY_DRIVER"
    export SYNCLINE_LINTS_IN_BUILD=1
  fi
fi

# Runs a command with no lint wrapper (for release builds).
without_lints() {
  env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS "$@"
}

# Installs libduckdb.so from the npm registry (DuckDB's own Node bindings ship
# it) unless it is already there. Idempotent.
ensure_libduckdb() {
  [ -f "$DUCKDB_LIB_DIR/libduckdb.so" ] && return 0
  command -v npm >/dev/null || { echo "npm is needed to fetch libduckdb.so (apt-get install npm)" >&2; return 1; }
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$DUCKDB_NPM_PACKAGE" >/dev/null) || { rm -rf "$tmp"; return 1; }
  mkdir -p "$DUCKDB_LIB_DIR"
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/libduckdb.so
  mv "$tmp/package/libduckdb.so" "$DUCKDB_LIB_DIR/libduckdb.so"
  rm -rf "$tmp"
}

# The shared build serves every clone, but Cargo names the artifacts of this
# workspace's own crates the same in every clone and trusts them if the files
# of the clone that built them are unchanged. So when another clone built
# here last, this clone's crates are rebuilt (dependencies stay).
claim_target_dir() {
  local marker="$CARGO_TARGET_DIR/.syncline-checkout" here
  here=$(pwd -P)
  mkdir -p "$CARGO_TARGET_DIR"
  if [ -f "$marker" ] && [ "$(cat "$marker")" != "$here" ]; then
    echo "env: the build cache was last used by $(cat "$marker"); rebuilding this checkout's crates" >&2
    local pkgs=()
    local manifest
    for manifest in ./*/Cargo.toml ./connectors/*/Cargo.toml; do
      [ -f "$manifest" ] || continue
      pkgs+=(-p "$(awk -F'"' '/^\[package\]/{p=1} p && /^name = /{print $2; exit}' "$manifest")")
    done
    cargo clean --quiet "${pkgs[@]}" --profile dev 2>/dev/null || true
    cargo clean --quiet "${pkgs[@]}" --release 2>/dev/null || true
  fi
  echo "$here" > "$marker"
}

# Tools installed for this machine (tauri-driver for the desktop E2E).
: "${SYNCLINE_TOOLS:=$SYNCLINE_CACHE/tools}"
export SYNCLINE_TOOLS

# Installs the UI's npm packages when ui/package-lock.json changed since the
# last install, and builds ui/dist when a UI source is newer than it.
ensure_ui_build() {
  [ -f ui/package-lock.json ] || return 0
  local stamp=ui/node_modules/.syncline-lock-sha want
  want=$(sha256sum ui/package-lock.json | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "env: installing the UI's npm packages (npm ci)" >&2
    (cd ui && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" > "$stamp"
  fi
  if [ ! -f ui/dist/index.html ] || [ -n "$(find ui/src ui/index.html ui/package.json ui/vite.config.ts ui/tsconfig.json -newer ui/dist/index.html 2>/dev/null | head -n1)" ]; then
    echo "env: building the UI (ui/dist)" >&2
    (cd ui && npm run build --silent >&2)
  fi
}

# Builds every binary (syncline, the studio with its UI embedded, the bench)
# with the same package set and features as the test build, so no
# dependency is compiled twice: `-p one-package` unifies features
# differently and rebuilds hundreds of crates on a fresh machine.
build_binaries() {
  cargo build --locked --workspace --bins --features syncline-desktop/custom-protocol "$@" >&2
}
