//! Repository-wide invariants checked mechanically: allowed edges between drover crates,
//! the `//!` header on every Rust file, and ARCHITECTURE.md naming every crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/tidy sits two levels below the repository root")
        .to_path_buf()
}

/// Workspace crates and, for each, the workspace crates it depends on (any dependency kind).
fn workspace_graph() -> BTreeMap<String, Vec<(String, Option<String>)>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| names.contains(d["name"].as_str().unwrap_or_default()))
                .map(|d| {
                    (
                        d["name"].as_str().unwrap_or_default().to_owned(),
                        d["kind"].as_str().map(str::to_owned),
                    )
                })
                .collect();
            (p["name"].as_str().expect("name").to_owned(), deps)
        })
        .collect()
}

/// Normal (non-dev) dependencies each crate may have on other workspace crates.
/// Test-only crates (`routeros-sim`, `drover-tidy`) are allowed as dev-dependencies only.
const ALLOWED: &[(&str, &[&str])] = &[
    ("routeros-proto", &[]),
    ("routeros-client", &["routeros-proto"]),
    ("routeros-sim", &["routeros-proto"]),
    ("drover-tidy", &[]),
    ("drover-model", &[]),
    ("drover-testkit", &[]),
    ("drover-migration", &[]),
    ("drover-store", &["drover-model", "drover-migration"]),
    ("drover-device", &["routeros-client", "drover-model"]),
    (
        "drover-node",
        &["drover-device", "drover-model", "routeros-client"],
    ),
    (
        "drover-server",
        &[
            "drover-device",
            "drover-model",
            "drover-node",
            "drover-store",
            "drover-migration",
            "routeros-client",
            "routeros-proto",
            "drover-auth",
            "drover-api",
            "drover-cluster",
        ],
    ),
    ("drover-auth", &["drover-model"]),
    ("drover-cluster", &["drover-model"]),
    (
        "drover-api",
        &[
            "drover-auth",
            "drover-model",
            "drover-store",
            "drover-node",
            "drover-device",
        ],
    ),
    (
        "drover-benches",
        &[
            "routeros-proto",
            "routeros-client",
            "drover-model",
            "drover-device",
            "drover-node",
            "drover-auth",
        ],
    ),
];

const TEST_ONLY: &[&str] = &["routeros-sim", "drover-tidy", "drover-testkit"];

#[test]
fn crate_graph_follows_the_architecture() {
    let graph = workspace_graph();
    for (krate, deps) in &graph {
        let allowed = ALLOWED
            .iter()
            .find(|(name, _)| name == krate)
            .unwrap_or_else(|| {
                panic!("crate {krate} is not in tidy's ALLOWED map: add it, and to ARCHITECTURE.md")
            })
            .1;
        for (dep, kind) in deps {
            let dev = kind.as_deref() == Some("dev");
            if TEST_ONLY.contains(&dep.as_str()) {
                assert!(
                    dev,
                    "{krate} depends on test-only crate {dep} outside dev-dependencies"
                );
                continue;
            }
            assert!(
                dev || allowed.contains(&dep.as_str()),
                "{krate} must not depend on {dep} (see ARCHITECTURE.md, code map)"
            );
        }
    }
}

#[test]
fn protocol_crate_does_no_io() {
    let manifest = std::fs::read_to_string(repo_root().join("actors/routeros-proto/Cargo.toml"))
        .expect("proto manifest");
    for banned in ["tokio", "async-std", "mio", "rustls"] {
        assert!(
            !manifest.lines().any(|l| l.trim_start().starts_with(banned)),
            "routeros-proto must stay sans-IO but depends on {banned}"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(
                name.as_ref(),
                "target" | "node_modules" | ".git" | ".venv" | "corpus" | "artifacts"
            ) {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_says_what_it_is_for() {
    let mut files = Vec::new();
    rust_files(&repo_root(), &mut files);
    assert!(!files.is_empty());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.lines().take(5).any(|l| l.starts_with("//!"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! line: {missing:?}"
    );
}

#[test]
fn architecture_names_every_crate() {
    let arch = std::fs::read_to_string(repo_root().join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md exists");
    for krate in workspace_graph().keys() {
        assert!(
            arch.contains(&format!("`{krate}`")),
            "ARCHITECTURE.md does not mention `{krate}`"
        );
    }
}
