//! Helpers to show user input inside error messages safely.
//!
//! Input can hold control characters, invisible characters or whole pasted documents;
//! messages quote it escaped and shortened so that a log line or an API answer stays
//! readable and cannot be forged by a newline in the input.

/// How many characters of user input an error message repeats.
pub(crate) const QUOTE_MAX_CHARS: usize = 64;

/// Quotes `input` for an error message: in double quotes, with control and invisible
/// characters escaped (`\n`, `\u{200b}`), cut after [`QUOTE_MAX_CHARS`] characters with
/// a note of the full length.
pub(crate) fn quote(input: &str) -> String {
    let mut out = String::with_capacity(input.len().min(QUOTE_MAX_CHARS * 2) + 2);
    out.push('"');
    for (count, character) in input.chars().enumerate() {
        if count == QUOTE_MAX_CHARS {
            out.push_str("\"… (");
            out.push_str(&input.chars().count().to_string());
            out.push_str(" characters)");
            return out;
        }
        push_escaped(&mut out, character);
    }
    out.push('"');
    out
}

/// Quotes a single character for an error message, e.g. `'!'`, `'\t'`, `'\u{200b}'`.
pub(crate) fn quote_char(character: char) -> String {
    let mut out = String::from("'");
    out.extend(character.escape_debug());
    out.push('\'');
    out
}

fn push_escaped(out: &mut String, character: char) {
    // A single quote inside a double-quoted string needs no escape; everything
    // `escape_debug` would escape otherwise (controls, invisibles, `"` and `\`) is.
    if character == '\'' {
        out.push(character);
    } else {
        out.extend(character.escape_debug());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_controls_and_invisible_characters() {
        assert_eq!(quote("a\nb"), r#""a\nb""#);
        assert_eq!(quote("zero\u{200b}width"), r#""zero\u{200b}width""#);
        assert_eq!(quote(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(quote("it's"), r#""it's""#);
    }

    #[test]
    fn quote_shortens_long_input_and_gives_its_length() {
        let long = "x".repeat(100);
        let quoted = quote(&long);
        assert_eq!(quoted, format!("\"{}\"… (100 characters)", "x".repeat(64)));
        let exact = "y".repeat(64);
        assert_eq!(quote(&exact), format!("\"{exact}\""));
    }

    #[test]
    fn quote_char_escapes_tab() {
        assert_eq!(quote_char('\t'), r"'\t'");
        assert_eq!(quote_char('!'), "'!'");
        assert_eq!(quote_char('\''), r"'\''");
    }
}
