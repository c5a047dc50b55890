//! `tessera contract lint`: the standard's examples and Tessera's contracts pass; broken ones are
//! refused with the file, the line and the reason.

use std::path::PathBuf;

use tessera_cli::commands::lint;
use tessera_tests::repo_root;

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn standard_examples_and_sample_contracts_pass() {
    let mut files = yaml_files("shared/contract/tests/examples");
    assert!(files.len() >= 17, "the ODCS examples are all there");
    for d in [
        "domains/sales/orders",
        "domains/sales/daily_revenue",
        "domains/customers/customers",
    ] {
        files.extend(yaml_files(d));
    }
    for r in lint(&files) {
        assert!(
            r.contract.is_some(),
            "{}: {:?}",
            r.file.display(),
            r.problems
        );
    }
}

#[test]
fn broken_contracts_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "bad-type.yaml",
            "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\nstatus: active\nschema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: text\n",
            ":10:",
        ),
        (
            "no-id.yaml",
            "apiVersion: v3.1.0\nkind: DataContract\nversion: 1.0.0\nstatus: active\n",
            "id",
        ),
        (
            "not-yaml.yaml",
            "apiVersion: v3.1.0\nkind: [unclosed\n",
            ":2:",
        ),
        ("binary.yaml", "\u{0}\u{1}\u{2}PNG", "binary.yaml"),
    ];
    let mut files = Vec::new();
    for (name, text, _) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    let results = lint(&files);
    for ((name, _, expected), r) in cases.iter().zip(&results) {
        assert!(r.contract.is_none(), "{name} should fail");
        let all = r.problems.join("\n");
        assert!(
            all.contains(name),
            "{name}: the problem names the file: {all}"
        );
        assert!(
            all.contains(expected),
            "{name}: expected `{expected}` in {all}"
        );
    }
}

/// Every contract of the sample mesh also passes datacontract-cli's `datacontract lint`, an
/// independent ODCS validator (`bash tests/run.sh` installs it and sets `TESSERA_DATACONTRACT`).
#[test]
fn sample_contracts_pass_datacontract_lint() {
    let tool = std::env::var("TESSERA_DATACONTRACT").unwrap_or_else(|_| {
        panic!("TESSERA_DATACONTRACT is not set: run the tests with `bash tests/run.sh`")
    });
    let mesh = tessera_tests::sample_mesh();
    let mut contracts: Vec<PathBuf> = mesh
        .products()
        .map(|(_, p)| mesh.root.join(&p.contract_path))
        .collect();
    contracts.sort();
    assert_eq!(contracts.len(), 7);
    for contract in contracts {
        let out = std::process::Command::new(&tool)
            .arg("lint")
            .arg(&contract)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains("Data contract is valid"),
            "{}: {said}{}",
            contract.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
