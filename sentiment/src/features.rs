//! Hashed sparse features: word unigrams (with `NEG_`), word bigrams,
//! character n-grams and lexicon polarity counts.
//!
//! Every feature is a byte string hashed with FNV-1a 64 ([`crate::hash`]) into
//! one of `2^hash_bits` buckets. Each kind hashes a distinct namespace byte
//! first (`u` unigram, `b` bigram, `c` char n-gram, `l` lexicon) so that, e.g.,
//! the word "cut" and the char trigram "cut" are different features. Feature
//! strings are never materialised: the hasher is fed slices directly.
//!
//! Word features have value 1 (repeats add up), char n-grams have value
//! [`FeatureConfig::char_weight`] and lexicon features have value
//! [`FeatureConfig::lex_weight`]; the model scales the sum by
//! `1/sqrt(total squared value)` so long and short texts are comparable.

use crate::hash::{bucket, Fnv1a};
use crate::lexicon::{polarity, Polarity};
use crate::text::{tokenize, TokKind, Tokens};

/// Feature-kind switch: word unigrams.
pub const F_UNIGRAM: u8 = 1;
/// Feature-kind switch: word bigrams.
pub const F_BIGRAM: u8 = 2;
/// Feature-kind switch: character n-grams of words.
pub const F_CHAR: u8 = 4;
/// Feature-kind switch: lexicon polarity features.
pub const F_LEXICON: u8 = 8;
/// All known switches.
pub const F_ALL: u8 = F_UNIGRAM | F_BIGRAM | F_CHAR | F_LEXICON;

/// How text becomes features. Stored in the model file, so a model is always
/// scored with exactly the features it was trained on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureConfig {
    /// Buckets = `2^hash_bits` (8..=24).
    pub hash_bits: u8,
    /// Smallest char n-gram length (in chars, over `<word>` with boundary marks).
    pub char_min: u8,
    /// Largest char n-gram length.
    pub char_max: u8,
    /// Bit set of `F_*` switches.
    pub flags: u8,
    /// Value of each char n-gram feature (<1 keeps the many char n-grams
    /// from drowning the word features, which transfer better to formal text).
    pub char_weight: f32,
    /// Value of each lexicon feature (>1 lets the shared lexicon features
    /// compete with the many word features under the same L2 penalty).
    pub lex_weight: f32,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            hash_bits: 19,
            char_min: 3,
            char_max: 5,
            flags: F_ALL,
            char_weight: 0.1,
            lex_weight: 3.0,
        }
    }
}

impl FeatureConfig {
    /// Checks the ranges the file format and scorer rely on.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !(8..=24).contains(&self.hash_bits) {
            return Err("hash_bits must be in 8..=24");
        }
        if self.char_min == 0 || self.char_min > self.char_max || self.char_max > 8 {
            return Err("char n-gram range must satisfy 1 <= min <= max <= 8");
        }
        if self.flags & !F_ALL != 0 || self.flags == 0 {
            return Err("unknown or empty feature flags");
        }
        if !self.lex_weight.is_finite() || self.lex_weight < 0.0 {
            return Err("lex_weight must be finite and >= 0");
        }
        if !self.char_weight.is_finite() || self.char_weight < 0.0 {
            return Err("char_weight must be finite and >= 0");
        }
        Ok(())
    }

    /// Number of hash buckets.
    pub fn buckets(&self) -> usize {
        1usize << self.hash_bits
    }
}

/// Reusable feature output: bucket ids of unit-value (word) features, of
/// char n-grams (value `char_weight`) and of lexicon features (value
/// `lex_weight`). Keep one per thread and reuse it.
#[derive(Clone, Debug, Default)]
pub struct Features {
    /// Buckets of value-1 features: unigrams and bigrams (may repeat).
    pub unit: Vec<u32>,
    /// Buckets of char n-gram features (may repeat).
    pub chars: Vec<u32>,
    /// Buckets of lexicon features (may repeat).
    pub lex: Vec<u32>,
    tokens: Tokens,
    bounds: Vec<u32>,
}

impl Features {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tokens of the last [`Features::extract`] call.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// `1/sqrt(sum of squared feature values)`, or 0 with no features.
    pub fn norm(&self, cfg: &FeatureConfig) -> f32 {
        let ss = self.unit.len() as f32
            + cfg.char_weight * cfg.char_weight * self.chars.len() as f32
            + cfg.lex_weight * cfg.lex_weight * self.lex.len() as f32;
        if ss > 0.0 {
            1.0 / ss.sqrt()
        } else {
            0.0
        }
    }

    /// Tokenises `text` and fills `unit`/`lex` (both cleared first).
    pub fn extract(&mut self, cfg: &FeatureConfig, text: &str) {
        self.unit.clear();
        self.chars.clear();
        self.lex.clear();
        tokenize(text, &mut self.tokens);
        let bits = cfg.hash_bits;
        let toks = self.tokens.tokens();
        for (i, t) in toks.iter().enumerate() {
            let s = self.tokens.text(t);
            if cfg.flags & F_UNIGRAM != 0 {
                let mut h = Fnv1a::new();
                h.write_u8(b'u');
                if t.neg {
                    h.write(b"NEG_");
                }
                h.write(s.as_bytes());
                self.unit.push(bucket(h.finish(), bits));
            }
            if cfg.flags & F_BIGRAM != 0 && i > 0 {
                let p = self.tokens.text(&toks[i - 1]);
                let mut h = Fnv1a::new();
                h.write_u8(b'b');
                h.write(p.as_bytes());
                h.write_u8(0x1f);
                h.write(s.as_bytes());
                self.unit.push(bucket(h.finish(), bits));
            }
            if t.kind != TokKind::Word {
                continue;
            }
            if cfg.flags & F_CHAR != 0 {
                push_char_ngrams(s, cfg, &mut self.bounds, &mut self.chars);
            }
            if cfg.flags & F_LEXICON != 0 {
                if let Some(p) = polarity(s) {
                    let positive = (p == Polarity::Positive) != t.neg;
                    let mut h = Fnv1a::new();
                    h.write_u8(b'l');
                    h.write(if positive { b"LEX_POS" } else { b"LEX_NEG" });
                    self.lex.push(bucket(h.finish(), bits));
                }
            }
        }
    }
}

/// Char n-grams of `<word>` (the `<`/`>` boundary marks are virtual: they are
/// hashed, never written into a buffer). Lengths are counted in chars.
///
/// For each start position one hasher is fed char by char and a bucket is
/// emitted at every length in `char_min..=char_max`, so all lengths share one
/// pass (FNV is a prefix-streaming hash); the output order is by start
/// position, then length.
fn push_char_ngrams(word: &str, cfg: &FeatureConfig, bounds: &mut Vec<u32>, out: &mut Vec<u32>) {
    // bounds[k] = byte offset of char k in the word, plus the end offset.
    bounds.clear();
    bounds.extend(word.char_indices().map(|(i, _)| i as u32));
    bounds.push(word.len() as u32);
    let nw = bounds.len() - 1;
    let nchars = nw + 2; // with '<' and '>'
    let (lo, hi) = (cfg.char_min as usize, cfg.char_max as usize);
    let bytes = word.as_bytes();
    // Padded position q: 0 is '<', 1..=nw are word chars, nw+1 is '>'.
    let feed = |h: &mut Fnv1a, q: usize| {
        if q == 0 {
            h.write_u8(b'<');
        } else if q == nw + 1 {
            h.write_u8(b'>');
        } else {
            h.write(&bytes[bounds[q - 1] as usize..bounds[q] as usize]);
        }
    };
    for p in 0..nchars {
        if p + lo > nchars {
            break;
        }
        let mut h = Fnv1a::new();
        h.write_u8(b'c');
        let last = (p + hi).min(nchars);
        for q in p..last {
            feed(&mut h, q);
            if q + 1 - p >= lo {
                out.push(bucket(h.finish(), cfg.hash_bits));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::fnv1a64;

    fn cfg(flags: u8) -> FeatureConfig {
        FeatureConfig {
            flags,
            hash_bits: 18,
            ..FeatureConfig::default()
        }
    }

    #[test]
    fn char_ngrams_match_padded_strings() {
        let c = FeatureConfig {
            char_min: 3,
            char_max: 4,
            ..cfg(F_CHAR)
        };
        let mut f = Features::new();
        f.extract(&c, "cuté");
        assert!(f.unit.is_empty());
        let mut want: Vec<u32> = ["<cu", "cut", "uté", "té>", "<cut", "cuté", "uté>"]
            .iter()
            .map(|g| {
                let mut v = vec![b'c'];
                v.extend_from_slice(g.as_bytes());
                bucket(fnv1a64(&v), c.hash_bits)
            })
            .collect();
        want.sort_unstable();
        let mut got = f.chars.clone();
        got.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn short_words_and_unigram_hash_are_fixed() {
        let mut f = Features::new();
        f.extract(&cfg(F_UNIGRAM), "Beat");
        // 'u' + "beat", FNV-1a 64, folded to 18 bits. Fixed forever.
        assert_eq!(f.unit, vec![bucket(fnv1a64(b"ubeat"), 18)]);
        assert_eq!(f.unit, vec![0x2_22ea]);
        f.extract(&cfg(F_UNIGRAM), "not beat");
        assert_eq!(f.unit[1], bucket(fnv1a64(b"uNEG_beat"), 18));
        f.extract(&cfg(F_CHAR), "a");
        assert_eq!(f.chars, vec![bucket(fnv1a64(b"c<a>"), 18)]);
    }

    #[test]
    fn lexicon_flips_under_negation() {
        let mut f = Features::new();
        let c = cfg(F_LEXICON);
        f.extract(&c, "growth");
        let pos = f.lex.clone();
        f.extract(&c, "no growth");
        assert_eq!(f.lex.len(), 1);
        assert_ne!(f.lex, pos);
        f.extract(&c, "decline");
        assert_eq!(f.lex, vec![bucket(fnv1a64(b"lLEX_NEG"), 18)]);
    }
}
