//! Helpers for tests that play Stripe with wiremock: Stripe's API takes
//! `application/x-www-form-urlencoded` bodies, so assertions read the decoded fields.

/// Decodes one `application/x-www-form-urlencoded` component (`%XX` and `+`).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}
