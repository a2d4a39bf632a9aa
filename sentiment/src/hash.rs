//! Feature hashing: FNV-1a 64 plus a fixed fold into `2^bits` buckets.
//!
//! The model file stores weights per *bucket*, so the mapping from feature
//! text to bucket is part of the file format and must never change between
//! builds, platforms or processes. That is why this is a hand-written FNV-1a
//! (64-bit, offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) and not
//! `std`'s `DefaultHasher`, which is randomly seeded per process and whose
//! algorithm is explicitly unspecified.

/// FNV-1a 64 offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A streaming FNV-1a 64 hasher.
///
/// Streaming lets the featuriser hash a namespace byte, an optional `NEG_`
/// prefix and one or two token slices without ever building a `String` per
/// feature (scoring is allocation-free on the hot path).
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a {
    /// A hasher in the FNV-1a initial state.
    #[inline]
    pub const fn new() -> Self {
        Fnv1a(FNV_OFFSET)
    }

    /// Feeds bytes.
    #[inline]
    pub fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        self.0 = h;
    }

    /// Feeds one byte.
    #[inline]
    pub fn write_u8(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }

    /// The raw 64-bit FNV-1a value.
    #[inline]
    pub const fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a 64 of a byte string (the reference function; see the tests).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::new();
    h.write(bytes);
    h.finish()
}

/// Maps a 64-bit hash to a bucket in `0..2^bits`.
///
/// FNV-1a's low bits are mixed less well than its high bits, so the high half
/// is xor-folded into the low half before masking: `(h ^ (h >> 32)) & (2^bits - 1)`.
/// `bits` must be in `1..=31` (checked when a model is built or loaded).
#[inline]
pub const fn bucket(h: u64, bits: u8) -> u32 {
    ((h ^ (h >> 32)) & ((1u64 << bits) - 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut h = Fnv1a::new();
        h.write(b"foo");
        h.write_u8(b'b');
        h.write(b"ar");
        assert_eq!(h.finish(), fnv1a64(b"foobar"));
    }

    #[test]
    fn bucket_is_stable() {
        // Fixed expected buckets: if these change, every shipped model breaks.
        assert_eq!(bucket(fnv1a64(b"foobar"), 18), 0x1_2699);
        assert_eq!(fnv1a64(b"keel"), 0x585d_68d7_5cf6_d64c);
        assert_eq!(bucket(fnv1a64(b"keel"), 20), 0xb_be9b);
    }
}
