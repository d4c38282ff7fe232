//! Turning an `AssertionSpec` as written in YAML into a checked `AssertionKind`.

use super::*;

/// A spec being parsed as one registered type: the readings of its fields that the
/// registry's parsers share. Errors name the type by its canonical name.
pub(super) struct Parser<'a> {
    pub name: &'static str,
    pub spec: &'a AssertionSpec,
    pub dialect: Dialect,
}

impl Parser<'_> {
    /// `value`; null counts as missing.
    pub fn value(&self) -> Option<&Value> {
        self.spec.value.as_ref().filter(|v| !v.is_null())
    }

    pub fn invalid(&self, expected: &str) -> AssertionError {
        AssertionError::InvalidValue(self.name.into(), expected.into())
    }

    /// `value` as one non-empty string (a number counts: promptfoo stringifies it).
    pub fn string(&self) -> Result<String, AssertionError> {
        self.text("a non-empty string (or number) value")
    }

    /// The reference text to compare with (planning puts the case's `expected` here when
    /// `value` is left out).
    pub fn reference(&self) -> Result<String, AssertionError> {
        self.text("a reference text (or leave `value` out to use the case's `expected`)")
    }

    fn text(&self, expected: &str) -> Result<String, AssertionError> {
        let text = self.value().filter(|v| !v.is_boolean()).and_then(item_text);
        text.ok_or_else(|| self.invalid(expected))
    }

    /// `value` as a non-empty list of non-empty strings: a list, or a comma-separated string.
    pub fn list(&self) -> Result<Vec<String>, AssertionError> {
        let expected = "a non-empty list of non-empty strings or a comma-separated string";
        let list = match self.value() {
            Some(Value::Array(items)) => items.iter().map(item_text).collect::<Option<Vec<_>>>(),
            // promptfoo lets quotes protect commas in `contains-any`; promptlab asks for
            // a list rather than misread such a string.
            Some(Value::String(s)) => match self.dialect.split_list(s, self.name == "contains-any")
            {
                Some(fields) => Some(fields),
                None => {
                    return Err(
                        self.invalid(&format!("{expected} (with quotes or commas: a list)"))
                    );
                }
            },
            _ => None,
        };
        list.filter(|l| !l.is_empty())
            .ok_or_else(|| self.invalid(expected))
    }

    pub fn regex(&self) -> Result<RegexPattern, AssertionError> {
        let source = self
            .value()
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let source = source.ok_or_else(|| self.invalid("a regular expression string"))?;
        let compiled = self.dialect.regex(source);
        Ok(RegexPattern {
            source: source.to_string(),
            compiled: compiled.map_err(AssertionError::InvalidRegex)?,
        })
    }

    pub fn schema(&self) -> Result<Option<JsonSchema>, AssertionError> {
        parse_schema(self.name, self.value(), self.dialect)
    }

    pub fn bounds(&self) -> Result<Bounds, AssertionError> {
        parse_bounds(self.value(), self.spec).map_err(|e| self.invalid(&e.to_string()))
    }

    /// `provider`; blank counts as missing.
    pub fn provider(&self) -> Option<String> {
        self.spec.provider.clone().filter(|p| !p.trim().is_empty())
    }

    pub fn json_path(&self) -> Result<AssertionKind, AssertionError> {
        let source = self.spec.path.clone().filter(|p| !p.trim().is_empty());
        let source = source.ok_or_else(|| self.invalid("`path`, a JSONPath such as $.items[0]"))?;
        let compiled = serde_json_path::JsonPath::parse(&source)
            .map_err(|e| AssertionError::InvalidJsonPath(source.clone(), e.to_string()))?;
        Ok(AssertionKind::JsonPath {
            path: JsonPathExpr { source, compiled },
            value: self.value().cloned(),
        })
    }

    pub fn boxes(&self) -> Result<AssertionKind, AssertionError> {
        let expected =
            "a list of boxes `{label, box: [x1, y1, x2, y2]}` (e.g. `value: \"{{ expected }}\"`)";
        let boxes = self.value().ok_or_else(|| self.invalid(expected))?;
        let boxes = crate::score::detection::parse_boxes(boxes)
            .map_err(|e| self.invalid(&format!("{expected}: {e}")))?;
        let iou = self.spec.iou.unwrap_or(DEFAULT_BOX_IOU);
        if !(iou > 0.0 && iou <= 1.0) {
            return Err(self.invalid(&format!("`iou` between 0 and 1, got {iou}")));
        }
        if self.spec.threshold.is_some_and(|t| t > 1.0) {
            return Err(self.invalid("a `threshold` (minimum F1) between 0 and 1"));
        }
        Ok(AssertionKind::BoxesMatch {
            expected: boxes,
            iou,
        })
    }

    pub fn text_metric(&self, metric: TextMetric) -> Result<AssertionKind, AssertionError> {
        // promptfoo's `bleu` compares with the best of a list of references.
        if let (Dialect::Promptfoo, TextMetric::Bleu, Some(Value::Array(items))) =
            (self.dialect, metric, self.value())
        {
            let references: Option<Vec<String>> = items.iter().map(item_text).collect();
            if let Some([first, others @ ..]) = references.as_deref() {
                return Ok(AssertionKind::TextMetric {
                    metric,
                    reference: first.clone(),
                    others: others.to_vec(),
                });
            }
        }
        Ok(AssertionKind::TextMetric {
            metric,
            reference: self.reference()?,
            others: Vec::new(),
        })
    }

    pub fn model_graded(
        &self,
        grader: crate::score::judge::Grader,
    ) -> Result<AssertionKind, AssertionError> {
        let criterion = self.value().filter(|v| !v.is_boolean()).and_then(item_text);
        let criterion = criterion
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| self.invalid(grader.value_expected()))?;
        Ok(AssertionKind::ModelGraded {
            grader,
            criterion,
            judge: self.provider(),
        })
    }
}

/// A string or scalar as text: non-empty strings as they are, numbers and booleans as
/// promptfoo stringifies them (so `value: 0` looks for "0").
pub(super) fn item_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(scalar_text(v)),
        _ => None,
    }
}

/// An optional schema: an object or boolean, or JSON text holding one (promptfoo also
/// takes YAML text, read in its dialect). An empty string or null means no schema.
fn parse_schema(
    base: &str,
    value: Option<&Value>,
    dialect: Dialect,
) -> Result<Option<JsonSchema>, AssertionError> {
    let invalid = |message: String| AssertionError::InvalidSchema(base.into(), message);
    let schema = match value {
        None => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) if dialect == Dialect::Promptfoo => {
            crate::yaml::value_from_str(std::path::Path::new("schema"), s)
                .map_err(|e| invalid(e.to_string()))?
        }
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| invalid(e.to_string()))?,
        Some(v) => v.clone(),
    };
    if !(schema.is_object() || schema.is_boolean()) {
        return Err(invalid("a schema must be an object or a boolean".into()));
    }
    // promptfoo checks `format` (ajv-formats), so do the same.
    let mut options = jsonschema::options().should_validate_formats(true);
    if let Some(draft) = dialect.default_schema_draft()
        && schema.get("$schema").is_none()
    {
        options = options.with_draft(draft);
    }
    let validator = options.build(&schema);
    let validator = validator.map_err(|e| invalid(clip(&e.to_string(), 200)))?;
    Ok(Some(JsonSchema {
        schema,
        validator: Arc::new(validator),
    }))
}

type Bounds = (Option<usize>, Option<usize>);

/// Bounds of a count that do not read; worded as what was expected, to follow "TYPE
/// expects ".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum BoundsError {
    /// A bound that is not a whole number, or no bound at all.
    #[error("{BOUNDS_EXPECTED}")]
    NotWhole,
    #[error("either `value` or top-level `min`/`max`, not both")]
    ValueAndTopLevel,
    #[error("{BOUNDS_EXPECTED} (as `value: {{min, max}}`)")]
    OtherKeys,
    #[error("`min` ({min}) to be at most `max` ({max})")]
    MinAboveMax { min: usize, max: usize },
}

const BOUNDS_EXPECTED: &str = "a non-negative whole number, or `min` and/or `max`";

/// `value` as a number (exact) or `{min, max}`, or top-level `min`/`max`.
fn parse_bounds(value: Option<&Value>, spec: &AssertionSpec) -> Result<Bounds, BoundsError> {
    let whole = |v: Option<&Value>| -> Result<Option<usize>, BoundsError> {
        let n = match v {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(_) => None,
        };
        let n = n.filter(|n| *n >= 0.0 && n.fract() == 0.0 && *n <= u32::MAX as f64);
        n.map(|n| Some(n as usize)).ok_or(BoundsError::NotWhole)
    };
    let (top_min, top_max) = (spec.min.map(Value::from), spec.max.map(Value::from));
    let (min, max) = match value {
        None => (whole(top_min.as_ref())?, whole(top_max.as_ref())?),
        Some(_) if top_min.is_some() || top_max.is_some() => {
            return Err(BoundsError::ValueAndTopLevel);
        }
        Some(Value::Object(map)) if map.keys().all(|k| k == "min" || k == "max") => {
            (whole(map.get("min"))?, whole(map.get("max"))?)
        }
        Some(Value::Object(_)) => return Err(BoundsError::OtherKeys),
        Some(v) => (whole(Some(v))?, whole(Some(v))?),
    };
    match (min, max) {
        (None, None) => Err(BoundsError::NotWhole),
        (Some(min), Some(max)) if min > max => Err(BoundsError::MinAboveMax { min, max }),
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
            TextMetric {
                reference, others, ..
            } if !others.is_empty() => {
                let mut all = vec![reference.clone()];
                all.extend(others.iter().cloned());
                Some(json!(all))
            }
            TextMetric { reference, .. } | Similar { reference, .. } => Some(json!(reference)),
            ModelGraded { criterion, .. } => Some(json!(criterion)),
            Script(script) => Some(json!(script.written)),
            Xml { required, .. } if required.is_empty() => None,
            Xml { required, .. } => Some(json!(required)),
            Sql { check, .. } => {
                let mut value = serde_json::Map::new();
                if check.database != "MySQL" {
                    value.insert("databaseType".into(), json!(check.database));
                }
                if let Some(tables) = &check.allowed_tables {
                    value.insert("allowedTables".into(), json!(tables));
                }
                (!value.is_empty()).then_some(Value::Object(value))
            }
            FinishReason(want) => Some(json!(want)),
            Gleu(references) | Meteor(references) if references.len() == 1 => {
                Some(json!(references[0]))
            }
            Gleu(references) | Meteor(references) => Some(json!(references)),
            AssertSet(_) | Html { .. } | IsRefusal | OpenAiToolsCall | Cost | Perplexity { .. } => {
                None
            }
        };
        let assertions = match &self.kind {
            AssertSet(set) => Some(set.iter().map(Assertion::to_spec).collect()),
            _ => None,
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
            transform: self.transform.as_ref().map(|t| t.written.clone()),
            config: self.config.clone(),
            assertions,
        }
    }
}

fn boxes_value(boxes: &[crate::score::detection::LabelledRect]) -> Value {
    Value::Array(
        boxes
            .iter()
            .map(|b| json!({"label": b.label, "box": b.bbox}))
            .collect(),
    )
}
