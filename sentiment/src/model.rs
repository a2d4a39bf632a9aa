//! The model: a 3-class multinomial logistic regression over hashed features,
//! its i8-quantised weights, and the versioned `.kslm` binary format.
//!
//! # File format (`.kslm`, version 1, all integers little-endian)
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 4 | magic `b"KSLM"` |
//! | 4  | 2 | format version (`1`) |
//! | 6  | 1 | `hash_bits` |
//! | 7  | 1 | `char_min` |
//! | 8  | 1 | `char_max` |
//! | 9  | 1 | feature flags (`F_*`) |
//! | 10 | 1 | number of classes (`3`) |
//! | 11 | 3 | class order: label codes, must be `0,1,2` = negative, neutral, positive |
//! | 14 | 2 | reserved, `0` |
//! | 16 | 4 | `char_weight` (f32) |
//! | 20 | 4 | `lex_weight` (f32) |
//! | 24 | 12 | per-class weight scale (3 × f32) |
//! | 36 | 12 | per-class bias (3 × f32) |
//! | 48 | 3·2^bits | weights, i8, bucket-major (`w[bucket*3 + class]`) |
//! | end-8 | 8 | FNV-1a 64 of every preceding byte |
//!
//! Why i8: with per-class scales, 8-bit weights lose no measurable accuracy
//! (the trainer reports metrics of the *quantised* model) and make the file 4×
//! smaller than f32. Bucket-major layout puts the three class weights of a
//! feature in one cache line, which is what makes scoring fast.

use crate::features::{FeatureConfig, Features};
use crate::hash::fnv1a64;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::fmt;

/// File magic.
pub const MAGIC: &[u8; 4] = b"KSLM";
/// Current (and only) format version.
pub const FORMAT_VERSION: u16 = 1;
const HEADER_LEN: usize = 48;
/// Number of classes.
pub const N_CLASSES: usize = 3;

/// A sentiment class. Serialises as `"negative"`, `"neutral"`, `"positive"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Bearish / bad news / trouble.
    Negative,
    /// Neither.
    Neutral,
    /// Bullish / good news / progress.
    Positive,
}

impl Label {
    /// All labels in class-index order.
    pub const ALL: [Label; 3] = [Label::Negative, Label::Neutral, Label::Positive];

    /// Class index used by the model (0 negative, 1 neutral, 2 positive).
    pub const fn index(self) -> usize {
        match self {
            Label::Negative => 0,
            Label::Neutral => 1,
            Label::Positive => 2,
        }
    }

    /// Inverse of [`Label::index`].
    pub const fn from_index(i: usize) -> Option<Label> {
        match i {
            0 => Some(Label::Negative),
            1 => Some(Label::Neutral),
            2 => Some(Label::Positive),
            _ => None,
        }
    }

    /// Lowercase name, same as the serde name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Label::Negative => "negative",
            Label::Neutral => "neutral",
            Label::Positive => "positive",
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Softmax class probabilities (each in `[0, 1]`, summing to 1 up to f32
/// rounding).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// P(negative).
    pub negative: f32,
    /// P(neutral).
    pub neutral: f32,
    /// P(positive).
    pub positive: f32,
}

impl Scores {
    /// The most probable label. Ties go to `Neutral`, then `Negative`, so an
    /// uninformative text is never called positive or negative by accident.
    pub fn label(&self) -> Label {
        let mut best = (Label::Neutral, self.neutral);
        for (l, p) in [
            (Label::Negative, self.negative),
            (Label::Positive, self.positive),
        ] {
            if p > best.1 {
                best = (l, p);
            }
        }
        best.0
    }

    /// Probabilities in class-index order.
    pub fn as_array(&self) -> [f32; 3] {
        [self.negative, self.neutral, self.positive]
    }

    /// Softmax of logits in class-index order.
    pub fn from_logits(z: [f32; 3]) -> Scores {
        let m = z[0].max(z[1]).max(z[2]);
        let e = [(z[0] - m).exp(), (z[1] - m).exp(), (z[2] - m).exp()];
        let s = e[0] + e[1] + e[2];
        Scores {
            negative: e[0] / s,
            neutral: e[1] / s,
            positive: e[2] / s,
        }
    }
}

/// Why a model file could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Does not start with `KSLM`.
    BadMagic,
    /// A format version this build cannot read.
    UnsupportedVersion(u16),
    /// The byte length does not match the header.
    BadLength {
        /// Length the header implies.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// The trailing FNV-1a checksum does not match (corrupted file).
    Checksum,
    /// A header field is out of range.
    Invalid(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadMagic => f.write_str("not a keel sentiment model (bad magic)"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported model format version {v}"),
            Error::BadLength { expected, actual } => {
                write!(f, "model file is {actual} bytes, header implies {expected}")
            }
            Error::Checksum => f.write_str("model checksum mismatch (corrupted file)"),
            Error::Invalid(why) => write!(f, "invalid model header: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// The built-in model file, embedded at compile time.
static BUILTIN: &[u8] = include_bytes!("../model/default.kslm");

thread_local! {
    /// Per-thread feature buffers so `score(&self)` allocates nothing once warm.
    static SCRATCH: RefCell<Features> = RefCell::new(Features::new());
}

/// A loaded sentiment model. Immutable and `Send + Sync`: share one across
/// threads (e.g. behind an `Arc` or via [`DefaultModel::builtin_ref`]).
#[derive(Clone, Debug, PartialEq)]
pub struct DefaultModel {
    cfg: FeatureConfig,
    scale: [f32; 3],
    bias: [f32; 3],
    weights: Vec<i8>,
}

impl DefaultModel {
    /// The model shipped inside this crate (`model/default.kslm`), trained on
    /// the Twitter Financial News sentiment data. Parses ~1.5 MB; takes a few
    /// milliseconds in release builds (use [`DefaultModel::builtin_ref`] to parse once).
    ///
    /// # Panics
    /// Never in practice: the embedded file is checked by the crate's tests.
    pub fn builtin() -> DefaultModel {
        DefaultModel::from_bytes(BUILTIN).expect("embedded model/default.kslm is valid")
    }

    /// A process-wide shared instance of [`DefaultModel::builtin`], parsed once.
    pub fn builtin_ref() -> &'static DefaultModel {
        static M: std::sync::OnceLock<DefaultModel> = std::sync::OnceLock::new();
        M.get_or_init(DefaultModel::builtin)
    }

    /// Builds a model from parts (used by the trainer).
    pub fn from_parts(
        cfg: FeatureConfig,
        scale: [f32; 3],
        bias: [f32; 3],
        weights: Vec<i8>,
    ) -> Result<DefaultModel, Error> {
        cfg.validate().map_err(Error::Invalid)?;
        if weights.len() != cfg.buckets() * N_CLASSES {
            return Err(Error::Invalid("weights length != 3 * 2^hash_bits"));
        }
        if !scale.iter().chain(bias.iter()).all(|v| v.is_finite()) {
            return Err(Error::Invalid("non-finite scale or bias"));
        }
        Ok(DefaultModel {
            cfg,
            scale,
            bias,
            weights,
        })
    }

    /// Parses a `.kslm` file (see the module docs for the format).
    pub fn from_bytes(bytes: &[u8]) -> Result<DefaultModel, Error> {
        if bytes.len() < 4 || &bytes[..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        if bytes.len() < HEADER_LEN + 8 {
            return Err(Error::BadLength {
                expected: HEADER_LEN + 8,
                actual: bytes.len(),
            });
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let f32_at =
            |o: usize| f32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let cfg = FeatureConfig {
            hash_bits: bytes[6],
            char_min: bytes[7],
            char_max: bytes[8],
            flags: bytes[9],
            char_weight: f32_at(16),
            lex_weight: f32_at(20),
        };
        cfg.validate().map_err(Error::Invalid)?;
        if bytes[10] as usize != N_CLASSES {
            return Err(Error::Invalid("number of classes must be 3"));
        }
        if bytes[11..14] != [0, 1, 2] {
            return Err(Error::Invalid(
                "class order must be negative, neutral, positive",
            ));
        }
        let n = cfg.buckets() * N_CLASSES;
        let expected = HEADER_LEN + n + 8;
        if bytes.len() != expected {
            return Err(Error::BadLength {
                expected,
                actual: bytes.len(),
            });
        }
        let body = &bytes[..expected - 8];
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&bytes[expected - 8..]);
        if fnv1a64(body) != u64::from_le_bytes(sum) {
            return Err(Error::Checksum);
        }
        let scale = [f32_at(24), f32_at(28), f32_at(32)];
        let bias = [f32_at(36), f32_at(40), f32_at(44)];
        let weights = bytes[HEADER_LEN..HEADER_LEN + n]
            .iter()
            .map(|&b| b as i8)
            .collect();
        DefaultModel::from_parts(cfg, scale, bias, weights)
    }

    /// Serialises to the `.kslm` format. Deterministic: equal models give
    /// byte-identical files.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER_LEN + self.weights.len() + 8);
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        v.extend_from_slice(&[
            self.cfg.hash_bits,
            self.cfg.char_min,
            self.cfg.char_max,
            self.cfg.flags,
            N_CLASSES as u8,
            0,
            1,
            2,
            0,
            0,
        ]);
        v.extend_from_slice(&self.cfg.char_weight.to_le_bytes());
        v.extend_from_slice(&self.cfg.lex_weight.to_le_bytes());
        for x in self.scale.iter().chain(self.bias.iter()) {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend(self.weights.iter().map(|&w| w as u8));
        let sum = fnv1a64(&v);
        v.extend_from_slice(&sum.to_le_bytes());
        v
    }

    /// The feature configuration the model was trained with.
    pub fn feature_config(&self) -> &FeatureConfig {
        &self.cfg
    }

    /// Class probabilities for one text. Deterministic; any input is fine
    /// (empty text gives the prior implied by the biases).
    pub fn score(&self, text: &str) -> Scores {
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut f) => self.score_with(&mut f, text),
            // Only reachable if scoring re-enters itself on this thread.
            Err(_) => self.score_with(&mut Features::new(), text),
        })
    }

    /// The most probable label for one text.
    pub fn label(&self, text: &str) -> Label {
        self.score(text).label()
    }

    /// Scores many texts (same results as calling [`DefaultModel::score`] on each).
    pub fn score_batch(&self, texts: &[&str]) -> Vec<Scores> {
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut f) => texts.iter().map(|t| self.score_with(&mut f, t)).collect(),
            Err(_) => {
                let mut f = Features::new();
                texts.iter().map(|t| self.score_with(&mut f, t)).collect()
            }
        })
    }

    /// Scores with caller-provided buffers (no thread-local access).
    pub fn score_with(&self, feats: &mut Features, text: &str) -> Scores {
        feats.extract(&self.cfg, text);
        Scores::from_logits(self.logits(feats))
    }

    /// Logits for already-extracted features.
    pub fn logits(&self, feats: &Features) -> [f32; 3] {
        let w = &self.weights;
        let sum = |idx: &[u32]| {
            let mut acc = [0i32; 3];
            for &b in idx {
                let o = b as usize * 3;
                if let Some(ws) = w.get(o..o + 3) {
                    acc[0] += i32::from(ws[0]);
                    acc[1] += i32::from(ws[1]);
                    acc[2] += i32::from(ws[2]);
                }
            }
            acc
        };
        let u = sum(&feats.unit);
        let ch = sum(&feats.chars);
        let l = sum(&feats.lex);
        let norm = feats.norm(&self.cfg);
        let (cw, lw) = (self.cfg.char_weight, self.cfg.lex_weight);
        let mut z = self.bias;
        for c in 0..3 {
            z[c] += self.scale[c] * norm * (u[c] as f32 + cw * ch[c] as f32 + lw * l[c] as f32);
        }
        z
    }
}
