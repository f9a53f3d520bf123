//! Sans-IO codec for the MikroTik RouterOS API wire protocol (ports 8728/8729).
//!
//! # Layout
//! - [`length`]: the five word-length prefix encodings.
//! - [`sentence`]: words, sentences and the incremental [`SentenceDecoder`] with [`Limits`].
//! - [`attributes`]: ordered `=name=value` attribute lists with raw-byte values.
//! - [`command`]: client → server sentences ([`Command`]), with `.tag`, `.proplist` and queries.
//! - [`reply`]: server → client sentences ([`Reply`]): `!re`, `!done`, `!trap`, `!fatal`, `!empty`.
//! - [`query`]: query words (`?name=x`, `?-name`, `?<`, `?>`, `?#ops`) and their stack evaluation.
//! - [`login`]: the post-6.43 plain login and the legacy MD5 challenge login.
//!
//! # Invariants
//! - This crate does no IO and depends on no async runtime: bytes in, values out.
//! - No input makes it panic, and no input makes it allocate beyond the configured [`Limits`]:
//!   malformed bytes become an error value, and "need more bytes" (`Ok(None)`) is kept apart
//!   from "invalid" (`Err`).
//! - Values are kept as raw bytes; nothing is transcoded (file contents may be binary).

pub mod attributes;
pub mod command;
pub mod length;
pub mod login;
pub mod query;
pub mod reply;
pub mod sentence;

pub use attributes::Attributes;
pub use command::Command;
pub use length::{decode_length, encode_length};
pub use query::{QueryError, QueryWord};
pub use reply::{Reply, ReplyKind, TrapCategory};
pub use sentence::{DecodeError, Limits, Sentence, SentenceDecoder};

/// An error found while turning a decoded sentence into a [`Command`] or a [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The sentence had no words at all.
    EmptySentence,
    /// The first word of a reply was not one of `!re`, `!done`, `!trap`, `!fatal`, `!empty`.
    UnknownReply(String),
    /// The first word of a command did not start with `/`.
    NotACommand(String),
    /// A word is not valid UTF-8 where the protocol needs text (names, commands, tags).
    NotUtf8 { word_index: usize },
    /// A word inside a sentence has a shape the protocol does not allow.
    MalformedWord {
        word_index: usize,
        reason: &'static str,
    },
    /// A query word could not be parsed.
    Query(QueryError),
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EmptySentence => write!(f, "empty sentence"),
            Self::UnknownReply(w) => write!(f, "unknown reply word {w:?}"),
            Self::NotACommand(w) => write!(f, "first word {w:?} is not a command"),
            Self::NotUtf8 { word_index } => write!(f, "word {word_index} is not valid UTF-8"),
            Self::MalformedWord { word_index, reason } => {
                write!(f, "word {word_index} is malformed: {reason}")
            }
            Self::Query(e) => write!(f, "bad query: {e}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<QueryError> for ProtocolError {
    fn from(e: QueryError) -> Self {
        Self::Query(e)
    }
}
