//! Build script: links the `convostat` executable at a fixed address, with
//! the C library bound in (a static executable) and its hot functions
//! placed together, on Linux with glibc.
//! Only the binary is affected; the library a host application links is
//! built as before.
//!
//! **Fixed address** (`-no-pie`). A position-independent executable is
//! relocated by the dynamic loader at every start: about 63,000 pointers
//! in 1.4 MB of tables (vtables, string tables, chrono-tz's zone tables)
//! are rewritten, and each page they live on is copied first. On a 2-core
//! VM that was 2.4 ms of a 5.1 ms `convostat --version`. Linked at a fixed
//! address, those tables are final in the file and are mapped, not
//! copied. What this gives up: the executable's own code and data are not
//! placed at a random address (shared libraries, heap, stacks and
//! mappings still are), as with Go's default builds.
//!
//! **Static** (`-static`). A dynamically linked executable starts with the
//! dynamic loader mapping libc, libm and libgcc_s and binding their
//! symbols: about 0.3 ms of every process here, a sixth of a flow over a
//! Parquet file. Rust's own switch for this (`-C target-feature=+crt-static`)
//! applies to every crate of a build, procedural macros included, which
//! cannot be built with it unless `--target` is given. So the script does
//! what that switch does at the link, for this executable alone: it passes
//! `-static`, and in a directory searched first it places a `lib<name>.a`
//! for each C library the standard library names, each a linker script
//! that names the system's static archive (`libgcc_s`, which has none,
//! names the static unwinder `libgcc_eh` and `libgcc`, as `crt-static`
//! does). A `-l<name>` then finds the archive before any shared library,
//! with GNU ld and with lld alike.
//!
//! What a static glibc gives up: a host name in `serve --listen` is
//! resolved by the name service modules of the glibc it was built with;
//! an address (`127.0.0.1:8080`, the default) needs none.
//!
//! **Hot functions first** (`--symbol-ordering-file`). The executable's
//! code is 15 MB; a flow runs about 800 functions spread over 500 of its
//! pages, and each first touch of a page faults in the 16 around it, one by
//! one when the page cache holds the file as single pages (as it does for a
//! file the linker wrote, or one read back from disk), to be unmapped again
//! at exit. `benches/hot_functions.txt` lists the functions traced runs
//! call, most shared first (`benches/hot_functions.py` writes it), and the
//! linker places them in that order at the start of the code: about 190
//! pages. Flows over DuckDB's file, the executable read back from disk:
//! first conversation 1.92 → 1.55 ms, mid-file 3.48 → 3.05 ms (31
//! alternated runs, medians). Only rustc's own linker (`rust-lld`, the
//! default on x86_64 Linux since Rust 1.90) is given the list; with
//! another linker chosen (`RUSTC_LINKER`, or `linker`, `-fuse-ld` in
//! `RUSTFLAGS`) the executable is linked in the usual order. A name the
//! list holds that the build does not (another toolchain, or a function
//! renamed since) is left out; the crate is one codegen unit (Cargo.toml)
//! so that its functions' names do not change with its code.
//!
//! Where the system has no static C library (`cc -print-file-name` finds
//! no `libc.a`), the executable is linked dynamically, as before.
//! `CONVOSTAT_DYNAMIC=1 cargo build` links it dynamically anyway, and
//! `CONVOSTAT_PIE=1` keeps a position-independent, dynamic executable.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The C libraries the standard library links on Linux with glibc, and
/// the static archives each stands for in a static link.
const STATIC_ARCHIVES: &[(&str, &[&str])] = &[
    ("c", &["libc.a", "libgcc_eh.a", "libgcc.a"]),
    ("gcc_s", &["libgcc_eh.a", "libgcc.a"]),
    ("m", &["libm.a"]),
    ("pthread", &["libpthread.a"]),
    ("dl", &["libdl.a"]),
    ("rt", &["librt.a"]),
    ("util", &["libutil.a"]),
];

fn main() {
    println!("cargo:rerun-if-env-changed=CONVOSTAT_PIE");
    println!("cargo:rerun-if-env-changed=CONVOSTAT_DYNAMIC");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={HOT_FUNCTIONS}");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let target_features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let cli = std::env::var_os("CARGO_FEATURE_CLI").is_some();
    if !cli || target_os != "linux" || target_env != "gnu" {
        return;
    }
    if links_with_rust_lld() {
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let list = Path::new(&manifest).join(HOT_FUNCTIONS);
        if list.is_file() {
            println!(
                "cargo:rustc-link-arg-bin=convostat=-Wl,--symbol-ordering-file={}",
                list.display()
            );
            println!("cargo:rustc-link-arg-bin=convostat=-Wl,--no-warn-symbol-ordering");
        }
    }
    if std::env::var_os("CONVOSTAT_PIE").is_some() {
        return;
    }
    println!("cargo:rustc-link-arg-bin=convostat=-no-pie");
    // With `crt-static` already on, rustc links statically itself.
    let crt_static = target_features.split(',').any(|f| f == "crt-static");
    if crt_static || std::env::var_os("CONVOSTAT_DYNAMIC").is_some() {
        return;
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    match static_library_dir(&out_dir.join("static-libs")) {
        Some(dir) => {
            println!("cargo:rustc-link-arg-bin=convostat=-static");
            println!("cargo:rustc-link-arg-bin=convostat=-L{}", dir.display());
        }
        None => println!(
            "cargo:warning=no static C library found (`cc -print-file-name=libc.a`): \
             convostat is linked dynamically"
        ),
    }
}

/// The functions to place first, in order (see the module docs).
const HOT_FUNCTIONS: &str = "benches/hot_functions.txt";

/// Whether the executable is linked by rustc's own `rust-lld`, which reads
/// a symbol ordering file: rustc's default on x86_64 Linux with glibc from
/// Rust 1.90 on, unless the build chooses a linker.
fn links_with_rust_lld() -> bool {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64")
        || std::env::var_os("RUSTC_LINKER").is_some()
    {
        return false;
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let chooses_linker = flags.split('\x1f').any(|f| {
        f.contains("linker") || f.contains("fuse-ld") || f.contains("link-self-contained")
    });
    if chooses_linker {
        return false;
    }
    // `rustc 1.95.0 (59807616e 2026-04-14)`
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let Ok(output) = Command::new(rustc).arg("-V").output() else {
        return false;
    };
    let version = String::from_utf8_lossy(&output.stdout);
    let mut parts = version
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}

/// Writes the linker scripts of [`STATIC_ARCHIVES`] into `dir`, or returns
/// `None` when an archive they name is not installed.
fn static_library_dir(dir: &Path) -> Option<PathBuf> {
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".to_owned());
    std::fs::create_dir_all(dir).ok()?;
    for (name, archives) in STATIC_ARCHIVES {
        let mut paths = Vec::with_capacity(archives.len());
        for archive in *archives {
            let path = archive_path(&linker, archive)?;
            paths.push(format!("\"{}\"", path.display()));
        }
        let script = format!("GROUP ( {} )\n", paths.join(" "));
        std::fs::write(dir.join(format!("lib{name}.a")), script).ok()?;
    }
    Some(dir.to_owned())
}

/// Where the C compiler driver finds `archive`, if it is installed (the
/// driver prints the bare name back when it is not).
fn archive_path(linker: &str, archive: &str) -> Option<PathBuf> {
    let output = Command::new(linker)
        .arg(format!("-print-file-name={archive}"))
        .output()
        .ok()?;
    let printed = String::from_utf8(output.stdout).ok()?;
    let path = PathBuf::from(printed.trim());
    if !output.status.success() || !path.is_absolute() || !path.is_file() {
        return None;
    }
    // A path with a quote cannot be named in a linker script.
    if path.to_str()?.contains('"') {
        return None;
    }
    path.canonicalize().ok()
}
