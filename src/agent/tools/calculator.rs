//! `calculator`: exact arithmetic on decimals (+ − × ÷, %, integer powers, brackets) with
//! big rationals, so `0.1 + 0.2` is `0.3` and `1/3` stays `1/3` — small models are bad at
//! sums, and a calculator that rounds would teach them nothing.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError};

pub struct Calculator;

impl Tool for Calculator {
    fn name(&self) -> &'static str {
        "calculator"
    }

    fn description(&self) -> String {
        "Evaluates an arithmetic expression exactly: numbers, + - * / % ^ (whole-number powers) and brackets, e.g. \"(17.5 - 2) * 3 / 4\".".into()
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "expression": {"type": "string", "description": "the expression to evaluate"}
            },
            "required": ["expression"],
            "additionalProperties": false
        })
    }

    fn call(&mut self, args: &Value, _context: &ToolContext) -> Result<Value, ToolError> {
        let expression = args
            .get("expression")
            .and_then(Value::as_str)
            .ok_or_else(|| ToolError::Arguments("expected `expression`, a string".into()))?;
        let value = evaluate(expression).map_err(ToolError::Arguments)?;
        let mut result = json!({ "expression": expression, "result": display(&value) });
        if !terminates(&value) {
            result["approximately"] = json!(approximate(&value));
        }
        Ok(result)
    }
}

/// Evaluates `text`; the error says where parsing stopped and what was expected.
pub fn evaluate(text: &str) -> Result<BigRational, String> {
    let mut parser = Parser {
        chars: text.chars().filter(|c| !c.is_whitespace()).collect(),
        at: 0,
    };
    if parser.chars.is_empty() {
        return Err("the expression is empty".into());
    }
    let value = parser.sum()?;
    match parser.peek() {
        None => Ok(value),
        Some(c) => Err(format!(
            "unexpected `{c}` at character {}; expected an operator or the end",
            parser.at + 1
        )),
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

/// Powers above this would build numbers no answer needs (and take long to build).
const MAX_EXPONENT: i64 = 1000;

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn sum(&mut self) -> Result<BigRational, String> {
        let mut value = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.at += 1;
            let rhs = self.product()?;
            value = if op == '+' { value + rhs } else { value - rhs };
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<BigRational, String> {
        let mut value = self.unary()?;
        while let Some(op @ ('*' | '/' | '%' | '×' | '÷')) = self.peek() {
            self.at += 1;
            let rhs = self.unary()?;
            if matches!(op, '/' | '%' | '÷') && rhs.is_zero() {
                return Err("division by zero".into());
            }
            value = match op {
                '*' | '×' => value * rhs,
                '%' => {
                    let quotient = (&value / &rhs).trunc();
                    value - quotient * rhs
                }
                _ => value / rhs,
            };
        }
        Ok(value)
    }

    /// `^` binds tighter than a sign on its left (`-2^2` is -4) and is right-associative.
    fn power(&mut self) -> Result<BigRational, String> {
        let base = self.primary()?;
        if self.peek() != Some('^') {
            return Ok(base);
        }
        self.at += 1;
        let exponent = self.unary()?;
        let whole = exponent
            .is_integer()
            .then(|| exponent.to_integer().to_i64())
            .flatten()
            .filter(|e| e.abs() <= MAX_EXPONENT)
            .ok_or_else(|| format!("only whole powers up to {MAX_EXPONENT} are exact"))?;
        if base.is_zero() && whole < 0 {
            return Err("division by zero".into());
        }
        Ok(num_traits::pow::Pow::pow(&base, whole as i32))
    }

    fn unary(&mut self) -> Result<BigRational, String> {
        match self.peek() {
            Some('-') => {
                self.at += 1;
                Ok(-self.unary()?)
            }
            Some('+') => {
                self.at += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn primary(&mut self) -> Result<BigRational, String> {
        match self.peek() {
            Some('(') => {
                self.at += 1;
                let value = self.sum()?;
                if self.peek() != Some(')') {
                    return Err(format!("expected `)` at character {}", self.at + 1));
                }
                self.at += 1;
                Ok(value)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) => Err(format!(
                "unexpected `{c}` at character {}; expected a number or `(`",
                self.at + 1
            )),
            None => Err("the expression ends early; expected a number".into()),
        }
    }

    fn number(&mut self) -> Result<BigRational, String> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || c == '.' || c == ',' || c == '_')
        {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at]
            .iter()
            .filter(|c| !matches!(c, ',' | '_'))
            .collect();
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(format!("`{text}` is not a number"));
        }
        let digits: BigInt = format!("{whole}{fraction}")
            .parse()
            .map_err(|_| format!("`{text}` is not a number"))?;
        let scale = num_traits::pow(BigInt::from(10), fraction.len());
        Ok(BigRational::new(digits, scale))
    }
}

/// Whether the value has a finite decimal expansion (denominator 2^a·5^b).
fn terminates(value: &BigRational) -> bool {
    let mut d = value.denom().clone();
    for p in [2u32, 5] {
        let p = BigInt::from(p);
        while (&d % &p).is_zero() {
            d /= &p;
        }
    }
    d == BigInt::from(1)
}

/// Exact decimal when it terminates, otherwise the fraction `p/q`.
pub fn display(value: &BigRational) -> String {
    if value.is_integer() {
        return value.to_integer().to_string();
    }
    if !terminates(value) {
        return format!("{}/{}", value.numer(), value.denom());
    }
    let mut places = 0;
    let mut scaled = value.abs();
    while !scaled.is_integer() {
        scaled *= BigRational::from_integer(BigInt::from(10));
        places += 1;
    }
    let digits = scaled.to_integer().to_string();
    let padded = format!("{digits:0>width$}", width = places + 1);
    let (int, frac) = padded.split_at(padded.len() - places);
    let sign = if value.is_negative() { "-" } else { "" };
    format!("{sign}{int}.{frac}")
}

fn approximate(value: &BigRational) -> String {
    let numer = value.numer().to_f64().unwrap_or(f64::NAN);
    let denom = value.denom().to_f64().unwrap_or(f64::NAN);
    format!("{:.12}", numer / denom)
        .trim_end_matches('0')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calc(text: &str) -> String {
        display(&evaluate(text).unwrap())
    }

    #[test]
    fn exact_results() {
        assert_eq!(calc("0.1 + 0.2"), "0.3");
        assert_eq!(calc("2 + 3 * 4"), "14");
        assert_eq!(calc("(2 + 3) * 4"), "20");
        assert_eq!(calc("-2^2"), "-4");
        assert_eq!(calc("2^3^2"), "512");
        assert_eq!(calc("2^-2"), "0.25");
        assert_eq!(calc("1/3"), "1/3");
        assert_eq!(calc("7 % 3"), "1");
        assert_eq!(calc("-7.5 % 2"), "-1.5");
        assert_eq!(calc("1,234.5 × 2"), "2469");
        assert_eq!(
            calc("123456789012345678901234567890 + 1"),
            "123456789012345678901234567891"
        );
        assert_eq!(calc(".5 - 1"), "-0.5");
    }

    #[test]
    fn errors_say_where_and_what() {
        assert_eq!(evaluate("1 / (2 - 2)").unwrap_err(), "division by zero");
        assert!(evaluate("2 + ").unwrap_err().contains("ends early"));
        assert!(
            evaluate("2 + x")
                .unwrap_err()
                .contains("unexpected `x` at character 3")
        );
        assert!(evaluate("(1 + 2").unwrap_err().contains("expected `)`"));
        assert!(evaluate("2 ^ 0.5").unwrap_err().contains("whole powers"));
        assert!(evaluate("1.2.3").unwrap_err().contains("not a number"));
        assert!(evaluate("").unwrap_err().contains("empty"));
    }

    #[test]
    fn non_terminating_results_come_with_an_approximation() {
        let context = ToolContext::new(vec![std::env::temp_dir()], std::env::temp_dir());
        let out = Calculator
            .call(&json!({"expression": "10 / 3"}), &context)
            .unwrap();
        assert_eq!(out["result"], "10/3");
        assert_eq!(out["approximately"], "3.333333333333");
    }
}
