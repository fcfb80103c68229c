//! Gives the binaries an rpath to the shared libraries they link (libduckdb.so, libtorch),
//! so that they run without LD_LIBRARY_PATH. `$ORIGIN/lib` serves the container layout
//! (binary + lib/ next to it).
use std::path::Path;

fn main() {
    // The git revision recorded with every experiment ("unknown" outside a checkout).
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=COINCAST_GIT_REVISION={revision}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        let dir = Path::new(&dir);
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
        // Where scripts/fetch-duckdb.sh put the lake's extensions, beside libduckdb: the binary's
        // last resort after lake.extension_dir and lib/duckdb-extensions beside it (the image).
        println!(
            "cargo:rustc-env=COINCAST_BUILD_EXTENSION_DIR={}",
            dir.join("extensions").display()
        );
    }
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        let lib = Path::new(&dir).join("lib");
        let lib = lib.canonicalize().unwrap_or(lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        // torch-sys gives the final binary no rpath, and with --as-needed the linker would drop
        // libtorch_cuda.so (no symbol of it is referenced), leaving CUDA unavailable on a GPU.
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/lib");
}
