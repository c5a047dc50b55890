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

fn query_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> String {
    format!("Athena {what}: {}", DisplayErrorContext(e))
}
