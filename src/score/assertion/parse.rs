//! Turning an `AssertionSpec` as written in YAML into a checked `AssertionKind`.

use super::*;

pub(super) fn unknown_type(name: &str, negated: bool, base: &str) -> AssertionError {
    let wanted = base.to_lowercase().replace('_', "-");
    let suggestion = ASSERTION_TYPES
        .iter()
        .map(|t| (strsim::levenshtein(&wanted, t), *t))
        .min()
        .filter(|(d, t)| *d <= 2 || *d * 3 <= t.len())
        .map(|(_, t)| format!("{}{t}", if negated { "not-" } else { "" }));
    let name = name.to_owned();
    AssertionError::UnknownType { name, suggestion }
}

pub(super) fn parse_kind(
    base: &str,
    spec: &AssertionSpec,
) -> Result<AssertionKind, AssertionError> {
    use AssertionKind::*;
    let value = spec.value.as_ref().filter(|v| !v.is_null());
    let invalid = |expected: &str| AssertionError::InvalidValue(base.into(), expected.into());
    // promptfoo stringifies numbers (and booleans, in lists), so `value: 0` looks for "0".
    let text = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(scalar_text(v)),
        _ => None,
    };
    Ok(match base {
        "equals" => Equals(value.cloned().ok_or_else(|| {
            invalid("a value (a string, or a JSON object/array to compare with the parsed output)")
        })?),
        "contains" | "icontains" | "starts-with" | "levenshtein" => {
            let s = value.filter(|v| !v.is_boolean()).and_then(text);
            let s = s.ok_or_else(|| invalid("a non-empty string (or number) value"))?;
            match base {
                "contains" => Contains(s),
                "icontains" => IContains(s),
                "starts-with" => StartsWith(s),
                _ => Levenshtein { value: s },
            }
        }
        "contains-any" | "contains-all" | "icontains-any" | "icontains-all" => {
            let expected = "a non-empty list of non-empty strings or a comma-separated string";
            let list = match value {
                Some(Value::Array(items)) => items.iter().map(text).collect::<Option<Vec<_>>>(),
                // promptfoo also lets quotes protect commas; rather than misread such a
                // string, ask for a list.
                Some(Value::String(s)) if s.contains('"') => {
                    return Err(invalid(&format!(
                        "{expected} (with quotes or commas: a list)"
                    )));
                }
                Some(Value::String(s)) => {
                    let fields = s.split(',').map(str::trim).filter(|f| !f.is_empty());
                    Some(fields.map(str::to_owned).collect())
                }
                _ => None,
            };
            let list = list.filter(|l| !l.is_empty());
            let list = list.ok_or_else(|| invalid(expected))?;
            match base {
                "contains-any" => ContainsAny(list),
                "contains-all" => ContainsAll(list),
                "icontains-any" => IContainsAny(list),
                _ => IContainsAll(list),
            }
        }
        "rouge-n" | "rouge-1" | "rouge-2" | "rouge-l" | "bleu" | "chrf" => {
            let reference = value.filter(|v| !v.is_boolean()).and_then(text);
            let reference = reference.ok_or_else(|| {
                invalid("a reference text (or leave `value` out to use the case's `expected`)")
            })?;
            let metric = match base {
                "rouge-2" => self::TextMetric::Rouge(2),
                "rouge-l" => self::TextMetric::RougeL,
                "bleu" => self::TextMetric::Bleu,
                "chrf" => self::TextMetric::Chrf,
                _ => self::TextMetric::Rouge(1),
            };
            TextMetric { metric, reference }
        }
        "similar" => {
            let reference = value.filter(|v| !v.is_boolean()).and_then(text);
            let reference = reference.ok_or_else(|| {
                invalid("a reference text (or leave `value` out to use the case's `expected`)")
            })?;
            Similar {
                reference,
                model: None,
                provider: spec.provider.clone().filter(|p| !p.trim().is_empty()),
            }
        }
        b if crate::score::judge::Grader::from_name(b).is_some() => {
            let grader = crate::score::judge::Grader::from_name(b).unwrap_or_default();
            let criterion = value.filter(|v| !v.is_boolean()).and_then(text);
            let criterion = criterion
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| invalid(grader.value_expected()))?;
            ModelGraded {
                grader,
                criterion,
                judge: spec.provider.clone().filter(|p| !p.trim().is_empty()),
            }
        }
        "regex" => {
            let source = value.and_then(Value::as_str).filter(|s| !s.is_empty());
            let source = source.ok_or_else(|| invalid("a regular expression string"))?;
            let re = regex::Regex::new(source);
            Regex(RegexPattern(
                re.map_err(|e| AssertionError::InvalidRegex(e.to_string()))?,
            ))
        }
        "is-json" => IsJson(parse_schema(base, value)?),
        "contains-json" => ContainsJson(parse_schema(base, value)?),
        "json-path" => {
            let source = spec.path.clone().filter(|p| !p.trim().is_empty());
            let source = source.ok_or_else(|| invalid("`path`, a JSONPath such as $.items[0]"))?;
            let compiled = serde_json_path::JsonPath::parse(&source)
                .map_err(|e| AssertionError::InvalidJsonPath(source.clone(), e.to_string()))?;
            let path = JsonPathExpr { source, compiled };
            JsonPath {
                path,
                value: value.cloned(),
            }
        }
        "word-count" | "character-count" => {
            let (min, max) = parse_bounds(value, spec).map_err(|e| invalid(&e))?;
            match base {
                "word-count" => WordCount { min, max },
                _ => Length { min, max },
            }
        }
        "latency" if value.is_some() => {
            return Err(AssertionError::UnexpectedField(base.into(), "value"));
        }
        "latency" if spec.threshold.is_none() => return Err(AssertionError::MissingThreshold),
        "latency" => Latency,
        "boxes-match" => {
            let expected = "a list of boxes `{label, box: [x1, y1, x2, y2]}` (e.g. `value: \"{{ expected }}\"`)";
            let boxes = value.ok_or_else(|| invalid(expected))?;
            let boxes = crate::score::detection::parse_boxes(boxes)
                .map_err(|e| invalid(&format!("{expected}: {e}")))?;
            let iou = spec.iou.unwrap_or(DEFAULT_BOX_IOU);
            if !(iou > 0.0 && iou <= 1.0) {
                return Err(invalid(&format!("`iou` between 0 and 1, got {iou}")));
            }
            if spec.threshold.is_some_and(|t| t > 1.0) {
                return Err(invalid("a `threshold` (minimum F1) between 0 and 1"));
            }
            BoxesMatch {
                expected: boxes,
                iou,
            }
        }
        _ => return Err(unknown_type(&spec.kind, false, base)),
    })
}

/// An optional schema: an object or boolean, or JSON text holding one (promptfoo would also
/// take YAML text or a file:// reference). An empty string or null means no schema.
pub(super) fn parse_schema(
    base: &str,
    value: Option<&Value>,
) -> Result<Option<JsonSchema>, AssertionError> {
    let invalid = |message: String| AssertionError::InvalidSchema(base.into(), message);
    let schema = match value {
        None => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| invalid(e.to_string()))?,
        Some(v) => v.clone(),
    };
    if !(schema.is_object() || schema.is_boolean()) {
        return Err(invalid("a schema must be an object or a boolean".into()));
    }
    // promptfoo checks `format` (ajv-formats), so do the same.
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema);
    let validator = validator.map_err(|e| invalid(clip(&e.to_string(), 200)))?;
    Ok(Some(JsonSchema {
        schema,
        validator: Arc::new(validator),
    }))
}

type Bounds = (Option<usize>, Option<usize>);

/// `value` as a number (exact) or `{min, max}`, or top-level `min`/`max`.
pub(super) fn parse_bounds(value: Option<&Value>, spec: &AssertionSpec) -> Result<Bounds, String> {
    let expected = "a non-negative whole number, or `min` and/or `max`";
    let whole = |v: Option<&Value>| -> Result<Option<usize>, String> {
        let n = match v {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(_) => None,
        };
        let n = n.filter(|n| *n >= 0.0 && n.fract() == 0.0 && *n <= u32::MAX as f64);
        n.map(|n| Some(n as usize))
            .ok_or_else(|| expected.to_owned())
    };
    let (top_min, top_max) = (spec.min.map(Value::from), spec.max.map(Value::from));
    let (min, max) = match value {
        None => (whole(top_min.as_ref())?, whole(top_max.as_ref())?),
        Some(_) if top_min.is_some() || top_max.is_some() => {
            return Err("either `value` or top-level `min`/`max`, not both".into());
        }
        Some(Value::Object(map)) if map.keys().all(|k| k == "min" || k == "max") => {
            (whole(map.get("min"))?, whole(map.get("max"))?)
        }
        Some(Value::Object(_)) => return Err(format!("{expected} (as `value: {{min, max}}`)")),
        Some(v) => (whole(Some(v))?, whole(Some(v))?),
    };
    match (min, max) {
        (None, None) => Err(expected.to_owned()),
        (Some(a), Some(b)) if a > b => Err(format!("`min` ({a}) to be at most `max` ({b})")),
        bounds => Ok(bounds),
    }
}

impl Assertion {
    /// The spec this assertion stands for, normalised (canonical type, `min`/`max` in `value`).
    pub fn to_spec(&self) -> AssertionSpec {
        use AssertionKind::*;
        let value = match &self.kind {
            Equals(v) => Some(v.clone()),
            Contains(s) | IContains(s) | StartsWith(s) | Levenshtein { value: s } => Some(json!(s)),
            ContainsAny(l) | ContainsAll(l) | IContainsAny(l) | IContainsAll(l) => Some(json!(l)),
            Regex(p) => Some(json!(p.as_str())),
            IsJson(s) | ContainsJson(s) => s.as_ref().map(|s| s.schema.clone()),
            JsonPath { value, .. } => value.clone(),
            WordCount { min, max } | Length { min, max } => Some(match (min, max) {
                (Some(a), Some(b)) if a == b => json!(a),
                (Some(a), Some(b)) => json!({"min": a, "max": b}),
                (Some(a), None) => json!({"min": a}),
                (None, b) => json!({"max": b}),
            }),
            Latency => None,
            BoxesMatch { expected, .. } => Some(boxes_value(expected)),
            TextMetric { reference, .. } | Similar { reference, .. } => Some(json!(reference)),
            ModelGraded { criterion, .. } => Some(json!(criterion)),
        };
        let provider = match &self.kind {
            ModelGraded { judge, .. } => judge.clone(),
            Similar { provider, .. } => provider.clone(),
            _ => None,
        };
        let path = match &self.kind {
            JsonPath { path, .. } => Some(path.source.clone()),
            _ => None,
        };
        let iou = match &self.kind {
            BoxesMatch { iou, .. } => Some(*iou),
            _ => None,
        };
        AssertionSpec {
            kind: self.type_name(),
            value,
            threshold: self.threshold,
            weight: (self.weight != 1.0).then_some(self.weight),
            metric: self.metric.clone(),
            path,
            min: None,
            max: None,
            iou,
            provider,
        }
    }
}
