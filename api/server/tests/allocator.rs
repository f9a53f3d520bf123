//! The `drover` binary runs on jemalloc with drover's settings (drover_node::allocator):
//! jemalloc's own report at exit, asked for through its environment variable, shows the
//! options in force.

use std::process::{Command, Stdio};

use drover_node::allocator::{OVERRIDE_ENV, SETTINGS};

#[test]
fn drover_runs_on_jemalloc_with_drovers_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .arg("export-openapi")
        // Only asks jemalloc to print its statistics at exit; names no setting drover makes.
        .env(OVERRIDE_ENV, "stats_print:true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drover export-openapi failed: {out:?}"
    );
    // The command still does its job.
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(spec.get("paths").is_some());
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains("jemalloc statistics"),
        "no jemalloc report: the global allocator is not jemalloc?\n{report}"
    );
    // jemalloc prints a changed option as `opt.NAME: <start value> (<key>: <value now>)`.
    for expected in [
        format!("(background_thread: {})", SETTINGS.background_thread),
        format!("(arenas.dirty_decay_ms: {})", SETTINGS.dirty_decay_ms),
        format!("(arenas.muzzy_decay_ms: {})", SETTINGS.muzzy_decay_ms),
    ] {
        assert!(
            report.contains(&expected),
            "{expected} not in jemalloc's report:\n{report}"
        );
    }
}
