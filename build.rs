//! Gives the binaries an rpath to the shared libraries they link (libduckdb.so, later libtorch),
//! so that they run without LD_LIBRARY_PATH. `$ORIGIN/lib` serves the container layout
//! (binary + lib/ next to it).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        let dir = Path::new(&dir);
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/lib");
}
