//! Parsers of the types promptfoo configs lean on beyond plain text checks: scripts,
//! `assert-set`, XML/SQL values, `finish-reason`.

use super::registry::Needs;
use super::*;
use crate::script::Language;

impl Parser<'_> {
    /// `javascript`/`python`: inline code or `file://path[:function]` (a path relative to
    /// the working directory; promptfoo configs resolve theirs against the config).
    pub fn script(&self, language: Language) -> Result<AssertionKind, AssertionError> {
        let Some(Value::String(code)) = self.value() else {
            return Err(
                self.invalid("code (an expression, a function body) or file://path[:function]")
            );
        };
        if code.trim().is_empty() {
            return Err(
                self.invalid("code (an expression, a function body) or file://path[:function]")
            );
        }
        Script::parse(code, language, std::path::Path::new(""))
            .map(|script| AssertionKind::Script(Box::new(script)))
            .map_err(|e| self.invalid(&format!("a readable script: {e}")))
    }

    /// `assert-set`'s nested `assert` list: checked on the output alone (no judge or
    /// embedding model inside a set).
    pub fn assert_set(&self) -> Result<AssertionKind, AssertionError> {
        let Some(specs) = self.spec.assertions.as_ref().filter(|a| !a.is_empty()) else {
            return Err(self.invalid("an `assert` list of assertions"));
        };
        let mut set = Vec::new();
        for spec in specs {
            let assertion = Assertion::from_spec_in(spec, self.dialect)?;
            let needs = assertion.kind.assertion_type().map(|t| t.needs);
            if !matches!(needs, Some(Needs::Output | Needs::Latency)) {
                return Err(self.invalid(&format!(
                    "assertions checked on the output alone (`{}` needs a model)",
                    spec.kind
                )));
            }
            set.push(assertion);
        }
        Ok(AssertionKind::AssertSet(set))
    }

    /// promptfoo's `is-xml` value: element paths as a comma-separated string, a list, or
    /// `{requiredElements: [...]}`.
    pub fn xml(&self, contained: bool) -> Result<AssertionKind, AssertionError> {
        let expected = "required element paths: a comma-separated string, a list, or {requiredElements: [...]}";
        let items = |items: &Vec<Value>| items.iter().map(item_text).collect::<Option<Vec<_>>>();
        let required = match self.value() {
            None => Vec::new(),
            Some(Value::String(s)) => s.split(',').map(|e| e.trim().to_string()).collect(),
            Some(Value::Array(list)) => items(list).ok_or_else(|| self.invalid(expected))?,
            Some(Value::Object(map)) => match map.get("requiredElements") {
                Some(Value::Array(list)) => items(list).ok_or_else(|| self.invalid(expected))?,
                _ if map.is_empty() => Vec::new(),
                _ => return Err(self.invalid(expected)),
            },
            Some(_) => return Err(self.invalid(expected)),
        };
        Ok(AssertionKind::Xml {
            contained,
            required,
        })
    }

    /// promptfoo's `is-sql` value: `{databaseType, allowedTables}`.
    pub fn sql(&self, contained: bool) -> Result<AssertionKind, AssertionError> {
        let expected = "an object {databaseType, allowedTables} (or no value)";
        let mut check = structured::SqlCheck {
            database: "MySQL".into(),
            allowed_tables: None,
        };
        match self.value() {
            None => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("databaseType", Value::String(name)) => check.database = name.clone(),
                        ("allowedTables", Value::Array(list)) => {
                            let tables = list.iter().map(item_text).collect::<Option<Vec<_>>>();
                            check.allowed_tables =
                                Some(tables.ok_or_else(|| self.invalid(expected))?);
                        }
                        ("allowedColumns", _) => {
                            return Err(self.invalid(
                                "{databaseType, allowedTables}: promptlab does not check `allowedColumns`",
                            ));
                        }
                        _ => return Err(self.invalid(expected)),
                    }
                }
            }
            Some(_) => return Err(self.invalid(expected)),
        }
        if structured::SqlCheck::dialect(&check.database).is_none() {
            return Err(self.invalid(&format!(
                "a databaseType promptlab's SQL parser knows (MySQL, PostgreSQL, SQLite, BigQuery, Snowflake, Redshift, Hive, TransactSQL, ...), not {:?}",
                check.database
            )));
        }
        Ok(AssertionKind::Sql { contained, check })
    }

    pub fn finish_reason(&self) -> Result<AssertionKind, AssertionError> {
        match self.value() {
            Some(Value::String(s)) if !s.is_empty() => Ok(AssertionKind::FinishReason(s.clone())),
            _ => Err(self.invalid("the expected finish reason (`stop`, `length`...)")),
        }
    }

    /// `gleu`: a reference text, or a list of them.
    pub fn gleu(&self) -> Result<AssertionKind, AssertionError> {
        self.references().map(AssertionKind::Gleu)
    }

    /// `meteor`: a reference text, or a list of them.
    pub fn meteor(&self) -> Result<AssertionKind, AssertionError> {
        self.references().map(AssertionKind::Meteor)
    }

    fn references(&self) -> Result<Vec<String>, AssertionError> {
        let expected = "a reference text, or a list of reference texts";
        match self.value() {
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .map(|v| v.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| self.invalid(expected)),
            Some(Value::String(text)) => Ok(vec![text.clone()]),
            _ => Err(self.invalid(expected)),
        }
    }
}
