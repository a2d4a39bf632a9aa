//! Text normalisation and tokenisation (with negation scopes).
//!
//! Tweets, Jira comments and report sentences share little vocabulary in their
//! "noise": links, `$TICKER`s, `@user`s and exact figures carry almost no
//! sentiment by their exact value but are very sparse. They are therefore
//! replaced by a handful of placeholder tokens so the model learns one weight
//! for "a link" or "a percentage going down" instead of thousands of useless
//! ones. Sign information is kept (`+5%` → `_pct_up_`), and ordinary sign
//! words like "up"/"down" stay as words.
//!
//! Negation: after a trigger (`not`, `no`, `never`, `without`, `nor`,
//! `cannot`, any `…n't` word, or `fail(s|ed|ing) to`) every token up to the
//! next clause punctuation is flagged `neg`, and the featuriser hashes it with
//! a `NEG_` prefix. That is the classic Das & Chen / Pang et al. trick and lets
//! a linear model tell "beat estimates" from "did not beat estimates".
//!
//! Everything here writes into caller-owned buffers ([`Tokens`]) so that
//! scoring a text does not allocate once the buffers have grown.

/// What a token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokKind {
    /// An ordinary (lowercased) word.
    Word,
    /// `http(s)://…` or `www.…`, text `_url_`.
    Url,
    /// A `$TICKER` cashtag, text `_ticker_`.
    Ticker,
    /// An `@user` mention, text `_user_`.
    User,
    /// A plain number (also with a unit suffix like `5m`, `3bn`), text `_num_`.
    Num,
    /// A number with an explicit `+` sign, text `_num_up_`.
    NumUp,
    /// A number with an explicit `-` sign, text `_num_down_`.
    NumDown,
    /// A money amount (`$5`, `$1.2bn`), text `_money_`.
    Money,
    /// A percentage, text `_pct_`.
    Pct,
    /// A percentage with a `+` sign, text `_pct_up_`.
    PctUp,
    /// A percentage with a `-` sign, text `_pct_down_`.
    PctDown,
    /// A four-digit year 1900–2099, text `_year_`.
    Year,
}

impl TokKind {
    /// The placeholder text for non-word kinds.
    pub const fn placeholder(self) -> &'static str {
        match self {
            TokKind::Word => "",
            TokKind::Url => "_url_",
            TokKind::Ticker => "_ticker_",
            TokKind::User => "_user_",
            TokKind::Num => "_num_",
            TokKind::NumUp => "_num_up_",
            TokKind::NumDown => "_num_down_",
            TokKind::Money => "_money_",
            TokKind::Pct => "_pct_",
            TokKind::PctUp => "_pct_up_",
            TokKind::PctDown => "_pct_down_",
            TokKind::Year => "_year_",
        }
    }
}

/// One token: a span into the normalised text held by [`Tokens`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    start: u32,
    end: u32,
    /// What the token stands for.
    pub kind: TokKind,
    /// Inside a negation scope (hashed with a `NEG_` prefix).
    pub neg: bool,
}

/// Reusable output of [`tokenize`]: the normalised token texts concatenated
/// in one `String`, plus spans. Reusing one `Tokens` across calls avoids all
/// per-token allocation.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    buf: String,
    toks: Vec<Token>,
}

impl Tokens {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.toks.len()
    }

    /// No tokens.
    pub fn is_empty(&self) -> bool {
        self.toks.is_empty()
    }

    /// The tokens.
    pub fn tokens(&self) -> &[Token] {
        &self.toks
    }

    /// The normalised text of a token.
    pub fn text(&self, t: &Token) -> &str {
        &self.buf[t.start as usize..t.end as usize]
    }

    /// Iterates `(text, token)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Token)> {
        self.toks.iter().map(move |t| (self.text(t), t))
    }

    /// Debug/test helper: tokens rendered as strings, negated ones with `NEG_`.
    pub fn rendered(&self) -> Vec<String> {
        self.iter()
            .map(|(s, t)| {
                if t.neg {
                    format!("NEG_{s}")
                } else {
                    s.to_string()
                }
            })
            .collect()
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.toks.clear();
    }

    fn push_special(&mut self, kind: TokKind, neg: bool) {
        let start = self.buf.len() as u32;
        self.buf.push_str(kind.placeholder());
        self.toks.push(Token {
            start,
            end: self.buf.len() as u32,
            kind,
            neg,
        });
    }
}

/// Words that open a negation scope on their own.
fn is_negator(w: &str) -> bool {
    // Cheap pre-filter: every listed word is 2..=8 bytes and starts with one
    // of these letters (most words are rejected without a string compare).
    let b = w.as_bytes();
    if b.len() < 2 || (b.len() > 8 && !w.ends_with("n't")) {
        return false;
    }
    if !matches!(b[0], b'n' | b'w' | b'c' | b'd' | b'i' | b'a' | b'h' | b's') {
        return w.ends_with("n't");
    }
    matches!(
        w,
        "not"
            | "no"
            | "never"
            | "without"
            | "nor"
            | "neither"
            | "cannot"
            | "none"
            | "nothing"
            | "dont"
            | "doesnt"
            | "didnt"
            | "isnt"
            | "wasnt"
            | "arent"
            | "werent"
            | "cant"
            | "couldnt"
            | "wont"
            | "wouldnt"
            | "shouldnt"
            | "hasnt"
            | "havent"
            | "hadnt"
    ) || w.ends_with("n't")
}

/// `fail`-words that open a negation scope when followed by `to`.
fn is_fail_word(w: &str) -> bool {
    matches!(w, "fail" | "fails" | "failed" | "failing")
}

/// Characters that end a negation scope (clause punctuation).
fn is_clause_break(c: char) -> bool {
    matches!(
        c,
        '.' | ',' | ';' | ':' | '!' | '?' | '(' | ')' | '[' | ']' | '|' | '—' | '–' | '…' | '•'
    )
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '’' || c == 'ʼ'
}

/// Tokenises and normalises `text` into `out` (cleared first).
///
/// See the module docs for the rules. The function never panics on any
/// input (including empty or very long text) and runs in linear time.
pub fn tokenize(text: &str, out: &mut Tokens) {
    out.clear();
    let mut neg = false;
    let mut after_fail = false;
    for chunk in text.split_whitespace() {
        if is_url(chunk) {
            out.push_special(TokKind::Url, neg);
            after_fail = false;
            continue;
        }
        if chunk.chars().all(|c| c == '-') {
            // A free-standing dash separates clauses ("$BYND - JPMorgan cuts …").
            neg = false;
            after_fail = false;
            continue;
        }
        tokenize_chunk(chunk, out, &mut neg, &mut after_fail);
    }
}

fn is_url(chunk: &str) -> bool {
    let b = chunk.as_bytes();
    let starts = |p: &str| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    starts("http://") || starts("https://") || starts("www.")
}

fn tokenize_chunk(chunk: &str, out: &mut Tokens, neg: &mut bool, after_fail: &mut bool) {
    let mut it = chunk.char_indices().peekable();
    let mut prev: Option<char> = None;
    while let Some((i, c)) = it.next() {
        let next = it.peek().map(|&(_, n)| n);
        if c == '$' && next.is_some_and(|n| n.is_alphabetic()) {
            // Cashtag: letters, plus '.'/'_' between letters ($BRK.B).
            while let Some(&(j, n)) = it.peek() {
                let follow = chunk[j + n.len_utf8()..].chars().next();
                if n.is_alphanumeric()
                    || ((n == '.' || n == '_') && follow.is_some_and(|f| f.is_alphabetic()))
                {
                    it.next();
                } else {
                    break;
                }
            }
            out.push_special(TokKind::Ticker, *neg);
            *after_fail = false;
            prev = Some('a');
            continue;
        }
        if c == '@' && next.is_some_and(|n| n.is_alphanumeric() || n == '_') {
            while it
                .peek()
                .is_some_and(|&(_, n)| n.is_alphanumeric() || n == '_')
            {
                it.next();
            }
            out.push_special(TokKind::User, *neg);
            *after_fail = false;
            prev = Some('a');
            continue;
        }
        let sign_start = matches!(c, '+' | '-' | '−')
            && next.is_some_and(|n| n.is_ascii_digit())
            && !prev.is_some_and(|p| p.is_alphanumeric());
        let money = c == '$' && next.is_some_and(|n| n.is_ascii_digit());
        if c.is_ascii_digit() || sign_start || money {
            let sign = if sign_start {
                if c == '+' {
                    1
                } else {
                    -1
                }
            } else {
                0
            };
            let kind = scan_number(chunk, i, c, &mut it, sign, money);
            out.push_special(kind, *neg);
            *after_fail = false;
            prev = Some('0');
            continue;
        }
        if c.is_alphanumeric() {
            let start = out.buf.len();
            push_lower(&mut out.buf, c);
            while let Some(&(j, n)) = it.peek() {
                if n.is_alphanumeric() {
                    push_lower(&mut out.buf, n);
                    it.next();
                } else if is_apostrophe(n)
                    && chunk[j + n.len_utf8()..]
                        .chars()
                        .next()
                        .is_some_and(|f| f.is_alphabetic())
                {
                    out.buf.push('\'');
                    it.next();
                } else {
                    break;
                }
            }
            let word = &out.buf[start..];
            let negator = is_negator(word);
            let fail = is_fail_word(word);
            let opens = negator || (*after_fail && word == "to");
            out.toks.push(Token {
                start: start as u32,
                end: out.buf.len() as u32,
                kind: TokKind::Word,
                neg: *neg && !opens,
            });
            if opens {
                *neg = true;
            }
            *after_fail = fail;
            prev = Some('a');
            continue;
        }
        if is_clause_break(c) {
            *neg = false;
            *after_fail = false;
        }
        // '#', quotes, '-', '/', emoji, …: plain separators.
        prev = Some(c);
    }
}

#[inline]
fn push_lower(buf: &mut String, c: char) {
    if c.is_ascii() {
        buf.push(c.to_ascii_lowercase());
    } else {
        buf.extend(c.to_lowercase());
    }
}

/// Scans a number starting at char `c` (a digit, a sign or `$`) and returns
/// its placeholder kind.
fn scan_number(
    chunk: &str,
    start: usize,
    c: char,
    it: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    sign: i8,
    money: bool,
) -> TokKind {
    let mut digits = usize::from(c.is_ascii_digit());
    let mut plain = c.is_ascii_digit(); // only digits so far (for years)
    while let Some(&(j, n)) = it.peek() {
        if n.is_ascii_digit() {
            digits += 1;
            it.next();
        } else if (n == '.' || n == ',')
            && chunk[j + 1..]
                .chars()
                .next()
                .is_some_and(|f| f.is_ascii_digit())
        {
            plain = false;
            it.next();
        } else {
            break;
        }
    }
    let _ = start;
    if it.peek().is_some_and(|&(_, n)| n == '%') {
        it.next();
        return match sign {
            1 => TokKind::PctUp,
            -1 => TokKind::PctDown,
            _ => TokKind::Pct,
        };
    }
    // Unit suffix (5m, 3bn, 2x, 1st, 10k): swallow it, it stays a number.
    let mut suffix = false;
    while it.peek().is_some_and(|&(_, n)| n.is_alphanumeric()) {
        suffix = true;
        it.next();
    }
    if money {
        return TokKind::Money;
    }
    match sign {
        1 => TokKind::NumUp,
        -1 => TokKind::NumDown,
        _ if plain && !suffix && digits == 4 && is_year_prefix(&chunk[start..]) => TokKind::Year,
        _ => TokKind::Num,
    }
}

fn is_year_prefix(s: &str) -> bool {
    s.starts_with("19") || s.starts_with("20")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        let mut t = Tokens::new();
        tokenize(s, &mut t);
        t.rendered()
    }

    #[test]
    fn lowercases_and_replaces_placeholders() {
        assert_eq!(
            toks("$AAPL Apple UP +5% to $150 in 2019, see https://t.co/x @bob"),
            vec![
                "_ticker_", "apple", "up", "_pct_up_", "to", "_money_", "in", "_year_", "see",
                "_url_", "_user_"
            ]
        );
        assert_eq!(
            toks("shares -3.5% down 12%"),
            vec!["shares", "_pct_down_", "down", "_pct_"]
        );
        assert_eq!(
            toks("Q3 revenue $1.2bn, 10,000 units, -4"),
            vec!["q3", "revenue", "_money_", "_num_", "units", "_num_down_"]
        );
    }

    #[test]
    fn negation_scope_runs_to_punctuation() {
        assert_eq!(
            toks("Results did not beat estimates, stock fell"),
            vec![
                "results",
                "did",
                "not",
                "NEG_beat",
                "NEG_estimates",
                "stock",
                "fell"
            ]
        );
        assert_eq!(
            toks("We don’t expect growth. Outlook good"),
            vec!["we", "don't", "NEG_expect", "NEG_growth", "outlook", "good"]
        );
        assert_eq!(
            toks("The build fails to compile and never passes"),
            vec![
                "the",
                "build",
                "fails",
                "to",
                "NEG_compile",
                "NEG_and",
                "never",
                "NEG_passes"
            ]
        );
        assert_eq!(
            toks("without delays - shipped"),
            vec!["without", "NEG_delays", "shipped"]
        );
    }

    #[test]
    fn hyphens_and_hashtags_split_words() {
        assert_eq!(
            toks("#Earnings year-over-year"),
            vec!["earnings", "year", "over", "year"]
        );
    }

    #[test]
    fn empty_and_symbol_only_inputs() {
        assert!(toks("").is_empty());
        assert!(toks("   \r\n\t ").is_empty());
        assert!(toks("!!! ??? 🚀🚀").is_empty());
        assert_eq!(toks("$"), Vec::<String>::new());
        assert_eq!(toks("-5"), vec!["_num_down_"]);
    }
}
