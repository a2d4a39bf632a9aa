//! Atlassian Document Format (ADF) → plain text.
//!
//! API v3 returns comment bodies as ADF, a JSON tree
//! (`{"type":"doc","version":1,"content":[{"type":"paragraph",...}]}`). The
//! sentiment classifier wants plain text, so this module flattens the tree:
//!
//! * block nodes (paragraph, heading, code block, quote, panel, list item,
//!   table row, ...) become lines; `hardBreak` is a newline; `rule` a break;
//! * list items are prefixed with `- ` (bullets) or `N. ` (ordered), nested
//!   lists indented by two spaces per level;
//! * table cells of a row are joined with ` | `;
//! * inline nodes keep their visible text: `mention` → `@Name`, `emoji` →
//!   its character or `:shortname:`, `status` → its label, `date` →
//!   `YYYY-MM-DD`, cards → their URL;
//! * media and placeholders produce nothing; unknown node types contribute
//!   the text of their children, so new ADF node kinds degrade gracefully;
//! * a JSON string is returned as is (agile API and API v2 bodies are plain
//!   strings), `null` is empty.
//!
//! Recursion depth is bounded by serde_json's own nesting limit (128) on the
//! parsed input.

use serde_json::Value;

/// Flattens an ADF document (or a plain string) into text: one line per
/// block, trailing spaces trimmed, runs of blank lines collapsed, no leading
/// or trailing blank lines.
pub fn to_plain_text(doc: &Value) -> String {
    let mut w = Writer::default();
    match doc {
        Value::String(s) => w.out.push_str(s),
        Value::Null => {}
        other => w.node(other, 0),
    }
    tidy(&w.out)
}

#[derive(Default)]
struct Writer {
    out: String,
    /// Non-zero while inside a table cell: block breaks become spaces so that a
    /// row stays on one line.
    in_cell: usize,
    /// Length of `out` right after a list-item prefix was written: a block
    /// starting there continues the prefix line instead of breaking it.
    prefix_end: Option<usize>,
}

impl Writer {
    /// Ends the current line, unless already at the start of one.
    fn line_break(&mut self) {
        if self.prefix_end == Some(self.out.len()) {
            return;
        }
        if self.in_cell > 0 {
            if !self.out.is_empty() && !self.out.ends_with([' ', '\n']) {
                self.out.push(' ');
            }
        } else if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    fn children(&mut self, node: &Value, depth: usize) {
        if let Some(content) = node.get("content").and_then(Value::as_array) {
            for child in content {
                self.node(child, depth);
            }
        }
    }

    fn node(&mut self, node: &Value, depth: usize) {
        let attr = |name: &str| {
            node.get("attrs")
                .and_then(|a| a.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let kind = node.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "text" => {
                if let Some(t) = node.get("text").and_then(Value::as_str) {
                    self.out.push_str(t);
                }
            }
            "hardBreak" => {
                if self.in_cell > 0 {
                    self.line_break();
                } else {
                    self.out.push('\n');
                }
            }
            "mention" => {
                let text = attr("text").or_else(|| attr("id")).unwrap_or_default();
                if !text.is_empty() && !text.starts_with('@') {
                    self.out.push('@');
                }
                self.out.push_str(&text);
            }
            "emoji" => {
                if let Some(t) = attr("text").or_else(|| attr("shortName")) {
                    self.out.push_str(&t);
                }
            }
            "status" => {
                if let Some(t) = attr("text") {
                    self.out.push_str(&t);
                }
            }
            "date" => {
                let ts = node
                    .get("attrs")
                    .and_then(|a| a.get("timestamp"))
                    .and_then(|t| match t {
                        Value::String(s) => s.parse::<i64>().ok(),
                        other => other.as_i64(),
                    })
                    .and_then(chrono::DateTime::from_timestamp_millis);
                if let Some(ts) = ts {
                    self.out.push_str(&ts.format("%Y-%m-%d").to_string());
                }
            }
            "inlineCard" | "blockCard" | "embedCard" => {
                let block = kind != "inlineCard";
                if block {
                    self.line_break();
                }
                if let Some(url) = attr("url") {
                    self.out.push_str(&url);
                }
                if block {
                    self.line_break();
                }
            }
            "media" | "mediaSingle" | "mediaGroup" | "mediaInline" | "placeholder" => {}
            "rule" => self.line_break(),
            "bulletList" | "orderedList" => {
                let ordered = kind == "orderedList";
                let mut n = node
                    .get("attrs")
                    .and_then(|a| a.get("order"))
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                if let Some(items) = node.get("content").and_then(Value::as_array) {
                    for item in items {
                        self.line_break();
                        if self.in_cell == 0 {
                            self.out.push_str(&"  ".repeat(depth));
                        }
                        if ordered {
                            self.out.push_str(&format!("{n}. "));
                            n += 1;
                        } else {
                            self.out.push_str("- ");
                        }
                        self.prefix_end = Some(self.out.len());
                        // The list item's first paragraph continues the
                        // prefix line; nested lists go one level deeper.
                        self.children(item, depth + 1);
                        self.line_break();
                    }
                }
            }
            "tableRow" => {
                self.line_break();
                let mut first = true;
                if let Some(cells) = node.get("content").and_then(Value::as_array) {
                    for cell in cells {
                        if !first {
                            let trimmed = self.out.trim_end_matches(' ').len();
                            self.out.truncate(trimmed);
                            self.out.push_str(" | ");
                        }
                        first = false;
                        self.in_cell += 1;
                        self.children(cell, depth);
                        self.in_cell -= 1;
                    }
                }
                let trimmed = self.out.trim_end_matches(' ').len();
                self.out.truncate(trimmed);
                self.line_break();
            }
            // Block containers: paragraph, heading, codeBlock, blockquote,
            // panel, expand, taskItem, decisionItem, table, doc, listItem
            // outside a list, and unknown nodes.
            _ => {
                let block = is_block(kind);
                if block {
                    self.line_break();
                }
                if matches!(kind, "expand" | "nestedExpand") {
                    if let Some(title) = attr("title").filter(|t| !t.trim().is_empty()) {
                        self.out.push_str(&title);
                        self.line_break();
                    }
                }
                self.children(node, depth);
                if block {
                    self.line_break();
                }
            }
        }
    }
}

fn is_block(kind: &str) -> bool {
    matches!(
        kind,
        "doc"
            | "paragraph"
            | "heading"
            | "codeBlock"
            | "blockquote"
            | "panel"
            | "expand"
            | "nestedExpand"
            | "taskList"
            | "taskItem"
            | "decisionList"
            | "decisionItem"
            | "table"
            | "listItem"
            | "layoutSection"
            | "layoutColumn"
            | "bodiedExtension"
            | "extension"
    )
}

/// Trims trailing spaces per line, collapses blank-line runs, trims ends.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(text: &str) -> Value {
        json!({"type": "paragraph", "content": [{"type": "text", "text": text}]})
    }

    #[test]
    fn documented_example_body() {
        // The comment body from Atlassian's "Get comments" example.
        let body = json!({
            "type": "doc",
            "version": 1,
            "content": [{
                "type": "paragraph",
                "content": [{
                    "type": "text",
                    "text": "Lorem ipsum dolor sit amet, consectetur adipiscing elit. Pellentesque eget venenatis elit. Duis eu justo eget augue iaculis fermentum. Sed semper quam laoreet nisi egestas at posuere augue semper."
                }]
            }]
        });
        assert!(to_plain_text(&body).starts_with("Lorem ipsum dolor sit amet,"));
        assert!(!to_plain_text(&body).contains('\n'));
    }

    #[test]
    fn paragraphs_marks_breaks_and_inline_nodes() {
        let body = json!({"type": "doc", "version": 1, "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Status"}]},
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Still "},
                {"type": "text", "text": "blocked", "marks": [{"type": "strong"}]},
                {"type": "text", "text": " by "},
                {"type": "mention", "attrs": {"id": "5b10ac8d82e05b22cc7d4ef5", "text": "@Mia Krystof"}},
                {"type": "text", "text": " "},
                {"type": "emoji", "attrs": {"shortName": ":angry:", "text": "😠"}},
                {"type": "hardBreak"},
                {"type": "text", "text": "see "},
                {"type": "inlineCard", "attrs": {"url": "https://example.com/x"}},
                {"type": "text", "text": " due "},
                {"type": "date", "attrs": {"timestamp": "1706745600000"}},
                {"type": "text", "text": " "},
                {"type": "status", "attrs": {"text": "AT RISK", "color": "red"}}
            ]},
            {"type": "rule"},
            {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "x", "type": "file"}}]},
            {"type": "codeBlock", "attrs": {"language": "rust"}, "content": [{"type": "text", "text": "fn main() {}"}]}
        ]});
        assert_eq!(
            to_plain_text(&body),
            "Status\nStill blocked by @Mia Krystof 😠\nsee https://example.com/x due 2024-02-01 AT RISK\nfn main() {}"
        );
    }

    #[test]
    fn lists_nested_and_ordered() {
        let body = json!({"type": "doc", "version": 1, "content": [
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [p("one"),
                    {"type": "orderedList", "attrs": {"order": 3}, "content": [
                        {"type": "listItem", "content": [p("three")]},
                        {"type": "listItem", "content": [p("four")]}
                    ]}
                ]},
                {"type": "listItem", "content": [p("two")]}
            ]},
            p("after")
        ]});
        assert_eq!(
            to_plain_text(&body),
            "- one\n  3. three\n  4. four\n- two\nafter"
        );
    }

    #[test]
    fn tables_quotes_panels_and_unknown_nodes() {
        let cell = |t: &str| json!({"type": "tableCell", "content": [p(t)]});
        let body = json!({"type": "doc", "version": 1, "content": [
            {"type": "table", "content": [
                {"type": "tableRow", "content": [
                    {"type": "tableHeader", "content": [p("Key")]},
                    {"type": "tableHeader", "content": [p("State")]}
                ]},
                {"type": "tableRow", "content": [cell("ABC-1"), cell("late")]}
            ]},
            {"type": "blockquote", "content": [p("quoted")]},
            {"type": "panel", "attrs": {"panelType": "warning"}, "content": [p("careful")]},
            {"type": "expand", "attrs": {"title": "Details"}, "content": [p("hidden")]},
            {"type": "someFutureNode", "content": [{"type": "text", "text": "still read"}]}
        ]});
        assert_eq!(
            to_plain_text(&body),
            "Key | State\nABC-1 | late\nquoted\ncareful\nDetails\nhidden\nstill read"
        );
    }

    #[test]
    fn strings_null_and_empty_docs() {
        assert_eq!(
            to_plain_text(&json!("plain *wiki* text ")),
            "plain *wiki* text"
        );
        assert_eq!(to_plain_text(&Value::Null), "");
        assert_eq!(
            to_plain_text(&json!({"type": "doc", "version": 1, "content": []})),
            ""
        );
        assert_eq!(
            to_plain_text(
                &json!({"type": "doc", "content": [p(""), p("x"), p(""), p(""), p("y")]})
            ),
            "x\ny"
        );
    }
}
