//! Build script: links the `convostat` executable at a fixed address on
//! Linux with glibc (`-no-pie`), unless `CONVOSTAT_PIE` is set.
//!
//! A position-independent executable is relocated by the dynamic loader at
//! every start: about 63,000 pointers in 1.4 MB of tables (vtables,
//! string tables, chrono-tz's zone tables) are rewritten, and each page
//! they live on is copied first. On a 2-core VM that was 2.4 ms of a
//! 5.1 ms `convostat --version`, and a fifth of a `flow` query over a
//! Parquet file (about 10 ms in all). Linked at a fixed address,
//! those tables are final in the file and are mapped, not copied.
//!
//! What this gives up: the executable's own code and data are not placed
//! at a random address (shared libraries, heap, stacks and mappings still
//! are), as with Go's default builds. `CONVOSTAT_PIE=1 cargo build` keeps
//! a position-independent executable. Only the binary is affected; the
//! library a host application links is built as before.

fn main() {
    println!("cargo:rerun-if-env-changed=CONVOSTAT_PIE");
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let cli = std::env::var_os("CARGO_FEATURE_CLI").is_some();
    if cli
        && target_os == "linux"
        && target_env == "gnu"
        && std::env::var_os("CONVOSTAT_PIE").is_none()
    {
        println!("cargo:rustc-link-arg-bin=convostat=-no-pie");
    }
}
