//! Tauri's build step, and the directory of the prebuilt `libduckdb.so` as
//! the binary's rpath (as `cli/build.rs` does), so the app runs without
//! `LD_LIBRARY_PATH`.
fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
    }
    tauri_build::build();
}
