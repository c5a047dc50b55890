//! `tessera contract test` on files, folders and a storage prefix, with its reports; `tessera sla
//! check`'s table.

use tessera_cli::{commands, quality};
use tessera_tests::{embedded, repo_root};

#[tokio::test]
async fn contract_test_reports_what_the_raw_samples_break() {
    let root = repo_root();
    let scratch = tempfile::tempdir().unwrap();
    let files = quality::data_files(
        &[root.join("domains/sales/orders/raw").display().to_string()],
        None,
        scratch.path(),
    )
    .await
    .unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    let report = quality::contract_test(
        &root.join("domains/sales/orders/orders.odcs.yaml"),
        None,
        &files,
    )
    .await
    .unwrap();
    assert!(!report.passed());
    let failed = |i: usize| -> Vec<String> {
        report.files[i]
            .report
            .failed()
            .map(|c| c.name.clone())
            .collect()
    };
    // The first day has rows ingest cannot type (an amount written `12,50`, a bad time).
    assert!(
        failed(0).contains(&"rows.typed".to_owned()),
        "{:?}",
        failed(0)
    );
    assert!(
        failed(1).contains(&"amount.minimum".to_owned()),
        "{:?}",
        failed(1)
    );
    let text = quality::contract_test_text(&report);
    assert!(text.contains("0 of 2 files passed"), "{text}");
    let junit = report.junit();
    assert!(
        junit.contains("<testsuite name=") && junit.contains("<failure type=\"error\""),
        "{junit}"
    );
}

#[tokio::test]
async fn contract_test_reads_a_storage_prefix_and_sla_check_tells_what_is_late() {
    let dir = tempfile::tempdir().unwrap();
    let emb = embedded(dir.path());
    commands::run(&emb).await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    // What daily_revenue published, read back from storage, passes its own contract.
    let files = quality::data_files(
        &["s3://tessera-sample-sales/products/daily_revenue/".to_owned()],
        Some(&emb.context),
        scratch.path(),
    )
    .await
    .unwrap();
    assert!(!files.is_empty());
    let report = quality::contract_test(
        &repo_root().join("domains/sales/daily_revenue/daily_revenue.odcs.yaml"),
        None,
        &files,
    )
    .await
    .unwrap();
    assert!(report.passed(), "{}", quality::contract_test_text(&report));

    let later = chrono::Utc::now() + chrono::Duration::days(2);
    let reports = quality::sla_check(&emb.context, later, false)
        .await
        .unwrap();
    let text = quality::sla_text(&reports);
    assert!(
        text.contains("BREACHED") && text.contains("sales.orders"),
        "{text}"
    );
    assert!(text.contains("2 service levels breached"), "{text}");
    // Without --emit nothing is announced.
    assert!(std::iter::from_fn(|| emb.bus.pop()).all(|e| e.detail_type != "SlaBreached"));
}
