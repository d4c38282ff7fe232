//! How each stored struct maps to and from its columns.
//!
//! The column lists and the functions that read them sit together because
//! the functions read by position: a list and its reader change together.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Row, ToSql};

use super::{CachedGeneration, RunRow, RunStatus, StoredCell};

/// A run plus its progress counted from its cells; callers append WHERE and
/// GROUP BY. Read by [`run_from_row`].
pub(super) const RUN_ROW_SELECT: &str = "
    SELECT r.id, r.eval_set, r.eval_set_path, r.started_at, r.finished_at, r.status,
           r.cell_count, count(c.run_id), coalesce(sum(c.passed), 0), r.label,
           coalesce(sum(c.cached), 0),
           group_concat(DISTINCT printf('%08d', c.column_index) || char(31) || c.column_id || char(30))
    FROM runs r LEFT JOIN cells c ON c.run_id = r.id";

/// Read by [`cell_from_row`], in this order.
pub(super) const CELL_COLUMNS: &str = "
    column_index, case_index, column_id, case_id, cache_key, prompt_json, output, error,
    passed, score, assertions_json, finish, prompt_tokens, completion_tokens, ttft_ms,
    latency_ms, tokens_per_s, cached, logprobs_json";

/// Read by [`generation_from_row_at`], in this order.
pub(super) const GENERATION_COLUMNS: &str = "output, finish, prompt_tokens, completion_tokens, ttft_ms, latency_ms, tokens_per_s, logprobs_json";

impl ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for RunStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        RunStatus::parse(text).ok_or_else(|| {
            FromSqlError::Other(
                format!("run status {text:?} is not one of running, finished, cancelled").into(),
            )
        })
    }
}

/// Row counts and indexes are stored as INTEGER; a negative one means the file
/// was written by something else, which the caller reports as corrupt data.
pub(super) fn get_usize(row: &Row<'_>, index: usize) -> rusqlite::Result<usize> {
    let value: i64 = row.get(index)?;
    usize::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

pub(super) fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: row.get(0)?,
        eval_set: row.get(1)?,
        eval_set_path: row.get(2)?,
        started_at: row.get(3)?,
        finished_at: row.get(4)?,
        status: row.get(5)?,
        cell_count: get_usize(row, 6)?,
        cells_done: get_usize(row, 7)?,
        passed: get_usize(row, 8)?,
        label: row.get(9)?,
        cached: get_usize(row, 10)?,
        columns: columns_from(row.get::<_, Option<String>>(11)?.as_deref()),
        // Computed from the run's cells by `RunStore::config_digests`.
        config_digest: None,
    })
}

/// The run's columns from `group_concat`'s "index␟id␞,index␟id␞…", sorted by index
/// (ids may hold commas; the unit and record separators do not occur in them).
fn columns_from(joined: Option<&str>) -> Vec<String> {
    let mut columns: Vec<(&str, &str)> = joined
        .unwrap_or_default()
        .split('\u{1e}')
        .filter_map(|item| item.trim_start_matches(',').split_once('\u{1f}'))
        .collect();
    columns.sort();
    columns.into_iter().map(|(_, id)| id.to_string()).collect()
}

pub(super) fn cell_from_row(row: &Row<'_>) -> rusqlite::Result<StoredCell> {
    Ok(StoredCell {
        column_index: get_usize(row, 0)?,
        case_index: get_usize(row, 1)?,
        column_id: row.get(2)?,
        case_id: row.get(3)?,
        cache_key: row.get(4)?,
        prompt_json: row.get(5)?,
        output: row.get(6)?,
        error: row.get(7)?,
        passed: row.get(8)?,
        score: row.get(9)?,
        assertions_json: row.get(10)?,
        finish: row.get(11)?,
        prompt_tokens: row.get(12)?,
        completion_tokens: row.get(13)?,
        ttft_ms: row.get(14)?,
        latency_ms: row.get(15)?,
        tokens_per_s: row.get(16)?,
        cached: row.get(17)?,
        logprobs_json: row.get(18)?,
    })
}

pub(super) fn generation_from_row(row: &Row<'_>) -> rusqlite::Result<CachedGeneration> {
    generation_from_row_at(row, 0)
}

/// Reads the `GENERATION_COLUMNS` starting at column `at`.
pub(super) fn generation_from_row_at(
    row: &Row<'_>,
    at: usize,
) -> rusqlite::Result<CachedGeneration> {
    Ok(CachedGeneration {
        output: row.get(at)?,
        finish: row.get(at + 1)?,
        prompt_tokens: row.get(at + 2)?,
        completion_tokens: row.get(at + 3)?,
        ttft_ms: row.get(at + 4)?,
        latency_ms: row.get(at + 5)?,
        tokens_per_s: row.get(at + 6)?,
        logprobs_json: row.get(at + 7)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_come_back_in_column_order_with_commas_intact() {
        let joined =
            "00000002\u{1f}c @ m\u{1e},00000000\u{1f}a, b @ m\u{1e},00000001\u{1f}b @ m\u{1e}";
        assert_eq!(
            super::columns_from(Some(joined)),
            ["a, b @ m", "b @ m", "c @ m"]
        );
        assert!(super::columns_from(None).is_empty());
    }
}
