//! Words and sentences, and the incremental, bounded [`SentenceDecoder`].
//!
//! A word is a length prefix followed by that many raw bytes; a sentence is a run of words
//! ended by a zero-length word. The decoder keeps its scan position between calls, so feeding
//! a sentence one byte at a time costs linear, not quadratic, work.

use crate::length::{LengthError, decode_length, encode_length};

/// Bounds that keep a hostile peer from making the decoder allocate without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single word, in bytes.
    pub max_word_len: u32,
    /// Largest sentence, in bytes including prefixes.
    pub max_sentence_len: usize,
    /// Most words in one sentence.
    pub max_words: usize,
}

impl Limits {
    /// Limits for a client reading device replies: words up to 16 MiB (exports, file
    /// contents), sentences up to 32 MiB.
    pub const CLIENT: Limits = Limits {
        max_word_len: 16 << 20,
        max_sentence_len: 32 << 20,
        max_words: 65_536,
    };
    /// Limits for a server reading commands before login: small, as RouterOS caps them too.
    pub const PRE_LOGIN: Limits = Limits {
        max_word_len: 4 << 10,
        max_sentence_len: 16 << 10,
        max_words: 16,
    };
    /// Limits for a server reading commands from a logged-in client.
    pub const SERVER: Limits = Limits {
        max_word_len: 1 << 20,
        max_sentence_len: 4 << 20,
        max_words: 4_096,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::CLIENT
    }
}

/// Why a byte stream cannot be decoded. After any of these the stream must be closed: there
/// is no way to find the next sentence boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A length prefix that no encoding produces, or a reserved control byte.
    BadLength(LengthError),
    /// A word longer than [`Limits::max_word_len`].
    WordTooLong { len: u32, max: u32 },
    /// A sentence longer than [`Limits::max_sentence_len`].
    SentenceTooLong { max: usize },
    /// A sentence with more than [`Limits::max_words`] words.
    TooManyWords { max: usize },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadLength(e) => write!(f, "{e}"),
            Self::WordTooLong { len, max } => write!(f, "word of {len} bytes exceeds limit {max}"),
            Self::SentenceTooLong { max } => write!(f, "sentence exceeds limit of {max} bytes"),
            Self::TooManyWords { max } => write!(f, "sentence exceeds limit of {max} words"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<LengthError> for DecodeError {
    fn from(e: LengthError) -> Self {
        Self::BadLength(e)
    }
}

/// One sentence: its words as raw bytes, without the terminating empty word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sentence {
    pub words: Vec<Vec<u8>>,
}

impl Sentence {
    pub fn new(words: Vec<Vec<u8>>) -> Self {
        Self { words }
    }

    /// Builds a sentence from text words (handy in tests and for commands).
    pub fn from_strs<S: AsRef<str>>(words: &[S]) -> Self {
        Self {
            words: words
                .iter()
                .map(|w| w.as_ref().as_bytes().to_vec())
                .collect(),
        }
    }

    /// Appends the wire form (each word with its prefix, then the empty word) to `out`.
    ///
    /// # Panics
    /// If a word is longer than `u32::MAX` bytes, which no caller produces.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for word in &self.words {
            encode_word(word, out);
        }
        out.push(0);
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// Size of the wire form in bytes.
    pub fn encoded_len(&self) -> usize {
        self.words
            .iter()
            .map(|w| w.len() + crate::length::encoded_length_size(word_len_u32(w)))
            .sum::<usize>()
            + 1
    }

    /// The words lossily shown as text, for logs and test messages.
    pub fn display(&self) -> String {
        self.words
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn word_len_u32(word: &[u8]) -> u32 {
    u32::try_from(word.len()).expect("a RouterOS word is shorter than 4 GiB")
}

/// Appends one word with its length prefix.
pub fn encode_word(word: &[u8], out: &mut Vec<u8>) {
    encode_length(word_len_u32(word), out);
    out.extend_from_slice(word);
}

/// Incremental decoder of sentences from a byte buffer that the caller grows and drains.
///
/// Call [`SentenceDecoder::decode`] with everything received and not yet consumed. It returns
/// `Ok(None)` when more bytes are needed, `Ok(Some((sentence, consumed)))` when a sentence is
/// complete (the caller drops `consumed` bytes from the front), or an error when the stream is
/// invalid. The caller must not change bytes it has not consumed between calls.
///
/// Empty sentences (a bare zero byte) are skipped, as both RouterOS and its clients do.
#[derive(Debug, Clone, Default)]
pub struct SentenceDecoder {
    limits: Limits,
    /// Offset in the caller's buffer up to which whole words have been scanned.
    scanned: usize,
    /// Offset where the pending sentence starts (after skipped empty sentences).
    sentence_start: usize,
    /// Start and end offsets of the words found so far in the pending sentence.
    word_spans: Vec<(usize, usize)>,
}

impl SentenceDecoder {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            scanned: 0,
            sentence_start: 0,
            word_spans: Vec::new(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replaces the limits, e.g. after a successful login.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Frees the word index kept from the last sentence when no sentence is in progress
    /// (an idle session waiting for its next reply, thousands of them per node).
    pub fn release_memory(&mut self) {
        if self.word_spans.is_empty() {
            self.word_spans = Vec::new();
        }
    }

    /// Bytes of memory the decoder holds besides itself.
    pub fn held_bytes(&self) -> usize {
        self.word_spans.capacity() * std::mem::size_of::<(usize, usize)>()
    }

    /// Decodes the next complete sentence from `buf`, if there is one.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Sentence, usize)>, DecodeError> {
        loop {
            let rest = buf.get(self.scanned..).unwrap_or_default();
            let Some((len, prefix)) = decode_length(rest)? else {
                return Ok(None);
            };
            if len == 0 {
                self.scanned += prefix;
                if self.word_spans.is_empty() {
                    // An empty sentence: skip it; its bytes are consumed with the next one
                    // and count against that sentence's size limit, so a flood of empty
                    // sentences cannot grow the caller's buffer without bound.
                    if self.scanned - self.sentence_start > self.limits.max_sentence_len {
                        return Err(DecodeError::SentenceTooLong {
                            max: self.limits.max_sentence_len,
                        });
                    }
                    continue;
                }
                let consumed = self.scanned;
                let words = self
                    .word_spans
                    .drain(..)
                    .map(|(s, e)| buf[s..e].to_vec())
                    .collect();
                self.scanned = 0;
                self.sentence_start = 0;
                return Ok(Some((Sentence { words }, consumed)));
            }
            if len > self.limits.max_word_len {
                return Err(DecodeError::WordTooLong {
                    len,
                    max: self.limits.max_word_len,
                });
            }
            if self.word_spans.len() >= self.limits.max_words {
                return Err(DecodeError::TooManyWords {
                    max: self.limits.max_words,
                });
            }
            let start = self.scanned + prefix;
            let end = start + len as usize;
            // +1 for the terminating empty word that must still follow.
            if end + 1 - self.sentence_start > self.limits.max_sentence_len {
                return Err(DecodeError::SentenceTooLong {
                    max: self.limits.max_sentence_len,
                });
            }
            if end > buf.len() {
                return Ok(None);
            }
            self.word_spans.push((start, end));
            self.scanned = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_decoder_holds_nothing_and_still_decodes_after_releasing() {
        let mut wire = Vec::new();
        for i in 0..40 {
            let word = format!("=k{i}=v");
            wire.push(word.len() as u8);
            wire.extend_from_slice(word.as_bytes());
        }
        wire.push(0);
        let mut dec = SentenceDecoder::new(Limits::default());
        // Half a sentence: its word index must survive a release.
        let half = wire.len() / 2;
        assert!(dec.decode(&wire[..half]).unwrap().is_none());
        let held = dec.held_bytes();
        assert!(held > 0);
        dec.release_memory();
        assert_eq!(
            dec.held_bytes(),
            held,
            "a sentence in progress kept its index"
        );
        let (sentence, used) = dec.decode(&wire).unwrap().expect("whole sentence");
        assert_eq!((sentence.words.len(), used), (40, wire.len()));
        assert!(
            dec.held_bytes() > 0,
            "the index keeps its capacity between sentences"
        );
        dec.release_memory();
        assert_eq!(dec.held_bytes(), 0);
        let (again, _) = dec
            .decode(&wire)
            .unwrap()
            .expect("decodes after the release");
        assert_eq!(again, sentence);
    }

    fn decode_all(bytes: &[u8], limits: Limits) -> Result<Vec<Sentence>, DecodeError> {
        let mut dec = SentenceDecoder::new(limits);
        let mut buf = bytes.to_vec();
        let mut out = Vec::new();
        while let Some((s, used)) = dec.decode(&buf)? {
            out.push(s);
            buf.drain(..used);
        }
        Ok(out)
    }

    #[test]
    fn modern_login_bytes_match_the_reference() {
        let s = Sentence::from_strs(&["/login", "=name=admin", "=password=secret"]);
        let expected: &[u8] = b"\x06/login\x0b=name=admin\x10=password=secret\x00";
        assert_eq!(s.to_bytes(), expected);
        assert_eq!(expected.len(), 37);
        assert_eq!(decode_all(expected, Limits::CLIENT).unwrap(), vec![s]);
    }

    #[test]
    fn empty_sentences_are_skipped() {
        let bytes = b"\x00\x00\x05!done\x00\x00\x03!re\x00";
        let got = decode_all(bytes, Limits::CLIENT).unwrap();
        assert_eq!(
            got,
            vec![
                Sentence::from_strs(&["!done"]),
                Sentence::from_strs(&["!re"])
            ]
        );
    }

    #[test]
    fn a_byte_at_a_time_gives_the_same_sentences() {
        let mut bytes = Vec::new();
        Sentence::from_strs(&["!re", ".tag=7", "=name=ether1"]).encode(&mut bytes);
        bytes.push(0);
        Sentence::from_strs(&["!done", ".tag=7"]).encode(&mut bytes);
        let mut dec = SentenceDecoder::new(Limits::CLIENT);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for b in bytes {
            buf.push(b);
            while let Some((s, used)) = dec.decode(&buf).unwrap() {
                got.push(s);
                buf.drain(..used);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Sentence::from_strs(&["!done", ".tag=7"]));
    }

    #[test]
    fn limits_are_enforced_before_allocation() {
        let limits = Limits {
            max_word_len: 10,
            max_sentence_len: 30,
            max_words: 3,
        };
        // A word that claims 3 MB is refused on its prefix alone.
        assert_eq!(
            decode_all(&[0xe0, 0x2d, 0xc6, 0xc0], limits),
            Err(DecodeError::WordTooLong {
                len: 3_000_000,
                max: 10
            })
        );
        let four_words = Sentence::from_strs(&["a", "b", "c", "d"]).to_bytes();
        assert_eq!(
            decode_all(&four_words, limits),
            Err(DecodeError::TooManyWords { max: 3 })
        );
        let long = Sentence::from_strs(&["0123456789", "0123456789", "0123456789"]).to_bytes();
        assert_eq!(
            decode_all(&long, limits),
            Err(DecodeError::SentenceTooLong { max: 30 })
        );
    }

    #[test]
    fn a_flood_of_empty_sentences_hits_the_sentence_limit() {
        let flood = vec![0u8; Limits::PRE_LOGIN.max_sentence_len + 10];
        assert!(matches!(
            decode_all(&flood, Limits::PRE_LOGIN),
            Err(DecodeError::SentenceTooLong { .. })
        ));
    }

    #[test]
    fn garbage_control_bytes_are_invalid_not_incomplete() {
        assert!(matches!(
            decode_all(b"\x03!re\xf8", Limits::CLIENT),
            Err(DecodeError::BadLength(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn sentences_round_trip_under_any_fragmentation(
            sentences in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::collection::vec(proptest::num::u8::ANY, 1..300), 1..8), 1..5),
            chunk in 1usize..64,
        ) {
            let mut bytes = Vec::new();
            for words in &sentences {
                Sentence::new(words.clone()).encode(&mut bytes);
            }
            let mut dec = SentenceDecoder::new(Limits::CLIENT);
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some((s, used)) = dec.decode(&buf).unwrap() {
                    got.push(s.words);
                    buf.drain(..used);
                }
            }
            proptest::prop_assert_eq!(got, sentences);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_all(&bytes, Limits::PRE_LOGIN);
        }
    }
}
