//! Checks on a grammar's text that llama.cpp does not make itself.

/// Refuses a repetition `X{m,n}` with `m` above `n`. llama.cpp's grammar parser computes
/// the optional repeats as `n - m` in unsigned arithmetic, so such a grammar makes it
/// build rules until memory runs out. JSON schemas produce these (`minLength` above
/// `maxLength`, or a `pattern` like `a{5,2}`), and a JSON schema can come from a
/// `serve` client. Literals (`"…"`), character classes (`[…]`) and comments are skipped.
pub fn check_repetitions(grammar: &str) -> Result<(), String> {
    let bytes = grammar.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => at = skip_quoted(bytes, at + 1, b'"'),
            b'[' => at = skip_quoted(bytes, at + 1, b']'),
            b'#' => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            b'{' => {
                let (min, after_min) = number(bytes, skip_space(bytes, at + 1));
                let after_min = skip_space(bytes, after_min);
                if let Some(min) = min
                    && bytes.get(after_min) == Some(&b',')
                {
                    let (max, after_max) = number(bytes, skip_space(bytes, after_min + 1));
                    if let Some(max) = max
                        && bytes.get(skip_space(bytes, after_max)) == Some(&b'}')
                        && min > max
                    {
                        return Err(format!(
                            "the repetition {{{min},{max}}} asks for at least {min} and at most {max}: no output can satisfy it"
                        ));
                    }
                }
                at += 1;
            }
            _ => at += 1,
        }
    }
    Ok(())
}

/// The position after the literal that ends with `close` (backslash escapes skipped).
fn skip_quoted(bytes: &[u8], mut at: usize, close: u8) -> usize {
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            c if c == close => return at + 1,
            _ => at += 1,
        }
    }
    at
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

/// A decimal number at `at` (saturating: only its size against another matters).
fn number(bytes: &[u8], mut at: usize) -> (Option<u128>, usize) {
    let start = at;
    let mut value: u128 = 0;
    while let Some(digit) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
        value = value
            .saturating_mul(10)
            .saturating_add(u128::from(digit - b'0'));
        at += 1;
    }
    ((at > start).then_some(value), at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverted_repetitions_are_refused() {
        for grammar in [
            "root ::= [a-z]{5,2}",
            "root ::= x { 10 , 3 }\nx ::= \"a\"",
            "root ::= (\"a\" | \"b\"){99999999999999999999999,1}",
        ] {
            let err = check_repetitions(grammar).unwrap_err();
            assert!(err.contains("no output can satisfy it"), "{grammar}: {err}");
        }
        assert!(
            check_repetitions("root ::= [a-z]{5,2}")
                .unwrap_err()
                .contains("{5,2}")
        );
    }

    #[test]
    fn valid_repetitions_and_literals_pass() {
        for grammar in [
            "root ::= [a-z]{2,5} [0-9]{3} x{0,} x{4,4}",
            // Braces inside literals, classes and comments are text, not repetitions.
            "root ::= \"{5,2}\" [{5,2}] \"\\\"{9,1}\" # x{5,2}\n",
            "root ::= [\\]{5,2}] \"a\"",
            // Unfinished text is llama.cpp's to refuse.
            "root ::= x{5,",
            "root ::= \"unterminated {5,2}",
        ] {
            assert_eq!(check_repetitions(grammar), Ok(()), "{grammar}");
        }
    }
}
