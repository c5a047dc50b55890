//! query: SQL over registered products reads the committed files only.

use tessera_core::query::query;
use tessera_core::runs::RunStatus;
use tessera_core::stages;

use crate::support::{BUCKET, Fx, assert_table, lines};

const HEADER: &str = "order_id,email,amount,order_day,note\n";

#[tokio::test]
async fn queries_read_committed_rows_only() {
    let fx = Fx::orders("");
    let sql = "SELECT order_id, amount, order_day FROM shop_db.orders ORDER BY order_id";
    // Before registration the table does not exist.
    assert!(query(fx.ctx(), sql).await.is_err());

    let run = fx
        .publish(
            "raw/orders/day1.csv",
            format!("{HEADER}O-2,,2.00,2024-05-02,\nO-1,,1.00,2024-05-01,\n"),
        )
        .await;
    assert_eq!(run.status, RunStatus::Published);
    let event = fx.published().remove(0);
    stages::register::run(fx.ctx(), &event)
        .await
        .expect("register");
    let expected = [
        "+----------+--------+------------+",
        "| order_id | amount | order_day  |",
        "+----------+--------+------------+",
        "| O-1      | 1.00   | 2024-05-01 |",
        "| O-2      | 2.00   | 2024-05-02 |",
        "+----------+--------+------------+",
    ];
    assert_table(
        &lines(&query(fx.ctx(), sql).await.expect("query")),
        &expected,
    );

    // Parquet files under the product without a commit: a writer that crashed before
    // committing, or anything else dropped there. They are not read.
    let storage = &fx.ctx().storage;
    storage
        .copy(
            BUCKET,
            &run.outputs[0],
            "products/orders/order_day=2024-05-01/part-uncommitted-0.parquet",
        )
        .await
        .expect("copy");
    storage
        .copy(BUCKET, &run.outputs[1], "products/orders/stray.parquet")
        .await
        .expect("copy");
    assert_eq!(fx.keys("products/orders/").await.len(), 6);
    assert_table(
        &lines(&query(fx.ctx(), sql).await.expect("query")),
        &expected,
    );

    // A new committed version is visible at once, without registering again.
    let second = fx
        .publish(
            "raw/orders/day2.csv",
            format!("{HEADER}O-3,,3.00,2024-05-01,\n"),
        )
        .await;
    assert_eq!(second.status, RunStatus::Published);
    let totals = query(
        fx.ctx(),
        "SELECT order_day, COUNT(*) AS n, SUM(amount) AS total FROM shop_db.orders \
         GROUP BY order_day ORDER BY order_day",
    )
    .await
    .expect("query");
    assert_table(
        &lines(&totals),
        &[
            "+------------+---+-------+",
            "| order_day  | n | total |",
            "+------------+---+-------+",
            "| 2024-05-01 | 2 | 4.00  |",
            "| 2024-05-02 | 1 | 2.00  |",
            "+------------+---+-------+",
        ],
    );
}
