//! Fuzz target: `Command::parse` / `Reply::parse` followed by `to_sentence` and a second
//! parse must give the same value (a proxy or the simulator that re-encodes what it parsed
//! must not change its meaning). Also checks `QueryWord::parse(w.to_word()) == w`.
//!
//! The input is a list of words (via `arbitrary`), taken as one sentence. This target is
//! not part of the CI smoke run; run it by hand (docs/testing.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use routeros_proto::{Command, QueryWord, Reply, Sentence};

fuzz_target!(|words: Vec<Vec<u8>>| {
    // A decoded sentence never holds an empty word (a zero length ends the sentence).
    if words.iter().any(|w| w.is_empty()) {
        return;
    }
    let sentence = Sentence::new(words);

    if let Ok(cmd) = Command::parse(&sentence) {
        for q in &cmd.queries {
            assert_eq!(
                QueryWord::parse(&q.to_word()).as_ref(),
                Ok(q),
                "query word {q:?} does not survive to_word/parse"
            );
        }
        let again = Command::parse(&cmd.to_sentence());
        assert_eq!(again.as_ref(), Ok(&cmd), "command changes when re-encoded");
    }
    if let Ok(reply) = Reply::parse(&sentence) {
        let again = Reply::parse(&reply.to_sentence());
        assert_eq!(again.as_ref(), Ok(&reply), "reply changes when re-encoded");
    }
});
