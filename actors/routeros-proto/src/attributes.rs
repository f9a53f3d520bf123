//! Ordered `=name=value` attribute lists. Values are raw bytes; names are text.

/// Attributes of one sentence in the order they arrived. Lookups are linear, which is faster
/// than hashing for the handful of attributes a RouterOS row carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    entries: Vec<(String, Vec<u8>)>,
}

impl Attributes {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
        }
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        let name = name.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Appends without checking for an earlier value (the decoder's path: keeps the wire order).
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.entries.push((name.into(), value.into()));
    }

    /// The value of `name` as text, or `None` when absent or not UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The raw value of `name`.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// Removes `name` and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Vec<u8>> {
        let i = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Keeps only the attributes whose name `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.entries.retain(|(n, _)| keep(n));
    }

    /// Appends the `=name=value` words.
    pub fn encode_words(&self, words: &mut Vec<Vec<u8>>) {
        for (name, value) in &self.entries {
            words.push(attribute_word(name, value));
        }
    }
}

impl<N: Into<String>, V: Into<Vec<u8>>> FromIterator<(N, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self {
            entries: iter
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }
}

/// Builds the word `=name=value`.
pub fn attribute_word(name: &str, value: &[u8]) -> Vec<u8> {
    let mut w = Vec::with_capacity(name.len() + value.len() + 2);
    w.push(b'=');
    w.extend_from_slice(name.as_bytes());
    w.push(b'=');
    w.extend_from_slice(value);
    w
}

/// Splits an attribute word (`=name=value`, or a bare `=name` meaning an empty value) into
/// name and value. The value may itself contain `=`: the split is on the first `=` after the
/// leading one. Returns `None` when the word is not an attribute or the name is not text.
pub fn split_attribute_word(word: &[u8]) -> Option<(&str, &[u8])> {
    let body = word.strip_prefix(b"=")?;
    let (name, value) = match body.iter().position(|&b| b == b'=') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[][..]),
    };
    if name.is_empty() {
        return None;
    }
    Some((std::str::from_utf8(name).ok()?, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_may_contain_equals_and_be_empty() {
        assert_eq!(
            split_attribute_word(b"=comment=a=b"),
            Some(("comment", &b"a=b"[..]))
        );
        assert_eq!(split_attribute_word(b"=once="), Some(("once", &b""[..])));
        assert_eq!(split_attribute_word(b"=once"), Some(("once", &b""[..])));
        assert_eq!(
            split_attribute_word(b"=.id=*1A"),
            Some((".id", &b"*1A"[..]))
        );
        assert_eq!(split_attribute_word(b"=="), None);
        assert_eq!(split_attribute_word(b"name=x"), None);
    }

    #[test]
    fn set_replaces_and_get_reads_text() {
        let mut a = Attributes::new();
        a.set("name", "ether1");
        a.set("name", "ether2");
        a.push("contents", vec![0xff, 0x00]);
        assert_eq!(a.get("name"), Some("ether2"));
        assert_eq!(a.get("contents"), None, "binary value is not text");
        assert_eq!(a.get_bytes("contents"), Some(&[0xff, 0x00][..]));
        assert_eq!(a.len(), 2);
    }
}
