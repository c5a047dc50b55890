//! `tessera new domain` and `tessera new product` on a copy of the sample mesh: the scaffold
//! passes contract lint, the policy check and the embedded run at once, the domain's stack
//! synthesises, and nothing existing is ever overwritten.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tessera_cli::{commands, scaffold};
use tessera_core::context::Context;
use tessera_core::mesh::Mesh;
use tessera_tests::repo_root;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The sample mesh, its policy and its domains, copied into `dir`; the copied mesh file.
fn sample_copy(dir: &Path) -> PathBuf {
    let root = repo_root();
    for file in ["samplecli.toml", "policy.yaml"] {
        std::fs::copy(root.join(file), dir.join(file)).unwrap();
    }
    copy_dir(&root.join("domains"), &dir.join("domains"));
    dir.join("samplecli.toml")
}

#[tokio::test]
async fn a_scaffolded_domain_and_products_pass_lint_policy_and_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mesh_path = sample_copy(dir.path());

    let d =
        scaffold::new_domain(&mesh_path, "shipping", Some("Parcels and \"carriers\".")).unwrap();
    assert_eq!(d.created, [dir.path().join("domains/shipping/README.md")]);
    let p = scaffold::new_product(&mesh_path, "shipping", "parcels", None).unwrap();
    let contract = dir
        .path()
        .join("domains/shipping/parcels/parcels.odcs.yaml");
    assert_eq!(
        p.created,
        [
            contract.clone(),
            dir.path()
                .join("domains/shipping/parcels/raw/parcels_2024-05-01.csv")
        ]
    );
    // A product of a domain that is not the last one goes into that domain's section.
    let r =
        scaffold::new_product(&mesh_path, "sales", "refunds", Some("refunds@example.com")).unwrap();
    let refunds = r.created[0].clone();

    // contract lint, under the mesh's policy.
    let (policy, _) = Mesh::policy_of(&mesh_path).unwrap().unwrap();
    let lint = commands::lint_with_policy(&[contract, refunds], Some(&policy));
    for result in &lint {
        assert!(
            result.contract.is_some() && result.problems.is_empty(),
            "{result:?}"
        );
    }

    // policy check over the whole mesh.
    let mesh = Arc::new(Mesh::load(&mesh_path).unwrap());
    let domain = |name: &str| mesh.domains.iter().find(|d| d.name == name).unwrap();
    assert_eq!(domain("shipping").bucket, "tessera-sample-shipping");
    assert_eq!(
        domain("shipping").description.as_deref(),
        Some("Parcels and \"carriers\".")
    );
    assert!(domain("sales").products.iter().any(|p| p.name == "refunds"));
    let report = commands::policy_check(&mesh).unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.products, 9);

    // The embedded run publishes both new products; everything else as before.
    let warehouse = dir.path().join("warehouse");
    let emb = Context::embedded(Arc::clone(&mesh), &warehouse).unwrap();
    let summary = commands::run(&emb).await.unwrap();
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    for name in ["shipping.parcels", "sales.refunds"] {
        let s = summary.products.iter().find(|p| p.name == name).unwrap();
        // Five sample rows: one superseded version of a record dropped, four published.
        assert_eq!(
            (s.rows_in, s.published, s.dropped, s.quarantined, s.refused),
            (5, 4, 1, 0, 0),
            "{name}"
        );
        assert_eq!(s.checks.map(|(_, failed)| failed), Some(0), "{name}");
    }
    let orders = summary
        .products
        .iter()
        .find(|p| p.name == "sales.orders")
        .unwrap();
    assert_eq!(orders.published, 8);

    // The stacks synthesise with the new domain.
    let stacks = tessera_infra::Stacks::Domain("shipping".to_owned());
    let artifacts = commands::synth(&mesh, &mesh_path, None, &stacks, "..").unwrap();
    let template = String::from_utf8(artifacts[0].contents.clone()).unwrap();
    assert!(template.contains("tessera-sample-shipping"), "{template}");
    commands::synth(&mesh, &mesh_path, None, &tessera_infra::Stacks::All, "..").unwrap();
    // Its ODPS descriptor is valid.
    let described = commands::describe(&mesh, Some("shipping.parcels")).unwrap();
    assert_eq!(described[0].1["status"], "draft");
    // What `tessera new product` writes after the product: the domain's stack beside the mesh,
    // with the new product's table in it, and the mesh layer it packages.
    let written = tessera_cli::scaffold::write_stack(&mesh_path, None, "shipping").unwrap();
    let infra = mesh_path.parent().unwrap().join("infra");
    let stack = infra.join("shipping.template.json");
    assert!(written.contains(&stack), "{written:?}");
    let text = std::fs::read_to_string(&stack).unwrap();
    assert!(
        text.contains("\"parcels\""),
        "the product's table is in the stack"
    );
    assert!(
        infra
            .join("mesh/domains/shipping/parcels/parcels.odcs.yaml")
            .is_file()
    );
    // Written again, nothing changes.
    assert!(
        tessera_cli::scaffold::write_stack(&mesh_path, None, "shipping")
            .unwrap()
            .is_empty()
    );
}

/// The error of a refused scaffold, with its causes.
fn message<T: std::fmt::Debug, E: std::fmt::Display>(result: Result<T, E>) -> String {
    format!("{:#}", result.unwrap_err())
}

#[test]
fn nothing_existing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let mesh_path = sample_copy(dir.path());
    let before = std::fs::read_to_string(&mesh_path).unwrap();
    let refused = |message: String, needle: &str| {
        assert!(message.contains(needle), "{message}");
        assert_eq!(std::fs::read_to_string(&mesh_path).unwrap(), before);
    };

    refused(
        message(scaffold::new_domain(&mesh_path, "sales", None)),
        "domain `sales` already exists",
    );
    refused(
        message(scaffold::new_product(&mesh_path, "sales", "orders", None)),
        "product `sales.orders` already exists",
    );
    // Aggregates and entities are products too.
    refused(
        message(scaffold::new_product(
            &mesh_path,
            "customers",
            "customer_state",
            None,
        )),
        "already exists",
    );
    refused(
        message(scaffold::new_product(&mesh_path, "nowhere", "things", None)),
        "no domain `nowhere`",
    );
    refused(
        message(scaffold::new_domain(&mesh_path, "Shipping", None)),
        "not a valid identifier",
    );
    refused(
        message(scaffold::new_product(&mesh_path, "sales", "2fast", None)),
        "not a valid identifier",
    );

    // A file in the way: refused, and the mesh file untouched.
    let raw = dir.path().join("domains/sales/refunds/raw");
    std::fs::create_dir_all(&raw).unwrap();
    std::fs::write(raw.join("refunds_2024-05-01.csv"), "mine\n").unwrap();
    refused(
        message(scaffold::new_product(&mesh_path, "sales", "refunds", None)),
        "already exists",
    );
    assert_eq!(
        std::fs::read_to_string(raw.join("refunds_2024-05-01.csv")).unwrap(),
        "mine\n"
    );
    assert!(
        !dir.path()
            .join("domains/sales/refunds/refunds.odcs.yaml")
            .exists()
    );

    // Created twice: the second time is refused.
    scaffold::new_domain(&mesh_path, "shipping", None).unwrap();
    let after = std::fs::read_to_string(&mesh_path).unwrap();
    let message = message(scaffold::new_domain(&mesh_path, "shipping", None));
    assert!(message.contains("already exists"), "{message}");
    assert_eq!(std::fs::read_to_string(&mesh_path).unwrap(), after);
}
