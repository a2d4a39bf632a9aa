//! A small, strict RFC 4180 CSV reader (enough for the training files).
//!
//! Why not split lines: the tweet files have 227 quoted fields with embedded
//! newlines. Why not the `csv` crate: this is ~60 lines and keeps the
//! dependency list at `serde` alone. Records end with CRLF or LF; quoted
//! fields may contain commas, newlines and `""` escapes.

/// Parses `input` into records of fields. Fails on a quote inside an
/// unquoted field, on text after a closing quote, or on an unterminated quote.
pub fn parse(input: &str) -> Result<Vec<Vec<String>>, String> {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut chars = input.chars().peekable();
    let mut line = 1usize;
    // Whether the current record has any content (to skip a final empty line).
    let mut started = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if field.is_empty() => {
                started = true;
                let open_line = line;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            field.push(ch);
                        }
                        None => {
                            return Err(format!("unterminated quote opened on line {open_line}"))
                        }
                    }
                }
                match chars.peek() {
                    None | Some(',') | Some('\r') | Some('\n') => {}
                    Some(_) => return Err(format!("text after closing quote on line {line}")),
                }
            }
            '"' => return Err(format!("quote inside unquoted field on line {line}")),
            ',' => {
                started = true;
                record.push(std::mem::take(&mut field));
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                line += 1;
                if started || !field.is_empty() {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                started = false;
            }
            _ => {
                started = true;
                field.push(c);
            }
        }
    }
    if started || !field.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn quoted_fields_with_newlines_commas_and_quotes() {
        let r = parse("text,label\r\n\"a, \"\"b\"\"\nc\",1\r\nplain,2\r\n").unwrap();
        assert_eq!(
            r,
            vec![
                vec!["text".to_string(), "label".into()],
                vec!["a, \"b\"\nc".into(), "1".into()],
                vec!["plain".into(), "2".into()],
            ]
        );
    }

    #[test]
    fn no_trailing_newline_and_errors() {
        assert_eq!(
            parse("a,b").unwrap(),
            vec![vec!["a".to_string(), "b".into()]]
        );
        assert!(parse("\"abc").is_err());
        assert!(parse("a\"b,1").is_err());
        assert!(parse("\"a\"b,1").is_err());
    }
}
