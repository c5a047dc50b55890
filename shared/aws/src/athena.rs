//! SQL on AWS with Athena: start a query, poll until it ends, read the paged results.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_athena::error::DisplayErrorContext;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use tessera_core::error::{Error, Result};

/// A query result: column names and rows of text (null as `None`), as Athena returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    /// Query execution id.
    pub id: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Option<String>>>,
}

/// An Athena workgroup to run queries in.
#[derive(Debug, Clone)]
pub struct Athena {
    client: aws_sdk_athena::Client,
    workgroup: String,
    output_location: Option<String>,
    poll: Duration,
    timeout: Duration,
}

impl Athena {
    /// Queries in `workgroup`; `output_location` only when the workgroup does not enforce one.
    pub fn new(sdk: &SdkConfig, workgroup: &str, output_location: Option<String>) -> Athena {
        Athena {
            client: aws_sdk_athena::Client::new(sdk),
            workgroup: workgroup.to_owned(),
            output_location,
            poll: Duration::from_millis(250),
            timeout: Duration::from_secs(600),
        }
    }

    /// Changes how often the query state is polled and how long to wait at most.
    pub fn with_polling(mut self, poll: Duration, timeout: Duration) -> Athena {
        self.poll = poll;
        self.timeout = timeout;
        self
    }

    /// Runs `sql` with `database` as the default database and returns every row.
    pub async fn query(&self, database: &str, sql: &str) -> Result<QueryResult> {
        let id = self.execute(database, sql).await?;
        self.results(id).await
    }

    /// Runs `sql` with `database` as the default database until it ends; returns the query
    /// execution id.
    pub async fn execute(&self, database: &str, sql: &str) -> Result<String> {
        let mut start = self
            .client
            .start_query_execution()
            .query_string(sql)
            .work_group(&self.workgroup)
            .query_execution_context(QueryExecutionContext::builder().database(database).build());
        if let Some(out) = &self.output_location {
            start = start
                .result_configuration(ResultConfiguration::builder().output_location(out).build());
        }
        let started = start
            .send()
            .await
            .map_err(|e| Error::Query(query_error("StartQueryExecution", e)))?;
        let id = started
            .query_execution_id()
            .ok_or_else(|| Error::Internal("StartQueryExecution returned no id".into()))?
            .to_owned();

        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let state = self
                .client
                .get_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .map_err(|e| Error::Query(query_error("GetQueryExecution", e)))?;
            let status = state.query_execution().and_then(|q| q.status());
            match status.and_then(|s| s.state()) {
                Some(QueryExecutionState::Succeeded) => break,
                Some(QueryExecutionState::Failed | QueryExecutionState::Cancelled) => {
                    let why = status
                        .and_then(|s| s.state_change_reason())
                        .unwrap_or("no reason given");
                    return Err(Error::Config(format!(
                        "Athena query `{id}` did not succeed: {why}"
                    )));
                }
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(Error::Conflict(format!(
                        "Athena query `{id}` still running after {:?}",
                        self.timeout
                    )));
                }
                _ => tokio::time::sleep(self.poll).await,
            }
        }
        Ok(id)
    }

    /// Every row of a finished query.
    async fn results(&self, id: String) -> Result<QueryResult> {
        let mut pages = self
            .client
            .get_query_results()
            .query_execution_id(&id)
            .into_paginator()
            .send();
        let mut columns = Vec::new();
        let mut rows = Vec::new();
        let mut first = true;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::Query(query_error("GetQueryResults", e)))?;
            let Some(set) = page.result_set() else {
                continue;
            };
            if columns.is_empty() {
                columns = set
                    .result_set_metadata()
                    .map(|m| {
                        m.column_info()
                            .iter()
                            .map(|c| c.name().to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
            }
            for (i, row) in set.rows().iter().enumerate() {
                let values: Vec<Option<String>> = row
                    .data()
                    .iter()
                    .map(|d| d.var_char_value().map(str::to_owned))
                    .collect();
                // The first row of the first page repeats the column names (for SELECT queries).
                if first
                    && i == 0
                    && values
                        .iter()
                        .map(|v| v.as_deref())
                        .eq(columns.iter().map(|c| Some(c.as_str())))
                {
                    continue;
                }
                rows.push(values);
            }
            first = false;
        }
        Ok(QueryResult { id, columns, rows })
    }
}

/// Aggregations pushed down to Athena: `UNLOAD` writes the result as Parquet (zstd) where the
/// aggregate stage reads it back.
#[derive(Debug, Clone)]
pub struct AthenaPushDown {
    athena: Athena,
}

impl AthenaPushDown {
    /// Push-downs through `athena`.
    pub fn new(athena: Athena) -> AthenaPushDown {
        AthenaPushDown { athena }
    }

    /// The statement that writes `sql`'s result under `output`.
    pub fn unload_statement(sql: &str, output: &str) -> String {
        format!(
            "UNLOAD ({sql}) TO '{}' WITH (format = 'PARQUET', compression = 'ZSTD')",
            output.replace('\'', "''")
        )
    }
}

#[async_trait::async_trait]
impl tessera_core::query::PushDown for AthenaPushDown {
    async fn unload(&self, database: &str, sql: &str, output: &str) -> Result<()> {
        self.athena
            .execute(database, &AthenaPushDown::unload_statement(sql, output))
            .await
            .map(drop)
    }
}

fn query_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> String {
    format!("Athena {what}: {}", DisplayErrorContext(e))
}

#[cfg(test)]
mod tests {
    //! Athena's requests and answers, replayed without network: the client starts the query,
    //! polls until it ends, and reads every page of results.

    use aws_config::{BehaviorVersion, Region};
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn exchange(target: &str, response: &str) -> ReplayEvent {
        ReplayEvent::new(
            http::Request::builder()
                .uri("https://athena.eu-west-1.amazonaws.com/")
                .header("x-amz-target", format!("AmazonAthena.{target}"))
                .body(SdkBody::empty())
                .unwrap(),
            http::Response::builder()
                .status(200)
                .body(SdkBody::from(response.to_owned()))
                .unwrap(),
        )
    }

    fn athena(replay: &StaticReplayClient) -> Athena {
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "a", "b", None, None, "test",
            )))
            .http_client(replay.clone())
            .build();
        Athena::new(&sdk, "tessera", Some("s3://results/".into()))
            .with_polling(Duration::from_millis(1), Duration::from_secs(5))
    }

    fn targets(replay: &StaticReplayClient) -> Vec<String> {
        replay
            .actual_requests()
            .map(|r| {
                r.headers()
                    .get("x-amz-target")
                    .unwrap_or_default()
                    .trim_start_matches("AmazonAthena.")
                    .to_owned()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_query_is_started_polled_and_read_page_by_page() {
        let replay = StaticReplayClient::new(vec![
            exchange("StartQueryExecution", r#"{"QueryExecutionId": "q-1"}"#),
            exchange(
                "GetQueryExecution",
                r#"{"QueryExecution": {"QueryExecutionId": "q-1", "Status": {"State": "RUNNING"}}}"#,
            ),
            exchange(
                "GetQueryExecution",
                r#"{"QueryExecution": {"QueryExecutionId": "q-1", "Status": {"State": "SUCCEEDED"}}}"#,
            ),
            exchange(
                "GetQueryResults",
                r#"{"ResultSet": {"ResultSetMetadata": {"ColumnInfo": [{"Name": "segment", "Type": "varchar"}, {"Name": "revenue", "Type": "decimal"}]},
                    "Rows": [{"Data": [{"VarCharValue": "segment"}, {"VarCharValue": "revenue"}]},
                             {"Data": [{"VarCharValue": "business"}, {"VarCharValue": "303.99"}]}]},
                    "NextToken": "page-2"}"#,
            ),
            exchange(
                "GetQueryResults",
                r#"{"ResultSet": {"ResultSetMetadata": {"ColumnInfo": [{"Name": "segment", "Type": "varchar"}, {"Name": "revenue", "Type": "decimal"}]},
                    "Rows": [{"Data": [{"VarCharValue": "consumer"}, {"VarCharValue": "553.75"}]},
                             {"Data": [{"VarCharValue": "unknown"}, {}]}]}}"#,
            ),
        ]);
        let result = athena(&replay)
            .query(
                "sales",
                "SELECT segment, SUM(amount) AS revenue FROM orders GROUP BY 1",
            )
            .await
            .unwrap();
        assert_eq!(result.id, "q-1");
        assert_eq!(result.columns, ["segment", "revenue"]);
        let text = |v: &[&str]| v.iter().map(|s| Some((*s).to_owned())).collect::<Vec<_>>();
        assert_eq!(
            result.rows,
            [
                text(&["business", "303.99"]),
                text(&["consumer", "553.75"]),
                vec![Some("unknown".into()), None]
            ]
        );
        assert_eq!(
            targets(&replay),
            [
                "StartQueryExecution",
                "GetQueryExecution",
                "GetQueryExecution",
                "GetQueryResults",
                "GetQueryResults"
            ]
        );
        let start = replay.actual_requests().next().unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(start.body().bytes().unwrap()).unwrap();
        assert_eq!(
            body["QueryString"],
            "SELECT segment, SUM(amount) AS revenue FROM orders GROUP BY 1"
        );
        assert_eq!(body["WorkGroup"], "tessera");
        assert_eq!(body["QueryExecutionContext"]["Database"], "sales");
        assert_eq!(
            body["ResultConfiguration"]["OutputLocation"],
            "s3://results/"
        );
    }

    #[tokio::test]
    async fn a_failed_query_says_why() {
        let replay = StaticReplayClient::new(vec![
            exchange("StartQueryExecution", r#"{"QueryExecutionId": "q-2"}"#),
            exchange(
                "GetQueryExecution",
                r#"{"QueryExecution": {"QueryExecutionId": "q-2", "Status": {"State": "FAILED", "StateChangeReason": "TABLE_NOT_FOUND: line 1:15: Table 'sales.nope' does not exist"}}}"#,
            ),
        ]);
        let err = athena(&replay)
            .query("sales", "SELECT * FROM nope")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("Table 'sales.nope' does not exist"),
            "{err}"
        );
        assert_eq!(
            targets(&replay),
            ["StartQueryExecution", "GetQueryExecution"]
        );
    }
}
