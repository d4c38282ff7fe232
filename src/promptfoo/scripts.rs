//! Wiring of promptfoo's scripts into promptlab's assertions: `javascript`/`python`
//! values and `transform`s keep their code, with `file://` paths made absolute against
//! the config's folder (promptfoo resolves them there), and `assert-set`'s nested list.

use serde_json::{Map, Value, json};

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

/// `options.transformVars`: the test's variables (after `defaultTest`'s are merged in,
/// before lists expand and `file://` values load) through the script, whose returned
/// object is merged over them, as promptfoo does once per test before the run.
pub(super) fn transform_vars(
    reader: &Reader,
    code: &str,
    vars: Map<String, Value>,
    at: &str,
) -> Result<Map<String, Value>, PromptfooError> {
    use crate::script::{Language, Role, Script};
    let failed = |message: String| reader.invalid(format!("{at}: transformVars: {message}"));
    let script = Script::parse(code, Language::JavaScript, &reader.base)
        .map_err(|e| failed(e.to_string()))?;
    // promptfoo's context for it: an empty prompt and a fresh id.
    let context = json!({"prompt": {}, "uuid": uuid_v4()});
    let returned = script
        .call(Role::VarsTransform, &Value::Object(vars.clone()), &context)
        .map_err(|e| failed(e.to_string()))?;
    let Value::Object(changed) = returned else {
        return Err(failed(format!(
            "expected the script to return an object of variables, got {returned}"
        )));
    };
    let mut vars = vars;
    vars.extend(changed);
    Ok(vars)
}

/// A random version-4 UUID, as `crypto.randomUUID()` gives.
fn uuid_v4() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
