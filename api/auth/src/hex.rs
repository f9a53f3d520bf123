//! Lowercase hex, as used on the wire for SRP values and in the test vectors.

/// Why a hex string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("hex string longer than {max} characters")]
    TooLong { max: usize },
    #[error("odd number of hex digits")]
    OddLength,
    #[error("not a hex digit at position {0}")]
    InvalidDigit(usize),
}

/// Lowercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decode an even-length hex string (either case).
pub fn decode(s: &str) -> Result<Vec<u8>, HexError> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(HexError::OddLength);
    }
    let mut out = Vec::with_capacity(b.len() / 2);
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = nibble(pair[0]).ok_or(HexError::InvalidDigit(2 * i))?;
        let lo = nibble(pair[1]).ok_or(HexError::InvalidDigit(2 * i + 1))?;
        out.push(hi << 4 | lo);
    }
    Ok(out)
}

/// Decode the hex of a big number: odd lengths get a leading zero (JavaScript's
/// `BigInt.toString(16)` makes them), at most `max_chars` characters.
pub fn decode_number(s: &str, max_chars: usize) -> Result<Vec<u8>, HexError> {
    if s.len() > max_chars {
        return Err(HexError::TooLong { max: max_chars });
    }
    if !s.len().is_multiple_of(2) {
        let mut padded = String::with_capacity(s.len() + 1);
        padded.push('0');
        padded.push_str(s);
        decode(&padded)
    } else {
        decode(s)
    }
}

/// serde helper: `Vec<u8>` as lowercase hex.
pub(crate) mod serde_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::decode(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(encode(&[0x00, 0xab, 0x0f]), "00ab0f");
        assert_eq!(decode("00AB0f"), Ok(vec![0x00, 0xab, 0x0f]));
        assert_eq!(decode("abc"), Err(HexError::OddLength));
        assert_eq!(decode("zz"), Err(HexError::InvalidDigit(0)));
        assert_eq!(decode_number("abc", 10), Ok(vec![0x0a, 0xbc]));
        assert!(decode_number("abcd", 3).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(decode(&encode(&bytes)), Ok(bytes));
        }

        #[test]
        fn never_panics(s in ".{0,80}") {
            let _ = decode(&s);
            let _ = decode_number(&s, 40);
        }
    }
}
