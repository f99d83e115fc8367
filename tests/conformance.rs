//! The external conformance suite: scim2-tester (PyPI) against the live bridge on a real
//! slapd, configured with config.example.toml. `bash scripts/test.sh` installs the suite into
//! target/scim2-tester-venv (or set SCIM2_TESTER_PYTHON to a Python that has it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly

mod common;

use std::path::PathBuf;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn scim2_tester_finds_no_undocumented_failure() {
    let python = std::env::var_os("SCIM2_TESTER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/scim2-tester-venv/bin/python"));
    assert!(
        python.exists(),
        "scim2-tester is not installed ({} missing). Run `bash scripts/test.sh`, which installs it, or:\n  \
         python3 -m venv target/scim2-tester-venv && \
         target/scim2-tester-venv/bin/pip install -r tests/conformance/requirements.txt",
        python.display()
    );
    let slapd = Slapd::start();
    let bridge = Bridge::start(&slapd).await;
    let base = format!("{}/", bridge.base);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(repo().join("tests/conformance/run_scim2_tester.py"))
            .arg(base)
            .arg(TOKEN)
            .output()
            .expect("run scim2-tester")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "scim2-tester reported failures:\n{}\n{}",
        stdout
            .lines()
            .filter(|l| l.starts_with("FAIL") || l.starts_with("conformance"))
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("conformance:") && !summary.contains(" 0 passed"),
        "{summary}"
    );
}
