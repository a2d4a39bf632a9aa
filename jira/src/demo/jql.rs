//! The sliver of JQL the demo understands: what Keel sends.
//!
//! `project = A`, `project in (A, B)`, either with an optional
//! `ORDER BY key [ASC|DESC]`, or `ORDER BY key` alone (every issue).
//! Keywords are case-insensitive and values may be quoted. Anything else is
//! refused with a message saying so, rather than silently returning the
//! wrong issues.

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JqlQuery {
    /// Upper-cased project keys; empty means every project.
    pub projects: Vec<String>,
    /// `ORDER BY key DESC`.
    pub descending: bool,
}

/// Parses `jql`; `Err` carries the message for Jira's 400 answer.
pub(crate) fn parse_jql(jql: &str) -> Result<JqlQuery, String> {
    let unsupported = || {
        format!(
            "Error in the JQL Query: the Keel demo Jira supports only `project = KEY`, \
             `project in (KEY, ...)` and `ORDER BY key [ASC|DESC]`, not {:?}.",
            jql.trim()
        )
    };
    let text = jql.trim();
    // ASCII lowercasing keeps byte offsets, so positions map back to `text`.
    let lower = text.to_ascii_lowercase();
    let (condition, order) = match find_word_pair(&lower, "order", "by") {
        Some((at, after)) => (text[..at].trim(), Some(lower[after..].trim().to_string())),
        None => (text, None),
    };
    let descending = match order
        .as_deref()
        .map(|o| o.split_whitespace().collect::<Vec<_>>())
    {
        None => false,
        Some(words) => match words.as_slice() {
            ["key"] | ["key", "asc"] => false,
            ["key", "desc"] => true,
            _ => return Err(unsupported()),
        },
    };
    if condition.is_empty() {
        return if order.is_some() {
            Ok(JqlQuery {
                projects: Vec::new(),
                descending,
            })
        } else {
            Err(unsupported())
        };
    }
    let rest = strip_keyword(condition, "project").ok_or_else(unsupported)?;
    let projects = if let Some(value) = rest.strip_prefix('=') {
        vec![value_of(value).ok_or_else(unsupported)?]
    } else if let Some(list) = strip_keyword(rest, "in") {
        let inner = list
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(unsupported)?;
        inner
            .split(',')
            .map(value_of)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(unsupported)?
    } else {
        return Err(unsupported());
    };
    Ok(JqlQuery {
        projects,
        descending,
    })
}

/// Byte offset of `first` followed by whitespace and `second` as whole
/// words, and the offset just after `second`.
fn find_word_pair(lower: &str, first: &str, second: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(pos) = lower[from..].find(first) {
        let at = from + pos;
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let tail = &lower[at + first.len()..];
        let trimmed = tail.trim_start();
        if before_ok && trimmed.len() < tail.len() && trimmed.starts_with(second) {
            let end = lower.len() - trimmed.len() + second.len();
            if lower[end..].is_empty() || lower.as_bytes()[end].is_ascii_whitespace() {
                return Some((at, end));
            }
        }
        from = at + first.len();
    }
    None
}

/// `s` without a leading case-insensitive `keyword` that ends at a word
/// boundary, trimmed.
fn strip_keyword<'a>(s: &'a str, keyword: &str) -> Option<&'a str> {
    let head = s.get(..keyword.len())?;
    let tail = &s[keyword.len()..];
    let boundary = tail.is_empty() || !tail.as_bytes()[0].is_ascii_alphanumeric();
    (head.eq_ignore_ascii_case(keyword) && boundary).then(|| tail.trim_start())
}

/// One project key, optionally quoted; upper-cased.
fn value_of(raw: &str) -> Option<String> {
    let v = raw.trim();
    let v = ["\"", "'"]
        .iter()
        .find_map(|q| v.strip_prefix(q).and_then(|x| x.strip_suffix(q)))
        .unwrap_or(v)
        .trim();
    let ok = !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then(|| v.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(projects: &[&str], descending: bool) -> JqlQuery {
        JqlQuery {
            projects: projects.iter().map(|p| p.to_string()).collect(),
            descending,
        }
    }

    #[test]
    fn supported_forms() {
        assert_eq!(parse_jql("project = DEMO"), Ok(q(&["DEMO"], false)));
        assert_eq!(parse_jql("project=\"ops\""), Ok(q(&["OPS"], false)));
        assert_eq!(
            parse_jql("project in (DEMO, 'OPS') ORDER BY key"),
            Ok(q(&["DEMO", "OPS"], false))
        );
        assert_eq!(
            parse_jql("PROJECT IN(DEMO) order  by KEY desc"),
            Ok(q(&["DEMO"], true))
        );
        assert_eq!(parse_jql("ORDER BY key ASC"), Ok(q(&[], false)));
    }

    #[test]
    fn anything_else_is_refused() {
        for jql in [
            "",
            "assignee = currentUser()",
            "project = DEMO AND status = Done",
            "project in (DEMO, )",
            "project = DEMO ORDER BY created",
            "projectx = DEMO",
            "project ~ DEMO",
        ] {
            let err = parse_jql(jql).unwrap_err();
            assert!(err.contains("Keel demo Jira supports only"), "{jql}: {err}");
        }
    }
}
