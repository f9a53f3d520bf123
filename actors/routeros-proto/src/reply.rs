//! Server → client sentences: `!re`, `!done`, `!trap`, `!fatal` and `!empty` (RouterOS 7.18+).

use crate::ProtocolError;
use crate::attributes::{Attributes, split_attribute_word};
use crate::sentence::Sentence;

/// The reply word that starts a server sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// One data row.
    Re,
    /// The command finished (always the last reply of a command).
    Done,
    /// An error; still followed by `!done`.
    Trap,
    /// The session is over; the connection will close.
    Fatal,
    /// No data rows (7.18+); still followed by `!done`.
    Empty,
}

impl ReplyKind {
    pub fn word(self) -> &'static str {
        match self {
            Self::Re => "!re",
            Self::Done => "!done",
            Self::Trap => "!trap",
            Self::Fatal => "!fatal",
            Self::Empty => "!empty",
        }
    }

    fn from_word(w: &[u8]) -> Option<Self> {
        Some(match w {
            b"!re" => Self::Re,
            b"!done" => Self::Done,
            b"!trap" => Self::Trap,
            b"!fatal" => Self::Fatal,
            b"!empty" => Self::Empty,
            _ => return None,
        })
    }
}

/// `!trap` categories (`=category=N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapCategory {
    MissingItemOrCommand,
    ArgumentValue,
    Interrupted,
    Scripting,
    General,
    Api,
    Tty,
    ReturnValue,
    /// A number RouterOS does not document.
    Other(u32),
}

impl TrapCategory {
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => Self::MissingItemOrCommand,
            1 => Self::ArgumentValue,
            2 => Self::Interrupted,
            3 => Self::Scripting,
            4 => Self::General,
            5 => Self::Api,
            6 => Self::Tty,
            7 => Self::ReturnValue,
            n => Self::Other(n),
        }
    }

    pub fn code(self) -> u32 {
        match self {
            Self::MissingItemOrCommand => 0,
            Self::ArgumentValue => 1,
            Self::Interrupted => 2,
            Self::Scripting => 3,
            Self::General => 4,
            Self::Api => 5,
            Self::Tty => 6,
            Self::ReturnValue => 7,
            Self::Other(n) => n,
        }
    }
}

/// One reply sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyKind,
    pub tag: Option<String>,
    pub attributes: Attributes,
    /// For `!fatal`: the bare reason word (e.g. `session terminated on request`).
    pub fatal_reason: Option<String>,
}

impl Reply {
    pub fn new(kind: ReplyKind) -> Self {
        Self {
            kind,
            tag: None,
            attributes: Attributes::new(),
            fatal_reason: None,
        }
    }

    pub fn re(attributes: Attributes) -> Self {
        Self {
            attributes,
            ..Self::new(ReplyKind::Re)
        }
    }

    pub fn done() -> Self {
        Self::new(ReplyKind::Done)
    }

    /// `!done =ret=value` (the new id after `add`, a login challenge, a return value).
    pub fn done_ret(ret: impl Into<Vec<u8>>) -> Self {
        let mut r = Self::done();
        r.attributes.set("ret", ret);
        r
    }

    pub fn empty() -> Self {
        Self::new(ReplyKind::Empty)
    }

    pub fn trap(category: Option<TrapCategory>, message: impl Into<Vec<u8>>) -> Self {
        let mut r = Self::new(ReplyKind::Trap);
        if let Some(c) = category {
            r.attributes.set("category", c.code().to_string());
        }
        r.attributes.set("message", message);
        r
    }

    pub fn fatal(reason: impl Into<String>) -> Self {
        Self {
            fatal_reason: Some(reason.into()),
            ..Self::new(ReplyKind::Fatal)
        }
    }

    pub fn with_tag(mut self, tag: Option<String>) -> Self {
        self.tag = tag;
        self
    }

    /// The `=message=` of a trap.
    pub fn message(&self) -> Option<&str> {
        self.attributes.get("message")
    }

    /// The `=category=` of a trap, if present and numeric.
    pub fn category(&self) -> Option<TrapCategory> {
        self.attributes
            .get("category")
            .and_then(|c| c.parse::<u32>().ok())
            .map(TrapCategory::from_code)
    }

    /// The `=ret=` of a `!done`.
    pub fn ret(&self) -> Option<&str> {
        self.attributes.get("ret")
    }

    /// The sentence as RouterOS sends it: reply word, then `.tag`, then attributes.
    pub fn to_sentence(&self) -> Sentence {
        let mut words = Vec::with_capacity(2 + self.attributes.len());
        words.push(self.kind.word().as_bytes().to_vec());
        if let Some(tag) = &self.tag {
            words.push(format!(".tag={tag}").into_bytes());
        }
        if let Some(reason) = &self.fatal_reason {
            words.push(reason.as_bytes().to_vec());
        }
        self.attributes.encode_words(&mut words);
        Sentence::new(words)
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.to_sentence().encode(out);
    }

    /// Reads a reply sentence. `.tag` may sit anywhere; unknown API attributes are ignored.
    pub fn parse(sentence: &Sentence) -> Result<Self, ProtocolError> {
        let (first, rest) = sentence
            .words
            .split_first()
            .ok_or(ProtocolError::EmptySentence)?;
        let kind = ReplyKind::from_word(first).ok_or_else(|| {
            ProtocolError::UnknownReply(String::from_utf8_lossy(first).into_owned())
        })?;
        let mut reply = Reply::new(kind);
        reply.attributes = Attributes::with_capacity(rest.len());
        for (i, word) in rest.iter().enumerate() {
            let word_index = i + 1;
            match word.first() {
                Some(b'=') => {
                    let (n, v) =
                        split_attribute_word(word).ok_or(ProtocolError::MalformedWord {
                            word_index,
                            reason: "attribute without a name",
                        })?;
                    reply.attributes.push(n, v);
                }
                Some(b'.') if word.starts_with(b".tag=") => {
                    let tag = std::str::from_utf8(&word[5..])
                        .map_err(|_| ProtocolError::NotUtf8 { word_index })?;
                    reply.tag = Some(tag.to_owned());
                }
                Some(b'.') => {} // other API attributes: tolerated and ignored
                _ if kind == ReplyKind::Fatal => {
                    let text = String::from_utf8_lossy(word).into_owned();
                    reply.fatal_reason = Some(match reply.fatal_reason.take() {
                        Some(prev) => format!("{prev} {text}"),
                        None => text,
                    });
                }
                _ => {
                    return Err(ProtocolError::MalformedWord {
                        word_index,
                        reason: "bare word in a reply other than !fatal",
                    });
                }
            }
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(r: &Reply) -> Vec<u8> {
        r.to_sentence().to_bytes()
    }

    #[test]
    fn tagged_row_puts_tag_second_as_routeros_does() {
        let mut a = Attributes::new();
        a.push("name", "ether1");
        a.push("rx-byte", "123456789");
        a.push("running", "true");
        let r = Reply::re(a).with_tag(Some("7".into()));
        let expected: &[u8] =
            b"\x03!re\x06.tag=7\x0c=name=ether1\x12=rx-byte=123456789\x0d=running=true\x00";
        assert_eq!(bytes_of(&r), expected);
        assert_eq!(expected.len(), 58);
        assert_eq!(Reply::parse(&r.to_sentence()).unwrap(), r);
    }

    #[test]
    fn done_empty_trap_fatal_match_reference_bytes() {
        assert_eq!(bytes_of(&Reply::done()), b"\x05!done\x00");
        assert_eq!(
            bytes_of(&Reply::done().with_tag(Some("7".into()))),
            b"\x05!done\x06.tag=7\x00"
        );
        assert_eq!(
            bytes_of(&Reply::empty().with_tag(Some("7".into()))),
            b"\x06!empty\x06.tag=7\x00"
        );
        assert_eq!(
            bytes_of(&Reply::trap(
                Some(TrapCategory::MissingItemOrCommand),
                "no such command prefix"
            )),
            b"\x05!trap\x0b=category=0\x1f=message=no such command prefix\x00"
        );
        let fatal = Reply::fatal("session terminated on request");
        assert_eq!(
            bytes_of(&fatal),
            b"\x06!fatal\x1dsession terminated on request\x00"
        );
        let parsed = Reply::parse(&fatal.to_sentence()).unwrap();
        assert_eq!(
            parsed.fatal_reason.as_deref(),
            Some("session terminated on request")
        );
    }

    #[test]
    fn tag_is_accepted_in_any_position() {
        let s = Sentence::from_strs(&["!re", "=name=x", ".tag=r5"]);
        let r = Reply::parse(&s).unwrap();
        assert_eq!(r.tag.as_deref(), Some("r5"));
        assert_eq!(r.attributes.get("name"), Some("x"));
    }

    #[test]
    fn trap_category_and_message_are_read() {
        let r = Reply::parse(&Sentence::from_strs(&[
            "!trap",
            ".tag=2",
            "=category=2",
            "=message=interrupted",
        ]))
        .unwrap();
        assert_eq!(r.category(), Some(TrapCategory::Interrupted));
        assert_eq!(r.message(), Some("interrupted"));
    }

    #[test]
    fn unknown_reply_words_are_errors() {
        assert!(matches!(
            Reply::parse(&Sentence::from_strs(&["!bogus"])),
            Err(ProtocolError::UnknownReply(_))
        ));
        assert!(Reply::parse(&Sentence::from_strs(&["!re", "bare"])).is_err());
    }
}
