//! OData query options as Graph reads them: `$select`, `$filter`, `$top`, `$count`,
//! `$skiptoken`, with Graph's error wording where it is known.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::GraphError;

/// Largest `$top` Graph accepts on directory collections.
pub(crate) const MAX_TOP: usize = 999;
/// Page size when `$top` is absent.
pub(crate) const DEFAULT_TOP: usize = 100;

/// The query options of one request (names compared case-insensitively, `$` required).
#[derive(Debug, Default, Clone)]
pub(crate) struct Options {
    pub select: Option<Vec<String>>,
    pub filter: Option<String>,
    pub top: Option<String>,
    pub count: Option<String>,
    pub skiptoken: Option<String>,
    pub deltatoken: Option<String>,
    pub orderby: Option<String>,
    pub search: Option<String>,
    pub expand: Option<String>,
    /// Other parameters, kept for diagnostics and for `challengeTimeoutInMinutes`.
    pub other: HashMap<String, String>,
}

impl Options {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Options {
        let mut options = Options::default();
        let Some(raw) = raw else {
            return options;
        };
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let value = value.into_owned();
            match key.to_ascii_lowercase().as_str() {
                "$select" => {
                    options.select = Some(
                        value
                            .split(',')
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect(),
                    );
                }
                "$filter" => options.filter = Some(value),
                "$top" => options.top = Some(value),
                "$count" => options.count = Some(value),
                "$skiptoken" => options.skiptoken = Some(value),
                "$deltatoken" => options.deltatoken = Some(value),
                "$orderby" => options.orderby = Some(value),
                "$search" => options.search = Some(value),
                "$expand" => options.expand = Some(value),
                other => {
                    options.other.insert(other.to_owned(), value);
                }
            }
        }
        options
    }

    /// `$top` checked against Graph's 1..=999.
    pub fn page_size(&self) -> Result<usize, GraphError> {
        match &self.top {
            None => Ok(DEFAULT_TOP),
            Some(text) => match text.trim().parse::<i64>() {
                Ok(n) if (1..=999).contains(&n) => Ok(usize::try_from(n).unwrap_or(DEFAULT_TOP)),
                Ok(_) => Err(GraphError::bad_request(
                    "Request_BadRequest",
                    format!(
                        "Invalid page size specified: '{text}'. Must be between 1 and {MAX_TOP} inclusive."
                    ),
                )),
                Err(_) => Err(GraphError::bad_request(
                    "BadRequest",
                    format!("Invalid value '{text}' for $top query option found."),
                )),
            },
        }
    }

    /// `$count=true`?
    pub fn wants_count(&self) -> Result<bool, GraphError> {
        match self.count.as_deref() {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(GraphError::bad_request(
                "BadRequest",
                format!(
                    "Invalid value '{v}' for $count query option found. Valid values are 'true', 'false'."
                ),
            )),
        }
    }

    /// The query string to repeat in a next link (everything but the paging tokens).
    pub fn repeat(&self) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        if let Some(select) = &self.select {
            out.append_pair("$select", &select.join(","));
        }
        if let Some(filter) = &self.filter {
            out.append_pair("$filter", filter);
        }
        if let Some(top) = &self.top {
            out.append_pair("$top", top);
        }
        if let Some(count) = &self.count {
            out.append_pair("$count", count);
        }
        out.finish()
    }
}

/// An opaque paging token: base64url of a short text that entra-sim alone reads.
pub(crate) fn encode_token(text: &str) -> String {
    // A version tag and a salt-free check character make tokens look and behave opaque; clients
    // must pass them back verbatim.
    let sum = text.bytes().fold(0u8, u8::wrapping_add);
    URL_SAFE_NO_PAD.encode(format!("kb1:{sum:02x}:{text}"))
}

/// Reads a token made by [`encode_token`].
pub(crate) fn decode_token(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix("kb1:")?;
    let (sum, body) = rest.split_once(':')?;
    let expected = body.bytes().fold(0u8, u8::wrapping_add);
    (u8::from_str_radix(sum, 16).ok()? == expected).then(|| body.to_owned())
}

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Eq(String, Literal),
    Ne(String, Literal),
    In(String, Vec<Literal>),
    StartsWith(String, String),
    EndsWith(String, String),
}

/// A literal in a filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Text(String),
    Bool(bool),
    Null,
}

/// A property value of an object, as filters see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Text(&'a str),
    Bool(bool),
    Null,
}

impl Filter {
    /// Whether this filter needs Graph's advanced query mode (ConsistencyLevel + $count).
    pub fn is_advanced(&self) -> Option<&'static str> {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => a.is_advanced().or_else(|| b.is_advanced()),
            Filter::Not(_) => Some("not"),
            Filter::Ne(..) => Some("ne"),
            Filter::EndsWith(..) => Some("endsWith"),
            Filter::Eq(..) | Filter::In(..) | Filter::StartsWith(..) => None,
        }
    }

    /// Property names used.
    pub fn properties(&self, out: &mut Vec<String>) {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.properties(out);
                b.properties(out);
            }
            Filter::Not(a) => a.properties(out),
            Filter::Eq(p, _)
            | Filter::Ne(p, _)
            | Filter::In(p, _)
            | Filter::StartsWith(p, _)
            | Filter::EndsWith(p, _) => out.push(p.clone()),
        }
    }

    /// Evaluates the filter; `get` returns a property's value (names already validated).
    pub fn matches<'a>(&self, get: &dyn Fn(&str) -> Value<'a>) -> bool {
        fn equal(value: &Value<'_>, literal: &Literal) -> bool {
            match (value, literal) {
                // Directory string comparisons are case-insensitive [O].
                (Value::Text(a), Literal::Text(b)) => a.eq_ignore_ascii_case(b),
                (Value::Bool(a), Literal::Bool(b)) => a == b,
                (Value::Null, Literal::Null) => true,
                _ => false,
            }
        }
        match self {
            Filter::And(a, b) => a.matches(get) && b.matches(get),
            Filter::Or(a, b) => a.matches(get) || b.matches(get),
            Filter::Not(a) => !a.matches(get),
            Filter::Eq(p, l) => equal(&get(p), l),
            Filter::Ne(p, l) => !equal(&get(p), l),
            Filter::In(p, ls) => {
                let v = get(p);
                ls.iter().any(|l| equal(&v, l))
            }
            Filter::StartsWith(p, prefix) => match get(p) {
                Value::Text(t) => t
                    .get(..prefix.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
                _ => false,
            },
            Filter::EndsWith(p, suffix) => match get(p) {
                Value::Text(t) => {
                    t.len() >= suffix.len()
                        && t.get(t.len() - suffix.len()..)
                            .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
                }
                _ => false,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Text(String),
    Open,
    Close,
    Comma,
}

fn invalid_filter(detail: &str) -> GraphError {
    GraphError::bad_request("BadRequest", format!("Invalid filter clause: {detail}"))
}

fn tokenize(input: &str) -> Result<Vec<Token>, GraphError> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '\'' => {
                // '' inside a literal is an escaped quote.
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(invalid_filter("unterminated string literal.")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            text.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            text.push(*ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Text(text));
            }
            _ => {
                let start = i;
                while i < chars.len() && !matches!(chars[i], ' ' | '\t' | '(' | ')' | ',' | '\'') {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(tokens)
}

/// Deepest nesting of parentheses and `not` a filter may have.
const MAX_FILTER_DEPTH: usize = 32;
/// Most comparisons (and nested groups) a filter may hold.
const MAX_FILTER_CLAUSES: usize = 200;

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Current nesting of parentheses and `not`: parsing, checking and dropping the tree all
    /// recurse, so a crafted filter must not nest without bound.
    depth: usize,
    /// Clauses parsed so far: a long `and`/`or` chain builds a tree as deep as it is long.
    clauses: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word))
    }
    fn expect(&mut self, token: &Token, what: &str) -> Result<(), GraphError> {
        if self.next().as_ref() == Some(token) {
            Ok(())
        } else {
            Err(invalid_filter(&format!("expected {what}.")))
        }
    }

    fn expr(&mut self) -> Result<Filter, GraphError> {
        let mut left = self.term()?;
        while self.keyword("or") {
            self.at += 1;
            let right = self.term()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Filter, GraphError> {
        let mut left = self.factor()?;
        while self.keyword("and") {
            self.at += 1;
            let right = self.factor()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Runs `parse` one nesting level deeper, refusing to go past [`MAX_FILTER_DEPTH`].
    fn nested(
        &mut self,
        parse: fn(&mut Self) -> Result<Filter, GraphError>,
    ) -> Result<Filter, GraphError> {
        if self.depth >= MAX_FILTER_DEPTH {
            return Err(invalid_filter(&format!(
                "the expression is nested more than {MAX_FILTER_DEPTH} levels deep."
            )));
        }
        self.depth += 1;
        let result = parse(self);
        self.depth -= 1;
        result
    }

    fn literal(&mut self) -> Result<Literal, GraphError> {
        match self.next() {
            Some(Token::Text(t)) => Ok(Literal::Text(t)),
            Some(Token::Ident(w)) if w == "true" => Ok(Literal::Bool(true)),
            Some(Token::Ident(w)) if w == "false" => Ok(Literal::Bool(false)),
            Some(Token::Ident(w)) if w == "null" => Ok(Literal::Null),
            // Unquoted GUIDs are accepted by Graph for id comparisons [I].
            Some(Token::Ident(w)) if uuid::Uuid::parse_str(&w).is_ok() => Ok(Literal::Text(w)),
            _ => Err(invalid_filter("expected a literal value.")),
        }
    }

    fn factor(&mut self) -> Result<Filter, GraphError> {
        self.clauses += 1;
        if self.clauses > MAX_FILTER_CLAUSES {
            return Err(invalid_filter(&format!(
                "the expression has more than {MAX_FILTER_CLAUSES} clauses."
            )));
        }
        if self.keyword("not") {
            self.at += 1;
            let inner = self.nested(Self::factor)?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        match self.next() {
            Some(Token::Open) => {
                let inner = self.nested(Self::expr)?;
                self.expect(&Token::Close, "')'")?;
                Ok(inner)
            }
            Some(Token::Ident(word))
                if (word.eq_ignore_ascii_case("startswith")
                    || word.eq_ignore_ascii_case("endswith"))
                    && self.peek() == Some(&Token::Open) =>
            {
                self.at += 1;
                let Some(Token::Ident(property)) = self.next() else {
                    return Err(invalid_filter("expected a property name."));
                };
                self.expect(&Token::Comma, "','")?;
                let Literal::Text(text) = self.literal()? else {
                    return Err(invalid_filter("expected a string literal."));
                };
                self.expect(&Token::Close, "')'")?;
                Ok(if word.eq_ignore_ascii_case("startswith") {
                    Filter::StartsWith(property, text)
                } else {
                    Filter::EndsWith(property, text)
                })
            }
            Some(Token::Ident(property)) => {
                let Some(Token::Ident(op)) = self.next() else {
                    return Err(invalid_filter("expected an operator."));
                };
                match op.to_ascii_lowercase().as_str() {
                    "eq" => Ok(Filter::Eq(property, self.literal()?)),
                    "ne" => Ok(Filter::Ne(property, self.literal()?)),
                    "in" => {
                        self.expect(&Token::Open, "'('")?;
                        let mut values = vec![self.literal()?];
                        while self.peek() == Some(&Token::Comma) {
                            self.at += 1;
                            values.push(self.literal()?);
                        }
                        self.expect(&Token::Close, "')'")?;
                        Ok(Filter::In(property, values))
                    }
                    other => Err(GraphError::bad_request(
                        "Request_UnsupportedQuery",
                        format!(
                            "Unsupported or invalid query filter clause specified for property '{property}': operator '{other}'."
                        ),
                    )),
                }
            }
            _ => Err(invalid_filter("expected an expression.")),
        }
    }
}

/// Parses `$filter` and checks its properties against those the collection allows.
pub(crate) fn parse_filter(
    input: &str,
    allowed: &[&str],
    resource: &str,
) -> Result<Filter, GraphError> {
    let mut parser = Parser {
        tokens: tokenize(input)?,
        at: 0,
        depth: 0,
        clauses: 0,
    };
    let filter = parser.expr()?;
    if parser.at != parser.tokens.len() {
        return Err(invalid_filter("unexpected text after the expression."));
    }
    let mut props = Vec::new();
    filter.properties(&mut props);
    for p in &props {
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(p)) {
            return Err(GraphError::bad_request(
                "Request_UnsupportedQuery",
                format!(
                    "Unsupported or invalid query filter clause specified for property '{p}' of resource '{resource}'."
                ),
            ));
        }
    }
    check_limits(&filter)?;
    Ok(filter)
}

fn check_limits(filter: &Filter) -> Result<(), GraphError> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            check_limits(a)?;
            check_limits(b)
        }
        Filter::Not(a) => check_limits(a),
        Filter::In(_, values) if values.len() > 15 => Err(GraphError::bad_request(
            "Request_UnsupportedQuery",
            format!(
                "Too many child clauses specified in search filter expression containing 'OR' operators: {}. Max allowed: 15.",
                values.len()
            ),
        )),
        Filter::Eq(p, Literal::Text(t)) | Filter::Ne(p, Literal::Text(t))
            if t.chars().count() > 120 =>
        {
            // [I] wording; the 120-character limit is documented.
            Err(GraphError::bad_request(
                "Request_BadRequest",
                format!("The value for property '{p}' is longer than 120 characters."),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &[&str] = &[
        "id",
        "userPrincipalName",
        "displayName",
        "mail",
        "accountEnabled",
    ];

    #[test]
    fn parses_the_forms_keybridge_sends() {
        let f =
            parse_filter("userPrincipalName eq 'o''brien@contoso.com'", USER, "User").expect("eq");
        assert_eq!(
            f,
            Filter::Eq(
                "userPrincipalName".into(),
                Literal::Text("o'brien@contoso.com".into())
            )
        );
        let f = parse_filter(
            "startswith(displayName,'An') and accountEnabled eq true",
            USER,
            "User",
        )
        .expect("and");
        assert!(f.matches(&|p| match p {
            "displayName" => Value::Text("ana lima"),
            "accountEnabled" => Value::Bool(true),
            _ => Value::Null,
        }));
        let f = parse_filter("id in ('a', 'b')", USER, "User").expect("in");
        assert!(f.matches(&|_| Value::Text("B")));
        assert!(!f.matches(&|_| Value::Text("c")));
        assert_eq!(
            parse_filter("endswith(mail,'@contoso.com')", USER, "User")
                .expect("endswith")
                .is_advanced(),
            Some("endsWith")
        );
    }

    #[test]
    fn refuses_bad_filters_with_graph_errors() {
        let e = parse_filter("jobTitle eq 'x'", USER, "User").expect_err("unknown property");
        assert_eq!(e.code, "Request_UnsupportedQuery");
        assert!(e.message.contains("'jobTitle' of resource 'User'"));
        assert!(parse_filter("displayName eq 'x", USER, "User").is_err());
        assert!(parse_filter("displayName eq", USER, "User").is_err());
        let many = (0..16)
            .map(|i| format!("'{i}'"))
            .collect::<Vec<_>>()
            .join(",");
        let e = parse_filter(&format!("id in ({many})"), USER, "User").expect_err("16 values");
        assert!(e.message.contains("16"));
    }

    #[test]
    fn deep_or_long_filters_are_refused_without_exhausting_the_stack() {
        let parens = format!("{}id eq 'x'{}", "(".repeat(5000), ")".repeat(5000));
        let nots = format!("{}id eq 'x'", "not ".repeat(5000));
        let chain = vec!["id eq 'x'"; 5000].join(" and ");
        let mixed = vec!["(not (id eq 'x'))"; 3000].join(" or ");
        for text in [parens, nots, chain, mixed] {
            let e = parse_filter(&text, USER, "User").expect_err("too complex");
            assert_eq!(e.code, "BadRequest");
            assert!(
                e.message.starts_with("Invalid filter clause: "),
                "{}",
                e.message
            );
        }
        // Reasonable nesting and length still parse.
        let nested = format!("{}id eq 'x'{}", "(".repeat(20), ")".repeat(20));
        assert!(parse_filter(&nested, USER, "User").is_ok());
        let fifteen = vec!["displayName eq 'x'"; 15].join(" or ");
        assert!(parse_filter(&fifteen, USER, "User").is_ok());
    }

    #[test]
    fn page_size_bounds() {
        let mut o = Options {
            top: Some("1000".into()),
            ..Options::default()
        };
        let e = o.page_size().expect_err("1000");
        assert_eq!(
            e.message,
            "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
        );
        o.top = Some("999".into());
        assert_eq!(o.page_size().expect("999"), 999);
        o.top = Some("0".into());
        assert!(o.page_size().is_err());
    }

    #[test]
    fn tokens_round_trip_and_refuse_tampering() {
        let t = encode_token("u:abc");
        assert_eq!(decode_token(&t).as_deref(), Some("u:abc"));
        assert!(decode_token("garbage").is_none());
        let tampered = URL_SAFE_NO_PAD.encode("kb1:00:u:abd");
        assert!(decode_token(&tampered).is_none());
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_filter_text_parses_or_fails_cleanly(text in ".{0,200}") {
            let _ = parse_filter(&text, USER, "User");
        }

        #[test]
        fn filter_shaped_text_parses_or_fails_cleanly(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "(", ")", " and ", " or ", "not ", " eq ", " ne ", " in ", "startswith(",
                    "endswith(", ",", "'x'", "''''", "'", "displayName", "accountEnabled", "id",
                    "true", "null", "'é€'",
                ]),
                0..20,
            )
        ) {
            let text = parts.concat();
            if let Ok(filter) = parse_filter(&text, USER, "User") {
                let _ = filter.matches(&|_| Value::Text("x"));
            }
        }

        #[test]
        fn any_token_text_decodes_or_is_refused(text in ".{0,300}") {
            let _ = decode_token(&text);
        }

        #[test]
        fn tokens_round_trip(text in "[a-z0-9:,-]{0,100}") {
            prop_assert_eq!(decode_token(&encode_token(&text)), Some(text));
        }
    }
}
