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
