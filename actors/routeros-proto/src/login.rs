//! Login sentences: the post-6.43 plain login and the legacy MD5 challenge-response.

use md5::{Digest, Md5};

use crate::command::Command;

/// `/login =name=U =password=P` (RouterOS 6.43 and later).
pub fn plain_login(user: &str, password: &str) -> Command {
    Command::new("/login")
        .attr("name", user)
        .attr("password", password)
}

/// The legacy response for a `!done =ret=<challenge hex>`: `"00" + hex(MD5(0x00 ‖ password ‖
/// challenge))`. Returns `None` when the challenge is not valid hex.
pub fn challenge_response(password: &[u8], challenge_hex: &str) -> Option<String> {
    let challenge = decode_hex(challenge_hex)?;
    let mut md5 = Md5::new();
    md5.update([0u8]);
    md5.update(password);
    md5.update(&challenge);
    Some(format!("00{}", encode_hex(&md5.finalize())))
}

/// `/login =name=U =response=00…` answering a legacy challenge.
pub fn legacy_login(user: &str, response: &str) -> Command {
    Command::new("/login")
        .attr("name", user)
        .attr("response", response)
}

/// Lower-case hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xF)] as char);
    }
    s
}

/// Bytes of a hex string (either case); `None` on odd length or a non-hex digit.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16)?;
            let lo = (p[1] as char).to_digit(16)?;
            u8::try_from(hi << 4 | lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_md5_vectors() {
        // Reference §1.11 B.
        assert_eq!(
            challenge_response(b"secret", "ebddd18303a54111e2dea05a92ab46b4").unwrap(),
            "007319531c22b6b85e160d6ac355c1df2e"
        );
        assert_eq!(
            challenge_response(b"", "ebddd18303a54111e2dea05a92ab46b4").unwrap(),
            "001ea726ed53ae38520c8334f82d44c9f2"
        );
        // go-routeros proto_test.go.
        assert_eq!(
            challenge_response(b"passTest", "abc123").unwrap(),
            "0021277bff9ac7caf06aa608e46616d47f"
        );
        // MikroTik manual, empty password.
        assert_eq!(
            challenge_response(b"", "856780b7411eefd3abadee2058c149a3").unwrap(),
            "005062f7a5ef124d34675bf3e81f56c556"
        );
        assert_eq!(
            challenge_response(b"", "93b438ec9b80057c06dd9fe67d56aa9a").unwrap(),
            "00e134102a9d330dd7b1849fedfea3cb57"
        );
    }

    #[test]
    fn legacy_login_bytes_match_reference() {
        let cmd = legacy_login("admin", "007319531c22b6b85e160d6ac355c1df2e");
        let expected: &[u8] =
            b"\x06/login\x0b=name=admin\x2c=response=007319531c22b6b85e160d6ac355c1df2e\x00";
        assert_eq!(cmd.to_sentence().to_bytes(), expected);
    }

    #[test]
    fn bad_challenge_hex_is_refused() {
        assert_eq!(challenge_response(b"x", "abc"), None);
        assert_eq!(challenge_response(b"x", "zz"), None);
    }
}
