//! `diff` over the fixture pairs of `tests/diff/<case>/`: `old.odcs.yaml`, `new.odcs.yaml`, and
//! `expected.txt`, the verdict and one line per change (`breaking? kind path side:line`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use tessera_contract::{Contract, ContractDiff, Side, Verdict, diff, lint};

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn load(case: &Path, name: &str) -> Contract {
    let path = case.join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    lint(&text, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn run(case: &Path) -> ContractDiff {
    diff(&load(case, "old.odcs.yaml"), &load(case, "new.odcs.yaml"))
}

/// The diff as `expected.txt` spells it.
fn render(d: &ContractDiff) -> String {
    let verdict = match d.verdict {
        Verdict::Ok => "ok",
        Verdict::Fail => "fail",
    };
    let mut out = format!(
        "verdict: {verdict} ({} → {})\n",
        d.version.old, d.version.new
    );
    for c in &d.changes {
        let side = match c.side {
            Side::Old => "old",
            Side::New => "new",
        };
        let kind = serde_json::to_value(c.kind).unwrap();
        out.push_str(&format!(
            "{} {} {} {side}:{}\n",
            if c.breaking { "breaking" } else { "-" },
            kind.as_str().unwrap(),
            c.path,
            c.line.map_or("?".to_owned(), |l| l.to_string()),
        ));
    }
    out
}

#[test]
fn every_fixture_pair_gives_its_expected_changes() {
    let cases = cases();
    assert!(cases.len() >= 6, "{cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let expected = std::fs::read_to_string(case.join("expected.txt")).unwrap_or_default();
        let actual = render(&run(case));
        if actual != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                case.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_json_document_for_ci() {
    let d = run(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff/orders-breaking"));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["id"], "urn:tessera:sales:orders");
    assert_eq!(json["version"]["old"], "1.0.0");
    assert_eq!(json["version"]["direction"], "up");
    assert_eq!(json["version"]["majorBumped"], false);
    let range = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "rangeChanged")
        .unwrap();
    assert_eq!(
        range["path"],
        "schema.orders.properties.amount.logicalTypeOptions.maximum"
    );
    assert_eq!(
        (range["old"].clone(), range["new"].clone()),
        (100000.into(), 50000.into())
    );
    assert_eq!(range["breaking"], true);
    assert_eq!(range["side"], "new");
    assert!(range["line"].as_u64().is_some());
    assert!(range["note"].as_str().unwrap().contains("tightened"));
}

#[test]
fn reversing_a_relaxation_is_breaking() {
    // What relaxes one way tightens the other: every non-breaking change of the compatible
    // fixture that is not documentation breaks when OLD and NEW swap.
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff/compatible");
    let (old, new) = (load(&case, "old.odcs.yaml"), load(&case, "new.odcs.yaml"));
    let forward = diff(&old, &new);
    let backward = diff(&new, &old);
    assert_eq!(forward.breaking().count(), 0);
    let constraints = forward
        .changes
        .iter()
        .filter(|c| {
            !matches!(
                c.kind,
                tessera_contract::ChangeKind::DocumentationChanged
                    | tessera_contract::ChangeKind::PropertyAdded
            )
        })
        .count();
    assert!(constraints >= 6, "{:#?}", forward.changes);
    assert_eq!(
        backward.breaking().count(),
        constraints + 1,
        "{:#?}",
        backward.changes
    );
    assert_eq!(backward.verdict, Verdict::Fail);
}
