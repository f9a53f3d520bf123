//! Client → server sentences: a command path, `=` attributes, `?` queries and a `.tag`.

use crate::ProtocolError;
use crate::attributes::{Attributes, split_attribute_word};
use crate::query::QueryWord;
use crate::sentence::Sentence;

/// A command as the client sends it and the server reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    /// The command word, e.g. `/interface/print`.
    pub path: String,
    /// `=name=value` arguments, including `.proplist` and `.id`, in order.
    pub attributes: Attributes,
    /// `?` query words, in order.
    pub queries: Vec<QueryWord>,
    /// The `.tag` API attribute, if any.
    pub tag: Option<String>,
    /// API attributes other than `.tag` (`.name=value` words), kept for the server to reject.
    pub api_attributes: Vec<(String, String)>,
}

impl Command {
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            ..Self::default()
        }
    }

    /// Adds an `=name=value` argument.
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.attributes.set(name, value);
        self
    }

    /// Asks for only these properties (`=.proplist=a,b,c`).
    pub fn proplist<S: AsRef<str>>(self, props: &[S]) -> Self {
        let list = props
            .iter()
            .map(|p| p.as_ref())
            .collect::<Vec<_>>()
            .join(",");
        self.attr(".proplist", list)
    }

    pub fn query(mut self, word: QueryWord) -> Self {
        self.queries.push(word);
        self
    }

    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// The requested `.proplist`, split on commas, if present.
    pub fn proplist_names(&self) -> Option<Vec<&str>> {
        self.attributes
            .get(".proplist")
            .map(|l| l.split(',').filter(|s| !s.is_empty()).collect())
    }

    /// The command as a sentence: path, attributes, queries, then `.tag` last (as clients do).
    pub fn to_sentence(&self) -> Sentence {
        let mut words = Vec::with_capacity(2 + self.attributes.len() + self.queries.len());
        words.push(self.path.as_bytes().to_vec());
        self.attributes.encode_words(&mut words);
        for q in &self.queries {
            words.push(q.to_word().into_bytes());
        }
        for (n, v) in &self.api_attributes {
            words.push(format!(".{n}={v}").into_bytes());
        }
        if let Some(tag) = &self.tag {
            words.push(format!(".tag={tag}").into_bytes());
        }
        Sentence::new(words)
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.to_sentence().encode(out);
    }

    /// Reads a command sentence (the server side). Words may come in any order after the path.
    pub fn parse(sentence: &Sentence) -> Result<Self, ProtocolError> {
        let (first, rest) = sentence
            .words
            .split_first()
            .ok_or(ProtocolError::EmptySentence)?;
        let path =
            std::str::from_utf8(first).map_err(|_| ProtocolError::NotUtf8 { word_index: 0 })?;
        if !path.starts_with('/') {
            return Err(ProtocolError::NotACommand(path.to_owned()));
        }
        let mut cmd = Command::new(path);
        for (i, word) in rest.iter().enumerate() {
            let word_index = i + 1;
            match word.first() {
                Some(b'=') => {
                    let (n, v) =
                        split_attribute_word(word).ok_or(ProtocolError::MalformedWord {
                            word_index,
                            reason: "attribute without a name",
                        })?;
                    cmd.attributes.set(n, v);
                }
                Some(b'?') => {
                    let text = std::str::from_utf8(word)
                        .map_err(|_| ProtocolError::NotUtf8 { word_index })?;
                    cmd.queries.push(QueryWord::parse(text)?);
                }
                Some(b'.') => {
                    let text = std::str::from_utf8(&word[1..])
                        .map_err(|_| ProtocolError::NotUtf8 { word_index })?;
                    let (n, v) = text.split_once('=').unwrap_or((text, ""));
                    if n == "tag" {
                        cmd.tag = (!v.is_empty()).then(|| v.to_owned());
                    } else {
                        cmd.api_attributes.push((n.to_owned(), v.to_owned()));
                    }
                }
                _ => {
                    return Err(ProtocolError::MalformedWord {
                        word_index,
                        reason: "word is neither attribute, query nor API attribute",
                    });
                }
            }
        }
        Ok(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_print_matches_reference_bytes() {
        let cmd = Command::new("/interface/print")
            .proplist(&["name", "rx-byte", "tx-byte", "running", "type"])
            .query(QueryWord::Eq("type".into(), "ether".into()))
            .tag("7");
        let mut bytes = Vec::new();
        cmd.encode(&mut bytes);
        let expected: &[u8] = b"\x10/interface/print\x2c=.proplist=name,rx-byte,tx-byte,running,type\x0b?type=ether\x06.tag=7\x00";
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), 82);
        let (sentence, _) = crate::SentenceDecoder::new(crate::Limits::SERVER)
            .decode(&bytes)
            .unwrap()
            .unwrap();
        assert_eq!(Command::parse(&sentence).unwrap(), cmd);
    }

    #[test]
    fn cancel_matches_reference_bytes() {
        let cmd = Command::new("/cancel").attr("tag", "2").tag("7");
        assert_eq!(
            cmd.to_sentence().to_bytes(),
            b"\x07/cancel\x06=tag=2\x06.tag=7\x00"
        );
    }

    #[test]
    fn rejects_words_that_are_not_commands() {
        assert_eq!(
            Command::parse(&Sentence::from_strs(&["!re"])),
            Err(ProtocolError::NotACommand("!re".into()))
        );
        assert!(Command::parse(&Sentence::from_strs(&["/x", "junk"])).is_err());
        assert!(Command::parse(&Sentence::from_strs(&["/x", "?#z"])).is_err());
        assert_eq!(
            Command::parse(&Sentence::default()),
            Err(ProtocolError::EmptySentence)
        );
    }

    #[test]
    fn empty_tag_means_untagged() {
        let cmd =
            Command::parse(&Sentence::from_strs(&["/system/identity/print", ".tag="])).unwrap();
        assert_eq!(cmd.tag, None);
    }
}
