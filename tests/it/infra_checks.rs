//! The generated stacks under `infra/` pass the checkers a security reviewer runs: cfn-lint with
//! no error or warning, `sam validate --lint`, and checkov with no failed check and a written
//! reason for every skipped one.
//!
//! `bash tests/run.sh` installs the pinned checkers and sets `TESSERA_CFN_LINT`, `TESSERA_SAM`
//! and `TESSERA_CHECKOV`; without them these tests fail and say so.

use std::path::PathBuf;
use std::process::{Command, Output};

use tessera_tests::repo_root;

fn tool(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests with `bash tests/run.sh`, which installs the checkers"
        )
    })
}

fn templates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo_root().join("infra"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".template.json"))
        .collect();
    out.sort();
    let names: Vec<String> = out
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "customers.template.json",
            "platform.template.json",
            "sales.template.json"
        ]
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn cfn_lint_finds_no_error_or_warning() {
    let out = Command::new(tool("TESSERA_CFN_LINT"))
        .args(templates())
        .output()
        .unwrap();
    assert!(out.status.success(), "cfn-lint: {}", text(&out));
    assert_eq!(text(&out).trim(), "", "cfn-lint printed findings");
}

#[test]
fn sam_validates_every_stack() {
    for template in templates() {
        let out = Command::new(tool("TESSERA_SAM"))
            .args(["validate", "--lint", "--region", "eu-west-1", "-t"])
            .arg(&template)
            .env("SAM_CLI_TELEMETRY", "0")
            .output()
            .unwrap();
        let said = text(&out);
        assert!(out.status.success(), "{}: {said}", template.display());
        assert!(
            said.contains("is a valid SAM Template"),
            "{}: {said}",
            template.display()
        );
    }
}

#[test]
fn checkov_fails_no_check_and_every_skip_has_a_reason() {
    for template in templates() {
        let out = Command::new(tool("TESSERA_CHECKOV"))
            .args(["--framework", "cloudformation", "--skip-download"])
            .args(["--output", "json", "-f"])
            .arg(&template)
            .output()
            .unwrap();
        let name = template.display().to_string();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: checkov printed no JSON ({e}): {}", text(&out)));
        let summary = &report["summary"];
        let passed = summary["passed"].as_u64().unwrap();
        let failed = summary["failed"].as_u64().unwrap();
        let failures: Vec<String> = report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{} on {}", c["check_id"], c["resource"]))
            .collect();
        assert_eq!(failed, 0, "{name}: {failures:?}");
        assert!(passed > 20, "{name}: only {passed} checks ran");
        assert!(out.status.success(), "{name}: {}", text(&out));
        let skipped = report["results"]["skipped_checks"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no skipped checks listed: {report}"));
        assert_eq!(
            skipped.len() as u64,
            summary["skipped"].as_u64().unwrap(),
            "{name}"
        );
        for skipped in skipped {
            let reason = skipped["check_result"]["suppress_comment"]
                .as_str()
                .unwrap_or_default();
            assert!(
                reason.split_whitespace().count() >= 5,
                "{name}: {} on {} is skipped without a written reason: {reason:?}",
                skipped["check_id"],
                skipped["resource"]
            );
        }
    }
}
