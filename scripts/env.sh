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
