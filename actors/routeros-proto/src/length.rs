//! Word-length prefixes: the five big-endian encodings of the RouterOS API.
//!
//! | length                  | prefix bytes |
//! |-------------------------|--------------|
//! | `0x00..=0x7F`           | 1            |
//! | `0x80..=0x3FFF`         | 2 (`| 0x8000`) |
//! | `0x4000..=0x1F_FFFF`    | 3 (`| 0xC0_0000`) |
//! | `0x20_0000..=0x0FFF_FFFF` | 4 (`| 0xE000_0000`) |
//! | `0x1000_0000..`         | 5 (`0xF0` then 4 bytes) |
//!
//! A first byte `>= 0xF8` is a reserved control byte: the stream cannot be interpreted.

/// The outcome of reading a length prefix that is not complete or not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthError {
    /// The first byte is a reserved control byte (`>= 0xF8`).
    ReservedControlByte(u8),
    /// The first byte is `0xF1..=0xF7`, which no encoding produces.
    InvalidPrefix(u8),
}

impl std::fmt::Display for LengthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ReservedControlByte(b) => write!(f, "reserved control byte 0x{b:02x}"),
            Self::InvalidPrefix(b) => write!(f, "invalid length prefix byte 0x{b:02x}"),
        }
    }
}

impl std::error::Error for LengthError {}

/// Appends the length prefix for a word of `len` bytes to `out`.
///
/// Every `u32` length has an encoding; words longer than `u32::MAX` cannot be sent, and callers
/// limit word sizes far below that.
pub fn encode_length(len: u32, out: &mut Vec<u8>) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0x3FFF => out.extend_from_slice(&((len | 0x8000) as u16).to_be_bytes()),
        0x4000..=0x1F_FFFF => out.extend_from_slice(&(len | 0xC0_0000).to_be_bytes()[1..]),
        0x20_0000..=0x0FFF_FFFF => out.extend_from_slice(&(len | 0xE000_0000).to_be_bytes()),
        _ => {
            out.push(0xF0);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

/// How many prefix bytes [`encode_length`] writes for `len`.
pub fn encoded_length_size(len: u32) -> usize {
    match len {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        0x20_0000..=0x0FFF_FFFF => 4,
        _ => 5,
    }
}

/// Reads a length prefix at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of the prefix, `Ok(Some((len, prefix_size)))`
/// when it is complete, and an error when the first byte can never start a valid prefix.
pub fn decode_length(buf: &[u8]) -> Result<Option<(u32, usize)>, LengthError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let size = match first {
        0x00..=0x7F => 1,
        0x80..=0xBF => 2,
        0xC0..=0xDF => 3,
        0xE0..=0xEF => 4,
        0xF0 => 5,
        0xF1..=0xF7 => return Err(LengthError::InvalidPrefix(first)),
        0xF8..=0xFF => return Err(LengthError::ReservedControlByte(first)),
    };
    let Some(bytes) = buf.get(..size) else {
        return Ok(None);
    };
    let len = match size {
        1 => u32::from(first),
        2 => u32::from(first & 0x3F) << 8 | u32::from(bytes[1]),
        3 => u32::from(first & 0x1F) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]),
        4 => {
            u32::from(first & 0x0F) << 24
                | u32::from(bytes[1]) << 16
                | u32::from(bytes[2]) << 8
                | u32::from(bytes[3])
        }
        _ => u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]),
    };
    Ok(Some((len, size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        encode_length(len, &mut v);
        v
    }

    /// Vectors from the reference (§1.11 E) and the public go-routeros/librouteros tables.
    const VECTORS: &[(u32, &[u8])] = &[
        (0, &[0x00]),
        (1, &[0x01]),
        (127, &[0x7f]),
        (128, &[0x80, 0x80]),
        (130, &[0x80, 0x82]),
        (0x87, &[0x80, 0x87]),
        (200, &[0x80, 0xc8]),
        (0x3FFF, &[0xbf, 0xff]),
        (0x4000, &[0xc0, 0x40, 0x00]),
        (0x4321, &[0xc0, 0x43, 0x21]),
        (20000, &[0xc0, 0x4e, 0x20]),
        (2_097_140, &[0xdf, 0xff, 0xf4]),
        (0x1F_FFFF, &[0xdf, 0xff, 0xff]),
        (0x20_0000, &[0xe0, 0x20, 0x00, 0x00]),
        (0x2a_cdef, &[0xe0, 0x2a, 0xcd, 0xef]),
        (3_000_000, &[0xe0, 0x2d, 0xc6, 0xc0]),
        (268_435_440, &[0xef, 0xff, 0xff, 0xf0]),
        (0x0FFF_FFFF, &[0xef, 0xff, 0xff, 0xff]),
        (0x1000_0000, &[0xf0, 0x10, 0x00, 0x00, 0x00]),
        (0x1000_0080, &[0xf0, 0x10, 0x00, 0x00, 0x80]),
    ];

    #[test]
    fn public_vectors_encode_and_decode() {
        for &(len, bytes) in VECTORS {
            assert_eq!(enc(len), bytes, "encoding {len:#x}");
            assert_eq!(encoded_length_size(len), bytes.len());
            assert_eq!(
                decode_length(bytes),
                Ok(Some((len, bytes.len()))),
                "decoding {len:#x}"
            );
        }
    }

    #[test]
    fn every_strict_prefix_of_a_length_needs_more_bytes() {
        for &(_, bytes) in VECTORS {
            for cut in 0..bytes.len() {
                assert_eq!(decode_length(&bytes[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn control_and_unused_first_bytes_are_rejected() {
        for b in 0xF8..=0xFFu8 {
            assert_eq!(
                decode_length(&[b]),
                Err(LengthError::ReservedControlByte(b))
            );
        }
        for b in 0xF1..=0xF7u8 {
            assert_eq!(
                decode_length(&[b, 0, 0, 0, 0]),
                Err(LengthError::InvalidPrefix(b))
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_length_round_trips(len: u32) {
            let bytes = enc(len);
            proptest::prop_assert_eq!(decode_length(&bytes), Ok(Some((len, bytes.len()))));
        }
    }
}
