//! `tessera policy check` and `tessera contract lint` under the organisation policy, run as the
//! command itself: the sample mesh passes; a copy that breaks the policy fails with the rule and
//! the `file:line` of each violation.
//!
//! The module is `cfg(test)` so that its helpers, not only the `#[test]` functions, may unwrap
//! (see `clippy.toml`).

#[cfg(test)]
mod cli {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn tessera(mesh: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("--mesh")
            .arg(mesh)
            .args(args)
            .env_remove("TESSERA_MESH")
            .env_remove("TESSERA_ENV")
            .env("RUST_LOG", "off")
            .output()
            .expect("tessera runs")
    }

    fn text(out: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Copies a folder tree.
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }

    /// The sample mesh, its policy and its domains in a temporary folder.
    fn sample_copy() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        for file in ["samplecli.toml", "policy.yaml"] {
            std::fs::copy(repo().join(file), dir.path().join(file)).expect("copy");
        }
        copy(&repo().join("domains"), &dir.path().join("domains"));
        dir
    }

    /// Replaces text in a file of the copy; returns the 1-based line where `new` starts.
    fn edit(dir: &Path, file: &str, old: &str, new: &str) -> usize {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        let at = text
            .find(old)
            .unwrap_or_else(|| panic!("`{old}` not in {file}"));
        std::fs::write(&path, text.replacen(old, new, 1)).expect("write");
        text[..at].matches('\n').count() + 1
    }

    /// 1-based line of the first line of `file` holding `needle`.
    fn line_of(dir: &Path, file: &str, needle: &str) -> usize {
        let text = std::fs::read_to_string(dir.join(file)).expect("read");
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` not in {file}"))
            + 1
    }

    #[test]
    fn the_sample_mesh_passes_its_policy() {
        let out = tessera(&repo().join("samplecli.toml"), &["policy", "check"]);
        let said = text(&out);
        assert!(out.status.success(), "{said}");
        assert!(said.contains(": 7 products, 0 violations"), "{said}");
        // The e-mail columns are found in the samples, and are classified and hashed.
        for (product, column) in [
            ("sales.orders", "customer_email"),
            ("customers.customers", "email"),
            ("customers.customer_changes", "email"),
        ] {
            assert!(
                said.lines().any(|l| l.contains(product)
                    && l.contains(column)
                    && l.contains("e-mail addresses")
                    && l.contains("pii")
                    && l.contains("hash")),
                "{product}.{column}: {said}"
            );
        }
        let out = tessera(
            &repo().join("samplecli.toml"),
            &["policy", "check", "--json"],
        );
        assert!(out.status.success(), "{}", text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(report["products"], 7);
        assert_eq!(report["violations"], serde_json::json!([]));
        // E-mails in orders, customers and the Debezium events of customer_changes.
        assert_eq!(report["findings"].as_array().map(Vec::len), Some(3));

        let contracts: Vec<PathBuf> = [
            "domains/sales/orders/orders.odcs.yaml",
            "domains/sales/daily_revenue/daily_revenue.odcs.yaml",
            "domains/customers/customers/customers.odcs.yaml",
            "domains/customers/customer_changes/customer_changes.odcs.yaml",
            "domains/customers/customer_state/customer_state.odcs.yaml",
        ]
        .iter()
        .map(|c| repo().join(c))
        .collect();
        let mut args = vec!["contract", "lint"];
        args.extend(contracts.iter().filter_map(|c| c.to_str()));
        let out = tessera(&repo().join("samplecli.toml"), &args);
        assert!(out.status.success(), "{}", text(&out));
    }

    #[test]
    fn a_copy_that_breaks_the_policy_fails_with_each_rule_and_line() {
        let dir = sample_copy();
        let root = dir.path();
        let orders = "domains/sales/orders/orders.odcs.yaml";
        let customers = "domains/customers/customers/customers.odcs.yaml";
        // A column without a description, a reserved column name, personal data classified
        // `internal`, recipe masks weaker than the policy requires.
        edit(
            root,
            orders,
            "        description: Free-text delivery notes; may hold commas, quotes and line breaks.\n",
            "",
        );
        let notes = line_of(root, orders, "- name: notes");
        edit(
            root,
            customers,
            "      - name: email\n        description: E-mail address; published as a salted SHA-256 hash.\n        logicalType: string\n        physicalType: varchar\n        classification: pii\n",
            "      - name: email\n        description: E-mail address; published as a salted SHA-256 hash.\n        logicalType: string\n        physicalType: varchar\n        classification: internal\n",
        );
        let email = line_of(root, customers, "- name: email");
        let segment = line_of(root, customers, "- name: segment");
        edit(root, customers, "- name: segment", "- name: date");
        // The sales domain's input port follows the renamed column.
        edit(
            root,
            "samplecli.toml",
            "segment = \"segment\"",
            "segment = \"date\"",
        );
        let policy = root.join("policy.yaml");
        std::fs::write(
            &policy,
            std::fs::read_to_string(&policy)
                .expect("read")
                .replace("  pii: hash\n", "  pii: null\n"),
        )
        .expect("write");
        let orders_mask = line_of(root, "samplecli.toml", "mask = { customer_email");
        let customers_mask = line_of(root, "samplecli.toml", "mask = { name");

        let mesh = root.join("samplecli.toml");
        let out = tessera(&mesh, &["policy", "check", "--json"]);
        assert!(!out.status.success(), "{}", text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let got: Vec<(String, String, String, u64)> = report["violations"]
            .as_array()
            .expect("violations")
            .iter()
            .map(|v| {
                (
                    v["rule"].as_str().unwrap_or_default().to_owned(),
                    v["product"].as_str().unwrap_or_default().to_owned(),
                    v["property"].as_str().unwrap_or_default().to_owned(),
                    v["line"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        let expected: Vec<(String, String, String, u64)> = [
            ("columns.description", "sales.orders", "notes", notes),
            ("mask.weaker", "sales.orders", "customer_email", orders_mask),
            ("naming.column", "customers.customers", "date", segment),
            ("mask.weaker", "customers.customers", "name", customers_mask),
            ("pii.unclassified", "customers.customers", "email", email),
        ]
        .iter()
        .map(|(r, p, c, l)| ((*r).into(), (*p).into(), (*c).into(), *l as u64))
        .collect();
        assert_eq!(got, expected, "{report:#}");

        // The table names the rule and the file:line of each violation.
        let out = tessera(&mesh, &["policy", "check"]);
        assert!(!out.status.success());
        let said = text(&out);
        let file = |f: &str| root.join(f).display().to_string();
        for (rule, at) in [
            ("columns.description", format!("{}:{notes}:9", file(orders))),
            ("mask.weaker", format!("{}:{orders_mask}:8", mesh.display())),
            ("naming.column", format!("{}:{segment}:", file(customers))),
            (
                "mask.weaker",
                format!("{}:{customers_mask}:8", mesh.display()),
            ),
            ("pii.unclassified", format!("{}:{email}:9", file(customers))),
        ] {
            assert!(
                said.lines().any(|l| l.contains(rule) && l.contains(&at)),
                "{rule} at {at} missing: {said}"
            );
        }
        assert!(said.contains(": 7 products, 5 violations"), "{said}");

        // contract lint applies the policy's contract rules too.
        let out = tessera(
            &mesh,
            &["contract", "lint", &root.join(orders).display().to_string()],
        );
        assert!(!out.status.success());
        let said = text(&out);
        assert!(
            said.contains(&format!(
                "{}:{notes}:9: policy `columns.description`: column `notes` has no description",
                file(orders)
            )),
            "{said}"
        );
    }

    #[test]
    fn a_broken_policy_file_is_refused_with_its_line() {
        let dir = sample_copy();
        let root = dir.path();
        let line = edit(root, "policy.yaml", "  pii: hash\n", "  pii: scramble\n");
        let out = tessera(&root.join("samplecli.toml"), &["policy", "check"]);
        assert!(!out.status.success());
        let said = text(&out);
        assert!(
            said.contains(&format!(
                "{}:{line}:3: unknown action `scramble`",
                root.join("policy.yaml").display()
            )),
            "{said}"
        );
    }
}
