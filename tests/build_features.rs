//! Building the tests or benches must not change the `convostat`
//! executable. Cargo builds it with the features that every dependency
//! edge of the build turns on: when tests or benches are built with the
//! release profile (`cargo test --release`, `cargo bench`), the
//! dev-dependencies' too, and it writes that executable over
//! `target/release/convostat`. A feature that changes a crate the
//! executable links changes the hash in every symbol's name, so the
//! linker no longer finds the functions `benches/hot_functions.txt` lists
//! to place first (`build.rs`), and the benchmarks run a slower
//! executable. `Cargo.toml` turns those features on for every build
//! ("Feature pins"); this test finds any that a dependency update adds.

use std::collections::BTreeMap;
use std::process::Command;

/// Every crate of the build with the features it is built with, by
/// `cargo tree` over the dependency edges `edges`: "name version (path)"
/// to "features".
fn crates(edges: &str) -> BTreeMap<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(&cargo)
        .args(["tree", "--offline", "--edges", edges, "--prefix", "none"])
        .args(["--format", "{p} [{f}]"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("{cargo} tree: {e}"));
    assert!(
        out.status.success(),
        "{cargo} tree --edges {edges}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| line.trim_end_matches(" (*)"))
        .filter_map(|line| {
            let (package, features) = line.rsplit_once(" [")?;
            Some((
                package.to_owned(),
                features.trim_end_matches(']').to_owned(),
            ))
        })
        .collect()
}

#[test]
fn dev_dependencies_change_no_crate_of_the_executable() {
    let executable = crates("normal,build");
    let with_dev = crates("normal,build,dev");
    assert!(
        executable.keys().any(|p| p.starts_with("convostat ")),
        "{executable:?}"
    );
    let changed: Vec<String> = executable
        .iter()
        .filter(|(package, features)| with_dev.get(*package) != Some(*features))
        .map(|(package, features)| {
            let dev = with_dev.get(package).map_or("(absent)", String::as_str);
            format!("{package}: [{features}], with the dev-dependencies [{dev}]")
        })
        .collect();
    assert!(
        changed.is_empty(),
        "turn these features on in Cargo.toml (\"Feature pins\"):\n{}",
        changed.join("\n")
    );
}
