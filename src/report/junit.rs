//! JUnit XML, one test suite per prompt × model column and one test case per case, so CI
//! systems show evaluation failures like test failures.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::RenderError;
use crate::run::RunResult;

pub(super) fn render(result: &RunResult) -> Result<Vec<u8>, RenderError> {
    let mut report = Report::new(format!("promptlab: {}", result.eval_set));
    for (index, column) in result.columns.iter().enumerate() {
        let mut suite = TestSuite::new(column.id.clone());
        for cell in result.cells.iter().filter(|c| c.column == index) {
            let case = &result.cases[cell.case];
            let name = match case.label() {
                label if label.is_empty() => format!("case {}", case.id),
                label => format!("case {}: {label}", case.id),
            };
            let status = if cell.passed {
                TestCaseStatus::success()
            } else {
                let kind = if cell.is_error() {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
                let mut status = TestCaseStatus::non_success(kind);
                if let TestCaseStatus::NonSuccess {
                    message,
                    description,
                    ..
                } = &mut status
                {
                    *message = Some(cell.failure_reasons().join("; ").into());
                    *description = Some(format!("output:\n{}", cell.output).into());
                }
                status
            };
            let mut test_case = TestCase::new(name, status);
            test_case.set_classname(column.id.clone());
            test_case.set_time(std::time::Duration::from_secs_f64(
                cell.latency_ms.max(0.0) / 1000.0,
            ));
            suite.add_test_case(test_case);
        }
        report.add_test_suite(suite);
    }
    Ok(report.to_string()?.into_bytes())
}
