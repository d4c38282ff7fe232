//! `calculator`: exact arithmetic on decimals (+ − × ÷, %, integer powers, brackets) with
//! big rationals, so `0.1 + 0.2` is `0.3` and `1/3` stays `1/3` — small models are bad at
//! sums, and a calculator that rounds would teach them nothing.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError};

/// The calculator tool, with the size limits its numbers may reach.
#[derive(Debug, Default)]
pub struct Calculator {
    limits: CalcLimits,
}

impl Calculator {
    /// A calculator with other size limits than the defaults (the fuzz harness uses
    /// smaller ones, so the fuzzer spends its inputs on the parser and the checks rather
    /// than on multiplying 20,000-digit numbers).
    pub fn with_limits(limits: CalcLimits) -> Self {
        Self { limits }
    }
}

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
        let value = evaluate_within(expression, self.limits)
            .map_err(|e| ToolError::Arguments(e.to_string()))?;
        let mut result = json!({ "expression": expression, "result": display(&value) });
        if decimal_places(&value).is_none() {
            result["approximately"] = json!(approximate(&value));
        }
        Ok(result)
    }
}

/// Expressions longer than this are refused: a model that writes one is looping.
const MAX_CHARS: usize = 4096;
/// Brackets, signs and powers nested deeper than this are refused before they can
/// exhaust the stack (the arguments come from a model).
const MAX_DEPTH: usize = 64;
/// Numerators and denominators may not grow beyond this many bits (about 20,000 decimal
/// digits): checked before each power and after each operation, so no expression keeps a
/// core busy or memory growing long after the tool's timeout.
const MAX_BITS: u64 = 65_536;
/// The operands' sizes summed over every operation may not exceed this many bits: each
/// value under [`MAX_BITS`] can still be combined hundreds of times (a fuzzed expression
/// of 60 sums of 20,000-digit fractions took 22 s), while real answers use a few
/// thousand bits at most.
const MAX_WORK: u64 = 4_000_000;

/// How large numbers may grow: [`MAX_BITS`] and [`MAX_WORK`] unless set otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalcLimits {
    /// Bits a numerator or denominator may have.
    pub max_bits: u64,
    /// Bits of operands summed over every operation of one expression.
    pub max_work: u64,
}

impl Default for CalcLimits {
    fn default() -> Self {
        Self {
            max_bits: MAX_BITS,
            max_work: MAX_WORK,
        }
    }
}

/// Decimal digits of a number of `bits` bits, for messages.
fn digits(bits: u64) -> u64 {
    (bits as f64 * std::f64::consts::LOG10_2).round() as u64
}

/// Why an expression was not evaluated. Positions are 1-based characters of the
/// expression with its whitespace removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    #[error("the expression has {0} characters; at most {MAX_CHARS} are evaluated")]
    TooLong(usize),
    #[error("the expression is empty")]
    Empty,
    #[error("unexpected `{found}` at character {at}; expected an operator or the end")]
    ExpectedOperator { at: usize, found: char },
    #[error("unexpected `{found}` at character {at}; expected a number or `(`")]
    Unexpected { at: usize, found: char },
    #[error("expected `)` at character {0}")]
    UnclosedBracket(usize),
    #[error("the expression ends early; expected a number")]
    EndsEarly,
    #[error("the expression nests deeper than {MAX_DEPTH} levels at character {0}")]
    TooDeep(usize),
    #[error("division by zero")]
    DivisionByZero,
    #[error("only whole powers up to {MAX_EXPONENT} are exact")]
    NotWholePower,
    #[error(
        "the power would have more than {max_bits} bits (about {} digits); no answer needs that",
        digits(*.max_bits)
    )]
    PowerTooLarge { max_bits: u64 },
    #[error(
        "a result has more than {max_bits} bits (about {} digits); no answer needs that",
        digits(*.max_bits)
    )]
    TooLarge { max_bits: u64 },
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error(
        "the expression combines too many huge numbers (more than {max_work} bits of operands in all); no answer needs that"
    )]
    TooMuchWork { max_work: u64 },
}

/// Evaluates `text`, refusing numbers and work beyond `limits`; the error says where
/// parsing stopped and what was expected.
pub fn evaluate_within(text: &str, limits: CalcLimits) -> Result<BigRational, CalcError> {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if chars.len() > MAX_CHARS {
        return Err(CalcError::TooLong(chars.len()));
    }
    let mut parser = Parser {
        chars,
        at: 0,
        depth: 0,
        work: 0,
        limits,
    };
    if parser.chars.is_empty() {
        return Err(CalcError::Empty);
    }
    let value = parser.sum()?;
    match parser.peek() {
        None => Ok(value),
        Some(found) => Err(CalcError::ExpectedOperator {
            at: parser.at + 1,
            found,
        }),
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    /// Nesting of the rule being parsed (brackets, signs, exponents).
    depth: usize,
    /// Bits of the operands of every operation so far (see [`MAX_WORK`]).
    work: u64,
    limits: CalcLimits,
}

/// A value's size in bits, numerator and denominator.
fn size(value: &BigRational) -> u64 {
    value.numer().bits() + value.denom().bits()
}

/// Powers above this would build numbers no answer needs (and take long to build).
const MAX_EXPONENT: i64 = 1000;

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    /// Counts an operation on operands of `bits` bits against the work limit.
    fn charge(&mut self, bits: u64) -> Result<(), CalcError> {
        self.work = self.work.saturating_add(bits);
        let max_work = self.limits.max_work;
        if self.work > max_work {
            return Err(CalcError::TooMuchWork { max_work });
        }
        Ok(())
    }

    /// Refuses a value too large to be any answer.
    fn bounded(&self, value: BigRational) -> Result<BigRational, CalcError> {
        let max_bits = self.limits.max_bits;
        if value.numer().bits() > max_bits || value.denom().bits() > max_bits {
            return Err(CalcError::TooLarge { max_bits });
        }
        Ok(value)
    }

    /// Enters a nested rule, refusing nesting deeper than [`MAX_DEPTH`].
    fn nested<T>(
        &mut self,
        rule: impl FnOnce(&mut Self) -> Result<T, CalcError>,
    ) -> Result<T, CalcError> {
        if self.depth >= MAX_DEPTH {
            return Err(CalcError::TooDeep(self.at + 1));
        }
        self.depth += 1;
        let value = rule(self);
        self.depth -= 1;
        value
    }

    fn sum(&mut self) -> Result<BigRational, CalcError> {
        let mut value = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.at += 1;
            let rhs = self.product()?;
            self.charge(size(&value) + size(&rhs))?;
            value = self.bounded(if op == '+' { value + rhs } else { value - rhs })?;
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<BigRational, CalcError> {
        let mut value = self.unary()?;
        while let Some(op @ ('*' | '/' | '%' | '×' | '÷')) = self.peek() {
            self.at += 1;
            let rhs = self.unary()?;
            if matches!(op, '/' | '%' | '÷') && rhs.is_zero() {
                return Err(CalcError::DivisionByZero);
            }
            self.charge(size(&value) + size(&rhs))?;
            value = self.bounded(match op {
                '*' | '×' => value * rhs,
                '%' => {
                    let quotient = (&value / &rhs).trunc();
                    value - quotient * rhs
                }
                _ => value / rhs,
            })?;
        }
        Ok(value)
    }

    /// `^` binds tighter than a sign on its left (`-2^2` is -4) and is right-associative.
    fn power(&mut self) -> Result<BigRational, CalcError> {
        let base = self.primary()?;
        if self.peek() != Some('^') {
            return Ok(base);
        }
        self.at += 1;
        let exponent = self.nested(Self::unary)?;
        let whole = exponent
            .is_integer()
            .then(|| exponent.to_integer().to_i64())
            .flatten()
            .filter(|e| e.abs() <= MAX_EXPONENT)
            .ok_or(CalcError::NotWholePower)?;
        if base.is_zero() && whole < 0 {
            return Err(CalcError::DivisionByZero);
        }
        // The result has about |exponent| times the base's bits: refuse before building it.
        let widest = base.numer().bits().max(base.denom().bits());
        let built = widest.saturating_mul(whole.unsigned_abs());
        let max_bits = self.limits.max_bits;
        if built > max_bits {
            return Err(CalcError::PowerTooLarge { max_bits });
        }
        self.charge(built)?;
        self.bounded(num_traits::pow::Pow::pow(&base, whole as i32))
    }

    /// Signs are counted in a loop, not by recursion: a run of thousands of them is
    /// still a flat expression.
    fn unary(&mut self) -> Result<BigRational, CalcError> {
        let mut negative = false;
        while let Some(sign @ ('-' | '+')) = self.peek() {
            self.at += 1;
            negative ^= sign == '-';
        }
        let value = self.power()?;
        Ok(if negative { -value } else { value })
    }

    fn primary(&mut self) -> Result<BigRational, CalcError> {
        match self.peek() {
            Some('(') => {
                self.at += 1;
                let value = self.nested(Self::sum)?;
                if self.peek() != Some(')') {
                    return Err(CalcError::UnclosedBracket(self.at + 1));
                }
                self.at += 1;
                Ok(value)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(found) => Err(CalcError::Unexpected {
                at: self.at + 1,
                found,
            }),
            None => Err(CalcError::EndsEarly),
        }
    }

    fn number(&mut self) -> Result<BigRational, CalcError> {
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
            return Err(CalcError::NotANumber(text));
        }
        let digits: BigInt = match format!("{whole}{fraction}").parse() {
            Ok(digits) => digits,
            Err(_) => return Err(CalcError::NotANumber(text)),
        };
        let scale = num_traits::pow(BigInt::from(10), fraction.len());
        Ok(BigRational::new(digits, scale))
    }
}

/// The number of decimal places of the value's expansion when it terminates (its
/// denominator is 2^a·5^b, and then there are max(a, b) places). Counted by shifting out
/// the twos at once and dividing out the fives, not by multiplying by ten until the value
/// is whole, which took seconds for a value such as 0.5^14000.
fn decimal_places(value: &BigRational) -> Option<u64> {
    let denom = value.denom();
    let twos = denom.trailing_zeros().unwrap_or(0);
    let mut rest: BigInt = denom >> twos;
    let five = BigInt::from(5);
    let mut fives = 0u64;
    while (&rest % &five).is_zero() {
        rest /= &five;
        fives += 1;
    }
    (rest == BigInt::from(1)).then_some(twos.max(fives))
}

/// Exact decimal when it terminates, otherwise the fraction `p/q`.
pub fn display(value: &BigRational) -> String {
    if value.is_integer() {
        return value.to_integer().to_string();
    }
    let Some(places) = decimal_places(value) else {
        return format!("{}/{}", value.numer(), value.denom());
    };
    let places = places as usize;
    let scaled = value.numer().abs() * num_traits::pow(BigInt::from(10), places) / value.denom();
    let digits = scaled.to_string();
    let padded = format!("{digits:0>width$}", width = places + 1);
    let (int, frac) = padded.split_at(padded.len() - places);
    let sign = if value.is_negative() { "-" } else { "" };
    format!("{sign}{int}.{frac}")
}

fn approximate(value: &BigRational) -> String {
    // The ratio's own conversion stays finite where numerator and denominator alone
    // would both overflow an f64.
    let approx = value.to_f64().unwrap_or(f64::NAN);
    format!("{approx:.12}").trim_end_matches('0').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluate(text: &str) -> Result<BigRational, CalcError> {
        evaluate_within(text, CalcLimits::default())
    }

    fn calc(text: &str) -> String {
        display(&evaluate(text).unwrap())
    }

    #[test]
    fn issue_20_long_exact_decimals_are_written_at_once() {
        let started = std::time::Instant::now();
        let half = calc("(0.5 ^ 100) ^ 140");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(half.len(), "0.".len() + 14_000);
        assert!(half.starts_with("0.000") && half.ends_with("25"), "{half}");
        assert_eq!(calc("3 / 5^3"), "0.024");
        assert_eq!(calc("-1 / 2^3"), "-0.125");
        assert_eq!(calc("7 / 20"), "0.35");
        let third = evaluate("(1/3) ^ 800").unwrap();
        assert!(
            approximate(&third).starts_with('0'),
            "{}",
            approximate(&third)
        );
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
        let message = |text: &str| evaluate(text).unwrap_err().to_string();
        assert_eq!(
            evaluate("1 / (2 - 2)").unwrap_err(),
            CalcError::DivisionByZero
        );
        assert_eq!(message("1 / (2 - 2)"), "division by zero");
        assert!(message("2 + ").contains("ends early"));
        assert_eq!(
            evaluate("2 + x").unwrap_err(),
            CalcError::Unexpected { at: 3, found: 'x' }
        );
        assert!(message("2 + x").contains("unexpected `x` at character 3"));
        assert!(message("(1 + 2").contains("expected `)`"));
        assert!(message("2 ^ 0.5").contains("whole powers"));
        assert!(message("1.2.3").contains("not a number"));
        assert!(message("").contains("empty"));
    }

    /// Issue 20: a model controls these arguments; none may overflow the stack or keep a
    /// core busy. Each runs on a small stack, so a recursion the limits miss would fail.
    #[test]
    fn issue_20_hostile_expressions_are_refused_quickly() {
        let started = std::time::Instant::now();
        let hostile = [
            format!("{}1{}", "(".repeat(2000), ")".repeat(2000)),
            format!("{}1", "-".repeat(8000)),
            format!("2{}", "^-2".repeat(3000)),
            "((9^1000)^1000)^1000".to_string(),
            "(0.5^1000)^1000".to_string(),
            format!("9^1000{}", "*9^1000".repeat(40)),
            "1".repeat(5000),
        ];
        for expression in hostile {
            let outcome = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || evaluate(&expression).map(|v| display(&v)))
                .unwrap()
                .join()
                .expect("no stack overflow");
            assert!(outcome.is_err(), "{outcome:?}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Signs still count: an even run is positive, an odd one negative.
        assert_eq!(calc(&format!("{}3", "-".repeat(4000))), "3");
        assert_eq!(calc(&format!("{}3", "-".repeat(3999))), "-3");
        assert_eq!(calc("--2^2"), "4");
        assert_eq!(calc("2^1000 / 2^999"), "2");
    }

    /// Found by fuzzing (fuzz/regressions/calculator-timeout-many-large-fractions): every
    /// value stays under the size bound, but dozens of sums and remainders of fractions
    /// with 20,000-digit denominators took 22 s.
    #[test]
    fn many_operations_on_huge_fractions_stop_early() {
        let found =
            include_str!("../../../fuzz/regressions/calculator-timeout-many-large-fractions");
        let started = std::time::Instant::now();
        let outcome = evaluate(found);
        let elapsed = started.elapsed();
        assert!(
            matches!(outcome, Err(CalcError::TooMuchWork { .. })),
            "{outcome:?}"
        );
        // The input took 22 s before the budget; the budget stops it in well under a second
        // (1.1 s once on a loaded machine), so only a return of the hang fails this.
        assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
        let repeated = format!("(1/5^101)^204{}", "+(1/5^101)^204%10".repeat(60));
        assert!(matches!(
            evaluate(&repeated),
            Err(CalcError::TooMuchWork { .. })
        ));
        // Ordinary large arithmetic is still answered.
        assert_eq!(calc("2^1000 / 2^999 + 3^500 % 7"), "4");
    }

    #[test]
    fn other_limits_are_kept_and_named() {
        let small = CalcLimits {
            max_bits: 4_096,
            max_work: 250_000,
        };
        // Within the defaults, beyond the smaller limits.
        assert!(evaluate("2 ^ 1000 * 2 ^ 1000 * 2 ^ 1000 * 2 ^ 1000 * 2 ^ 1000").is_ok());
        let too_large = evaluate_within(
            "2 ^ 1000 * 2 ^ 1000 * 2 ^ 1000 * 2 ^ 1000 * 2 ^ 1000",
            small,
        );
        assert_eq!(too_large, Err(CalcError::TooLarge { max_bits: 4_096 }));
        assert_eq!(
            too_large.unwrap_err().to_string(),
            "a result has more than 4096 bits (about 1233 digits); no answer needs that"
        );
        assert_eq!(
            evaluate_within("(2 ^ 1000) ^ 5", small),
            Err(CalcError::PowerTooLarge { max_bits: 4_096 })
        );
        assert_eq!(
            evaluate("(2 ^ 1000) ^ 66").unwrap_err().to_string(),
            "the power would have more than 65536 bits (about 19728 digits); no answer needs that"
        );
        let busy = format!("1{}", " + 2 ^ 1000".repeat(200));
        assert!(evaluate(&busy).is_ok());
        assert_eq!(
            evaluate_within(&busy, small),
            Err(CalcError::TooMuchWork { max_work: 250_000 })
        );
        // The tool uses its own limits.
        let context = ToolContext::new(vec![std::env::temp_dir()], std::env::temp_dir());
        let args = json!({"expression": "(2 ^ 1000) ^ 5"});
        assert!(Calculator::default().call(&args, &context).is_ok());
        assert!(
            Calculator::with_limits(small)
                .call(&args, &context)
                .is_err()
        );
    }

    #[test]
    fn non_terminating_results_come_with_an_approximation() {
        let context = ToolContext::new(vec![std::env::temp_dir()], std::env::temp_dir());
        let out = Calculator::default()
            .call(&json!({"expression": "10 / 3"}), &context)
            .unwrap();
        assert_eq!(out["result"], "10/3");
        assert_eq!(out["approximately"], "3.333333333333");
    }
}
