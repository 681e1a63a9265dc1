//! The CSV file of a bulk invitation: which users to invite, checked as a whole before
//! anything is applied.
//!
//! # Format
//! UTF-8 text (a byte-order mark is ignored), records separated by `\n` or `\r\n`, fields by
//! commas; a field in double quotes may hold commas, line breaks and `""` (one quote). The
//! first record is the header; the address column is the first one named (case and
//! surrounding spaces ignored) `userPrincipalName`, `upn`, `username`, `email`, `mail` or
//! `e-mail`. Other columns are ignored; records whose every field is empty are skipped.
//!
//! # Checks
//! Every record is checked and every bad one reported with its line number (the line the
//! record starts on, counting the header as line 1): a missing or invalid address, an address
//! given twice, a domain outside the integration's restrict-domains setting. A file with any
//! bad record is refused whole ([`InviteListError::BadRows`]), so that a bad file is never
//! half applied. At most [`MAX_INVITE_ROWS`] addresses.

use std::collections::HashMap;
use std::fmt;

use crate::address::Upn;
use crate::domain::RestrictDomains;

/// The most addresses one file may hold.
pub const MAX_INVITE_ROWS: usize = 10_000;

/// The header names accepted for the address column, compared lowercased.
pub const ADDRESS_COLUMNS: [&str; 6] = [
    "userprincipalname",
    "upn",
    "username",
    "email",
    "mail",
    "e-mail",
];

/// One address of a checked file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRow {
    /// The line the record starts on (the header is line 1).
    pub line: usize,
    /// The address.
    pub upn: Upn,
}

/// A checked file: its address column and its addresses, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteList {
    /// The header of the address column, as written.
    pub column: String,
    /// The addresses.
    pub rows: Vec<InviteRow>,
}

/// A record that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// The line the record starts on.
    pub line: usize,
    /// The address as written (empty when missing).
    pub value: String,
    /// What is wrong and what to do.
    pub reason: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Why a file is refused. Nothing of a refused file is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteListError {
    /// No header record.
    #[error(
        "the file is empty: send a CSV file whose first line is a header with an email or upn column"
    )]
    Empty,
    /// The header names no address column.
    #[error(
        "the header (line 1) has no address column: name one column email or upn (found: {found})"
    )]
    NoAddressColumn {
        /// The headers found, comma-separated.
        found: String,
    },
    /// A quoted field is not closed.
    #[error(
        "line {line}: a quoted field is not closed: end it with a double quote (write \"\" for a quote inside it)"
    )]
    UnclosedQuote {
        /// The line the field starts on.
        line: usize,
    },
    /// No address after the header.
    #[error("the file lists no users: add one address per line under the header")]
    NoRows,
    /// More than [`MAX_INVITE_ROWS`] addresses.
    #[error("the file lists {count} users; at most {max} can be invited at once: split the file")]
    TooManyRows {
        /// Addresses found.
        count: usize,
        /// [`MAX_INVITE_ROWS`].
        max: usize,
    },
    /// Some records are bad; the list says which and why.
    #[error("{} line(s) of the file cannot be used, so nothing was invited: {}", .0.len(), summary(.0))]
    BadRows(Vec<BadRow>),
}

fn summary(rows: &[BadRow]) -> String {
    let mut text: Vec<String> = rows.iter().take(5).map(BadRow::to_string).collect();
    if rows.len() > 5 {
        text.push(format!("and {} more", rows.len() - 5));
    }
    text.join("; ")
}

/// A record: its first line and its fields.
struct Record {
    line: usize,
    fields: Vec<String>,
}

/// Splits `text` into records (RFC 4180, with `\n` or `\r\n` line ends).
fn records(text: &str) -> Result<Vec<Record>, InviteListError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut record_line = 1usize;
    let mut quoted = false;
    let mut quote_line = 1usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
                quote_line = line;
            }
            ',' => fields.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                out.push(Record {
                    line: record_line,
                    fields: std::mem::take(&mut fields),
                });
                line += 1;
                record_line = line;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(InviteListError::UnclosedQuote { line: quote_line });
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        out.push(Record {
            line: record_line,
            fields,
        });
    }
    Ok(out)
}

/// Every record of a file checked, the good and the bad ([`InviteList::check`]): what a
/// preview shows before the file is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCheck {
    /// The header of the address column, as written.
    pub column: String,
    /// The usable addresses, in file order.
    pub rows: Vec<InviteRow>,
    /// The records that cannot be used, and why.
    pub bad: Vec<BadRow>,
}

impl InviteList {
    /// Reads and checks a file against the integration's restrict-domains setting.
    pub fn parse(text: &str, restrict: &RestrictDomains) -> Result<InviteList, InviteListError> {
        let InviteCheck { column, rows, bad } = InviteList::check(text, restrict)?;
        if !bad.is_empty() {
            return Err(InviteListError::BadRows(bad));
        }
        if rows.is_empty() {
            return Err(InviteListError::NoRows);
        }
        if rows.len() > MAX_INVITE_ROWS {
            return Err(InviteListError::TooManyRows {
                count: rows.len(),
                max: MAX_INVITE_ROWS,
            });
        }
        Ok(InviteList { column, rows })
    }

    /// Reads a file and checks each record, keeping the good ones and the bad ones with their
    /// reasons. Only a file that cannot be read at all (no header, no address column, an
    /// unclosed quote) is an error here; [`InviteList::parse`] refuses any bad record.
    pub fn check(text: &str, restrict: &RestrictDomains) -> Result<InviteCheck, InviteListError> {
        let records = records(text)?;
        let mut records = records
            .into_iter()
            .filter(|r| r.fields.iter().any(|f| !f.trim().is_empty()));
        let header = records.next().ok_or(InviteListError::Empty)?;
        let column = header
            .fields
            .iter()
            .position(|name| ADDRESS_COLUMNS.contains(&name.trim().to_lowercase().as_str()))
            .ok_or_else(|| InviteListError::NoAddressColumn {
                found: header
                    .fields
                    .iter()
                    .map(|f| format!("{:?}", f.trim()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let column_name = header.fields[column].trim().to_owned();
        let mut rows = Vec::new();
        let mut bad = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for record in records {
            let value = record
                .fields
                .get(column)
                .map(|v| v.trim().to_owned())
                .unwrap_or_default();
            if value.is_empty() {
                bad.push(BadRow {
                    line: record.line,
                    value,
                    reason: format!("no address in the {column_name} column"),
                });
                continue;
            }
            let upn = match Upn::parse(&value) {
                Ok(upn) => upn,
                Err(e) => {
                    bad.push(BadRow {
                        line: record.line,
                        value,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            if let Some(first) = seen.get(&upn.normalized()) {
                bad.push(BadRow {
                    line: record.line,
                    value,
                    reason: format!("{upn} is listed twice (first on line {first}): keep one"),
                });
                continue;
            }
            if let Err(refused) = restrict.check(&upn) {
                bad.push(BadRow {
                    line: record.line,
                    value,
                    reason: refused.to_string(),
                });
                continue;
            }
            seen.insert(upn.normalized(), record.line);
            rows.push(InviteRow {
                line: record.line,
                upn,
            });
        }
        Ok(InviteCheck {
            column: column_name,
            rows,
            bad,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> RestrictDomains {
        RestrictDomains::unrestricted()
    }

    fn addresses(list: &InviteList) -> Vec<(usize, String)> {
        list.rows
            .iter()
            .map(|r| (r.line, r.upn.to_string()))
            .collect()
    }

    #[test]
    fn check_keeps_the_good_records_beside_the_bad_ones() {
        let check = InviteList::check(
            "upn\nana@contoso.com\nnot an address\nbo@contoso.com\nana@contoso.com\n",
            &open(),
        )
        .expect("a readable file");
        let good: Vec<usize> = check.rows.iter().map(|r| r.line).collect();
        assert_eq!(good, [2, 4]);
        let bad: Vec<(usize, &str)> = check
            .bad
            .iter()
            .map(|b| (b.line, b.value.as_str()))
            .collect();
        assert_eq!(bad, [(3, "not an address"), (5, "ana@contoso.com")]);
        assert!(
            check.bad[1].reason.contains("first on line 2"),
            "{:?}",
            check.bad[1]
        );
        assert!(matches!(
            InviteList::check("name\nana\n", &open()),
            Err(InviteListError::NoAddressColumn { .. })
        ));
    }

    #[test]
    fn a_good_file_lists_its_addresses_with_their_lines() {
        let list = InviteList::parse(
            "name,Email\nAna,ana@contoso.com\n\nBo,BO@Contoso.com\n",
            &open(),
        )
        .expect("a good file");
        assert_eq!(list.column, "Email");
        assert_eq!(
            addresses(&list),
            [
                (2, "ana@contoso.com".to_owned()),
                (4, "BO@contoso.com".to_owned())
            ]
        );
    }

    #[test]
    fn crlf_a_byte_order_mark_and_quoted_fields_are_read() {
        let text = "\u{feff}\"Display, name\",userPrincipalName\r\n\"Ana \"\"A\"\" Lopez\",ana@contoso.com\r\n\"Two\nlines\",\"bo@contoso.com\"\r\n,cy@contoso.com";
        let list = InviteList::parse(text, &open()).expect("read");
        assert_eq!(list.column, "userPrincipalName");
        // The quoted field spanning two lines: the record starts on line 3, the next on 5.
        assert_eq!(
            addresses(&list),
            [
                (2, "ana@contoso.com".to_owned()),
                (3, "bo@contoso.com".to_owned()),
                (5, "cy@contoso.com".to_owned()),
            ]
        );
        let err = InviteList::parse("upn\n\"ana@contoso.com\nbo@contoso.com\n", &open())
            .expect_err("unclosed");
        assert_eq!(err, InviteListError::UnclosedQuote { line: 2 });
    }

    #[test]
    fn every_bad_line_is_reported_and_nothing_is_kept() {
        let restrict = RestrictDomains::parse(["contoso.com"]).expect("domains");
        let text = "upn,name\nana@contoso.com,Ana\nnot-an-address,X\n,Empty\nANA@contoso.com,Dup\nbo@fabrikam.example,Bo\nok@contoso.com\n";
        let err = InviteList::parse(text, &restrict).expect_err("bad rows");
        let InviteListError::BadRows(bad) = &err else {
            panic!("{err:?}");
        };
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4, 5, 6]);
        assert!(
            bad[0].reason.contains("not-an-address"),
            "{}",
            bad[0].reason
        );
        assert_eq!(bad[1].reason, "no address in the upn column");
        assert!(
            bad[2].reason.contains("listed twice (first on line 2)"),
            "{}",
            bad[2].reason
        );
        assert!(
            bad[3]
                .reason
                .contains("bo@fabrikam.example cannot be invited or pair a phone"),
            "{}",
            bad[3].reason
        );
        let message = err.to_string();
        assert!(
            message.starts_with(
                "4 line(s) of the file cannot be used, so nothing was invited: line 3: "
            ),
            "{message}"
        );
    }

    #[test]
    fn a_file_without_header_column_or_rows_says_what_to_fix() {
        assert_eq!(
            InviteList::parse("\n \n", &open()),
            Err(InviteListError::Empty)
        );
        let err = InviteList::parse("name,phone\nAna,123\n", &open()).expect_err("no column");
        assert_eq!(
            err.to_string(),
            "the header (line 1) has no address column: name one column email or upn (found: \"name\", \"phone\")"
        );
        assert_eq!(
            InviteList::parse("email\n", &open()),
            Err(InviteListError::NoRows)
        );
    }

    #[test]
    fn too_many_rows_are_refused() {
        let mut text = String::from("email\n");
        for n in 0..=MAX_INVITE_ROWS {
            text.push_str(&format!("user{n}@contoso.com\n"));
        }
        assert_eq!(
            InviteList::parse(&text, &open()),
            Err(InviteListError::TooManyRows {
                count: MAX_INVITE_ROWS + 1,
                max: MAX_INVITE_ROWS
            })
        );
    }
}
