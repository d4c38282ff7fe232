//! Wiring of promptfoo's scripts into promptlab's assertions: `javascript`/`python`
//! values and `transform`s keep their code, with `file://` paths made absolute against
//! the config's folder (promptfoo resolves them there), and `assert-set`'s nested list.

use serde_json::Value;

use super::{PromptfooError, Reader};
use crate::score::assertion::AssertionSpec;

/// Types whose `value` is code or a `file://` script rather than data.
pub(super) fn is_script_type(kind: &str) -> bool {
    matches!(
        kind.strip_prefix("not-").unwrap_or(kind),
        "javascript" | "python"
    )
}

/// Inline code as it is; `file://rel.js[:fn]` as `file:///abs/rel.js[:fn]`.
pub(super) fn resolve(reader: &Reader, code: &str) -> String {
    match code.strip_prefix("file://") {
        Some(reference) if !reference.starts_with('/') => {
            format!("file://{}", reader.base.join(reference).display())
        }
        _ => code.to_string(),
    }
}

type ReadAssertion =
    fn(&mut Reader, &Value, Option<&str>, &str) -> Result<Option<AssertionSpec>, PromptfooError>;

/// `assert-set`'s `assert:` list, each read as a top-level assertion is.
pub(super) fn nested(
    reader: &mut Reader,
    value: &Value,
    metric: Option<&str>,
    at: &str,
    read: ReadAssertion,
) -> Result<Vec<AssertionSpec>, PromptfooError> {
    let Value::Array(items) = value else {
        return Err(reader.invalid(format!("{at}.assert: expected a list of assertions")));
    };
    let mut specs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(spec) = read(reader, item, metric, &format!("{at}.assert[{i}]"))? {
            specs.push(spec);
        }
    }
    Ok(specs)
}
