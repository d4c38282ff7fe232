//! Structured-output checks in promptfoo's terms: XML (well-formed, with required
//! element paths), SQL (parsed with sqlparser in the config's dialect, tables checked
//! against an allow-list), HTML (promptfoo's heuristics), refusal phrases and finish
//! reasons.

pub use super::refusal::is_refusal;

use std::ops::ControlFlow;
use std::sync::LazyLock;

use regex::Regex;

/// Why an output is not the XML `is-xml` or `contains-xml` asks for.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("no XML content found")]
    NotFound,
    /// The span `contains-xml` found, and what is wrong with it.
    #[error("the XML found is not valid: {0}")]
    InvalidSpan(#[source] Box<XmlError>),
    #[error("XML is missing opening tag")]
    NoOpeningTag,
    #[error("not XML: {0}")]
    NotXml(#[source] roxmltree::Error),
    #[error("missing required elements: {}", .0.join(", "))]
    MissingElements(Vec<String>),
}

/// Why an output is not HTML by promptfoo's `is-html` heuristics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HtmlError {
    #[error("output is empty")]
    Empty,
    #[error("output appears to be XML, not HTML")]
    LooksLikeXml,
    #[error("output must be wrapped in HTML tags")]
    Unwrapped,
    #[error("output does not contain recognized HTML elements")]
    NoKnownElements,
}

/// Why an output is not the SQL `is-sql` or `contains-sql` asks for; `database` is
/// promptfoo's name of the dialect.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("SQL statement does not conform to the provided {database} database syntax")]
    Nonconforming { database: String },
    #[error("SQL statement does not conform to the provided {database} database syntax: {source}")]
    Unparsable {
        database: String,
        #[source]
        source: sqlparser::parser::ParserError,
    },
    /// The table authorities (`select::null::users`) no allowed pattern matches.
    #[error(
        "SQL validation failed: authority = '{}' is required in table whiteList to execute SQL",
        .denied.join("', '")
    )]
    NotAllowed { denied: Vec<String> },
}

/// `is-xml`: well-formed XML whose root starts the output; `contains-xml`: the first
/// XML-looking span (promptfoo's regex) is. `required` are paths like `root.child`.
pub fn xml(output: &str, contained: bool, required: &[String]) -> Result<(), XmlError> {
    if !contained {
        return validate_xml(output, required);
    }
    static SPAN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"<\?xml.*?>[\s\S]*</[^>]+>|\S*<[^>]+>[\s\S]*</[^>]+>").expect("valid regex")
    });
    match SPAN.find(output) {
        None => Err(XmlError::NotFound),
        Some(span) => validate_xml(span.as_str(), required)
            .map_err(|why| XmlError::InvalidSpan(Box::new(why))),
    }
}

fn validate_xml(text: &str, required: &[String]) -> Result<(), XmlError> {
    if !text.starts_with('<') {
        return Err(XmlError::NoOpeningTag);
    }
    let document = roxmltree::Document::parse(text).map_err(XmlError::NotXml)?;
    let root = document.root_element();
    let missing: Vec<String> = required
        .iter()
        .filter(|path| !has_path(root, path))
        .cloned()
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(XmlError::MissingElements(missing)),
    }
}

/// `root.child.grandchild`, by element names from the root (an attribute as `@_name`,
/// promptfoo's parser's spelling).
fn has_path(root: roxmltree::Node, path: &str) -> bool {
    let mut parts = path.split('.');
    if parts.next() != Some(root.tag_name().name()) {
        return false;
    }
    let mut current = root;
    for part in parts {
        if let Some(attribute) = part.strip_prefix("@_") {
            return current.attribute(attribute).is_some();
        }
        match current
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == part)
        {
            Some(child) => current = child,
            None => return false,
        }
    }
    true
}

/// HTML5 elements promptfoo recognises (custom elements, with a hyphen, count too).
const HTML_ELEMENTS: &[&str] = &[
    "html",
    "head",
    "title",
    "base",
    "link",
    "meta",
    "style",
    "body",
    "article",
    "section",
    "nav",
    "aside",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "footer",
    "address",
    "p",
    "hr",
    "pre",
    "blockquote",
    "ol",
    "ul",
    "li",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "main",
    "div",
    "a",
    "em",
    "strong",
    "small",
    "s",
    "cite",
    "q",
    "dfn",
    "abbr",
    "ruby",
    "rt",
    "rp",
    "data",
    "time",
    "code",
    "var",
    "samp",
    "kbd",
    "sub",
    "sup",
    "i",
    "b",
    "u",
    "mark",
    "bdi",
    "bdo",
    "span",
    "br",
    "wbr",
    "img",
    "iframe",
    "embed",
    "object",
    "param",
    "picture",
    "source",
    "video",
    "audio",
    "track",
    "map",
    "area",
    "svg",
    "math",
    "script",
    "noscript",
    "canvas",
    "ins",
    "del",
    "table",
    "caption",
    "colgroup",
    "col",
    "tbody",
    "thead",
    "tfoot",
    "tr",
    "td",
    "th",
    "form",
    "label",
    "input",
    "button",
    "select",
    "datalist",
    "optgroup",
    "option",
    "textarea",
    "output",
    "progress",
    "meter",
    "fieldset",
    "legend",
    "details",
    "summary",
    "dialog",
    "menu",
    "slot",
    "template",
];

/// Elements without content or end tag.
const VOID_ELEMENTS: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)(?:\s[^>]*)?(/?)>|<!--[\s\S]*?-->|<![^>]*>")
        .expect("valid regex")
});

/// promptfoo's `is-html` (there, a jsdom parse): not empty, not an XML document, no text
/// outside elements, and at least one element HTML knows.
pub fn is_html(output: &str) -> Result<(), HtmlError> {
    let trimmed = output.trim();
    if trimmed.is_empty() {
        return Err(HtmlError::Empty);
    }
    if trimmed.to_ascii_lowercase().starts_with("<?xml") {
        return Err(HtmlError::LooksLikeXml);
    }
    let mut depth = 0usize;
    let mut last = 0;
    let mut known = false;
    for tag in TAG.captures_iter(trimmed) {
        let Some(whole) = tag.get(0) else { continue };
        if depth == 0 && !trimmed[last..whole.start()].trim().is_empty() {
            return Err(HtmlError::Unwrapped);
        }
        last = whole.end();
        let Some(name) = tag.get(2).map(|n| n.as_str().to_ascii_lowercase()) else {
            continue; // a comment or doctype
        };
        known |= HTML_ELEMENTS.contains(&name.as_str()) || name.contains('-');
        let closing = tag.get(1).is_some_and(|m| !m.as_str().is_empty());
        let self_closing = tag.get(3).is_some_and(|m| !m.as_str().is_empty());
        if closing {
            depth = depth.saturating_sub(1);
        } else if !self_closing && !VOID_ELEMENTS.contains(&name.as_str()) {
            depth += 1;
        }
    }
    if depth == 0 && !trimmed[last..].trim().is_empty() {
        return Err(HtmlError::Unwrapped);
    }
    match known {
        true => Ok(()),
        false => Err(HtmlError::NoKnownElements),
    }
}

/// promptfoo's `contains-html`: at least two of its HTML indicators.
pub fn contains_html(output: &str) -> bool {
    static PATTERNS: LazyLock<Vec<(Regex, u32)>> = LazyLock::new(|| {
        [
            (r"<[a-zA-Z][a-zA-Z0-9-]*(?:\s[^>]*)?/>", 1),
            (r"&(?:[a-zA-Z]+|#[0-9]+|#x[0-9a-fA-F]+);", 1),
            (r"(?i)<!DOCTYPE\s+html", 2),
            (r"<!--[^-]*(?:-[^-]+)*-->", 1),
            (r#"\s[a-zA-Z-]+=\s*["'][^"']*["']"#, 1),
            (
                r"(?i)<(html|head|body|div|span|p|a|img|h[1-6]|ul|ol|li|table|tr|td|th|form|input|button|script|style|link|meta|br|hr)\b",
                2,
            ),
        ]
        .into_iter()
        .filter_map(|(p, w)| Regex::new(p).ok().map(|r| (r, w)))
        .collect()
    });
    static OPENING: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"<[a-zA-Z][a-zA-Z0-9-]*(?:\s[^>]*)?>").expect("valid"));
    static CLOSING: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"</[a-zA-Z][a-zA-Z0-9-]*\s*>").expect("valid"));
    let mut indicators = match (OPENING.is_match(output), CLOSING.is_match(output)) {
        (true, true) => 2,
        (true, false) | (false, true) => 1,
        (false, false) => 0,
    };
    for (pattern, weight) in PATTERNS.iter() {
        if pattern.is_match(output) {
            indicators += weight;
        }
    }
    indicators >= 2
}

/// `is-sql`'s value: promptfoo's `databaseType` (default MySQL) and `allowedTables`
/// (`select::null::users`-style patterns, regexes matched whole, ignoring case).
#[derive(Debug, Clone, PartialEq)]
pub struct SqlCheck {
    pub database: String,
    pub allowed_tables: Option<Vec<String>>,
}

impl SqlCheck {
    pub fn dialect_name(&self) -> &str {
        &self.database
    }

    /// The sqlparser dialect for promptfoo's (node-sql-parser's) database names.
    pub fn dialect(database: &str) -> Option<Box<dyn sqlparser::dialect::Dialect>> {
        let name = match database.to_ascii_lowercase().as_str() {
            "mariadb" => "mysql".to_string(),
            "transactsql" | "tsql" => "mssql".to_string(),
            "athena" | "trino" | "flinksql" | "noql" => "generic".to_string(),
            "db2" => "ansi".to_string(),
            other => other.to_string(),
        };
        sqlparser::dialect::dialect_from_str(name)
    }

    /// `contained`: the first ```` ```sql ```` block, if any, else the whole output.
    pub fn check(&self, output: &str, contained: bool) -> Result<(), SqlError> {
        static FENCE: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"```(?:sql)?([^`]+)```").expect("valid regex"));
        let sql = match FENCE.captures(output).and_then(|c| c.get(1)) {
            Some(block) if contained => block.as_str().trim(),
            _ => output,
        };
        let nonconforming = || SqlError::Nonconforming {
            database: self.database.clone(),
        };
        // promptfoo's extra checks for what its parser lets through.
        static TWO_NAMES: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"(?i)select\s+[A-Za-z_][A-Za-z0-9_]*\s+[A-Za-z_][A-Za-z0-9_]*\s+from")
                .expect("valid regex")
        });
        static SERIES: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"(?i)\bgenerate_series\s*\(").expect("valid regex"));
        let trimmed = sql.trim();
        if trimmed.matches('`').count() % 2 == 1
            || TWO_NAMES.is_match(trimmed)
            || (self.database == "MySQL" && SERIES.is_match(trimmed))
        {
            return Err(nonconforming());
        }
        let dialect = Self::dialect(&self.database).ok_or_else(nonconforming)?;
        let statements =
            sqlparser::parser::Parser::parse_sql(dialect.as_ref(), sql).map_err(|source| {
                SqlError::Unparsable {
                    database: self.database.clone(),
                    source,
                }
            })?;
        let Some(allowed) = &self.allowed_tables else {
            return Ok(());
        };
        let patterns: Vec<Regex> = allowed
            .iter()
            .filter_map(|p| Regex::new(&format!("(?i)^(?:{p})$")).ok())
            .collect();
        let mut denied = Vec::new();
        for statement in &statements {
            let kind = statement_kind(statement);
            let _ = sqlparser::ast::visit_relations(statement, |name| {
                let parts: Vec<String> = name
                    .to_string()
                    .split('.')
                    .map(|p| p.trim_matches(['`', '"', '[', ']']).to_string())
                    .collect();
                let (database, table) = match parts.as_slice() {
                    [.., database, table] => (database.clone(), table.clone()),
                    [table] => ("null".to_string(), table.clone()),
                    [] => return ControlFlow::<()>::Continue(()),
                };
                let authority = format!("{kind}::{database}::{table}");
                if !patterns.iter().any(|p| p.is_match(&authority)) && !denied.contains(&authority)
                {
                    denied.push(authority);
                }
                ControlFlow::Continue(())
            });
        }
        match denied.is_empty() {
            true => Ok(()),
            false => Err(SqlError::NotAllowed { denied }),
        }
    }
}

/// `select`, `insert`, `update`... as node-sql-parser names a statement's tables.
fn statement_kind(statement: &sqlparser::ast::Statement) -> String {
    match statement {
        sqlparser::ast::Statement::Query(_) => "select".into(),
        other => other
            .to_string()
            .split_whitespace()
            .next()
            .unwrap_or("select")
            .to_ascii_lowercase(),
    }
}

/// A finish reason in OpenAI's words, as promptfoo normalises them.
pub fn finish_reason_name(finish: crate::engine::FinishReason) -> &'static str {
    use crate::engine::FinishReason;
    match finish {
        FinishReason::EndOfText | FinishReason::StopSequence => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_is_well_formed_with_required_paths() {
        let required = |paths: &[&str]| paths.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert!(xml("<a><b>1</b></a>", false, &required(&["a.b"])).is_ok());
        assert!(xml("<a><b></a>", false, &[]).is_err());
        assert!(xml("plain", false, &[]).is_err());
        assert!(xml("<a><c/></a>", false, &required(&["a.b"])).is_err());
        assert!(xml("<a x=\"1\"/>", false, &required(&["a.@_x"])).is_ok());
        assert!(xml("Here: <a><b>1</b></a> done", true, &required(&["a.b"])).is_ok());
        assert!(xml("no markup", true, &[]).is_err());
    }

    #[test]
    fn html_follows_promptfoo_heuristics() {
        assert!(is_html("<div><p>Hi</p></div>").is_ok());
        assert!(is_html("<p>one</p><p>two</p>").is_ok());
        assert!(is_html("Hello <b>world</b>").is_err());
        assert!(is_html("<foo>bar</foo>").is_err());
        assert!(is_html("<?xml version=\"1.0\"?><a/>").is_err());
        assert!(is_html("<my-widget>x</my-widget>").is_ok());
        assert!(contains_html("Sure: <div>hi</div>"));
        assert!(!contains_html("a < b and c > d"));
    }

    #[test]
    fn sql_parses_in_the_dialect_and_checks_tables() {
        let check = |allowed: Option<Vec<&str>>| SqlCheck {
            database: "MySQL".into(),
            allowed_tables: allowed.map(|a| a.into_iter().map(String::from).collect()),
        };
        assert!(
            check(None)
                .check("SELECT id FROM users WHERE id = 1", false)
                .is_ok()
        );
        assert!(check(None).check("SELEC id FROM users", false).is_err());
        assert!(
            check(None)
                .check("SELECT id name FROM users", false)
                .is_err()
        );
        assert!(
            check(None)
                .check("Here:\n```sql\nSELECT 1\n```", true)
                .is_ok()
        );
        let only_users = check(Some(vec!["select::null::users"]));
        assert!(only_users.check("SELECT * FROM users", false).is_ok());
        assert!(only_users.check("SELECT * FROM orders", false).is_err());
    }

    #[test]
    fn refusals_are_promptfoo_phrases() {
        assert!(is_refusal("I’m sorry, but I can't do that."));
        assert!(is_refusal("Well, as an AI I cannot help."));
        assert!(!is_refusal("Paris is the capital of France."));
    }
}
