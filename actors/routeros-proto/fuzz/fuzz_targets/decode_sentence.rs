//! Fuzz target: arbitrary bytes, cut into arbitrary chunks, through `SentenceDecoder`.
//!
//! The first input byte picks how the rest is cut into chunks (as TCP would deliver it); the
//! rest is the byte stream. For both `Limits::PRE_LOGIN` (server before login) and
//! `Limits::CLIENT` (client reading replies) the stream is drained like a real reader does:
//! append a chunk, decode until `Ok(None)`, drop `consumed` bytes, stop at the first error.
//!
//! Invariants checked:
//! - no panic (the crate promises that no input makes it panic);
//! - `0 < consumed <= buffer length` for every decoded sentence, and a decoded sentence has
//!   at least one word, each within `max_word_len`;
//! - the sentences and the final error do not depend on how the stream was chunked (the
//!   chunked run equals a run that sees the whole stream at once);
//! - a decoded sentence re-encodes (`Sentence::encode`) to bytes that decode, with the same
//!   limits, to the same sentence, consuming exactly those bytes;
//! - `Reply::parse` and `Command::parse` return (Ok or Err) on every decoded sentence.
#![no_main]

use libfuzzer_sys::fuzz_target;
use routeros_proto::{Command, DecodeError, Limits, Reply, Sentence, SentenceDecoder};

/// What one reader saw: the sentences, the error that ended the stream (if any), and how many
/// bytes were left unconsumed at the end.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    sentences: Vec<Sentence>,
    error: Option<DecodeError>,
    leftover: usize,
}

/// Chunk lengths from a one-byte seed: a small xorshift walk over 1..=max, where `max` is
/// picked by the seed's low bits so that byte-at-a-time, small and large chunks all occur.
fn chunk_lengths(seed: u8, total: usize) -> Vec<usize> {
    let max = match seed & 0b11 {
        0 => 1,
        1 => 7,
        2 => 64,
        _ => total.max(1),
    };
    let mut state = u32::from(seed) | 0x9e37_7900;
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = (state as usize % max + 1).min(left);
        out.push(len);
        left -= len;
    }
    out
}

fn read_stream(stream: &[u8], chunks: &[usize], limits: Limits) -> Outcome {
    let mut dec = SentenceDecoder::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut sentences = Vec::new();
    let mut offset = 0;
    for &len in chunks {
        buf.extend_from_slice(&stream[offset..offset + len]);
        offset += len;
        loop {
            match dec.decode(&buf) {
                Ok(Some((sentence, consumed))) => {
                    assert!(consumed > 0, "a decoded sentence consumed no bytes");
                    assert!(
                        consumed <= buf.len(),
                        "consumed {consumed} > buffer length {}",
                        buf.len()
                    );
                    assert!(!sentence.words.is_empty(), "decoded an empty sentence");
                    assert!(sentence.words.len() <= limits.max_words);
                    for w in &sentence.words {
                        assert!(!w.is_empty(), "a word inside a sentence is empty");
                        assert!(w.len() <= limits.max_word_len as usize);
                    }
                    buf.drain(..consumed);
                    sentences.push(sentence);
                }
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        sentences,
                        error: Some(error),
                        leftover: buf.len() + (stream.len() - offset),
                    };
                }
            }
        }
    }
    Outcome {
        sentences,
        error: None,
        leftover: buf.len(),
    }
}

fn check_reencode(sentence: &Sentence, limits: Limits) {
    let mut bytes = Vec::new();
    sentence.encode(&mut bytes);
    assert_eq!(bytes.len(), sentence.encoded_len(), "encoded_len disagrees with encode");
    let mut dec = SentenceDecoder::new(limits);
    match dec.decode(&bytes) {
        Ok(Some((again, consumed))) => {
            assert_eq!(&again, sentence, "re-encoded sentence decodes differently");
            assert_eq!(consumed, bytes.len(), "re-encoded sentence not consumed whole");
        }
        other => panic!("re-encoded sentence {sentence:?} did not decode: {other:?}"),
    }
}

fn check(stream: &[u8], seed: u8, limits: Limits) {
    let chunked = read_stream(stream, &chunk_lengths(seed, stream.len()), limits);
    let whole = read_stream(stream, &[stream.len()], limits);
    assert_eq!(
        (&chunked.sentences, &chunked.error),
        (&whole.sentences, &whole.error),
        "result depends on chunking"
    );
    if chunked.error.is_none() {
        assert_eq!(chunked.leftover, whole.leftover);
    }
    for sentence in &chunked.sentences {
        check_reencode(sentence, limits);
        let _ = Reply::parse(sentence);
        let _ = Command::parse(sentence);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    check(stream, seed, Limits::PRE_LOGIN);
    check(stream, seed, Limits::CLIENT);
});
