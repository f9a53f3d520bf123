//! Fuzz target: arbitrary query words parsed with `QueryWord::parse`, then evaluated with
//! `query::matches` against an arbitrary item.
//!
//! Input layout (via `arbitrary`): the item's `(name, value)` properties, then the query
//! words. Words that fail to parse are skipped, as a server would reject them.
//!
//! Invariants checked:
//! - neither parse nor evaluation panics, whatever the words (`?#` operator strings with huge
//!   indices included);
//! - evaluation is deterministic;
//! - an empty query matches every item;
//! - a query of only value words (`?name`, `?-name`, `?name=x`, `?<`, `?>`, no `?#`) matches
//!   exactly when every one of its words matches on its own (the implicit AND).
#![no_main]

use libfuzzer_sys::fuzz_target;
use routeros_proto::QueryWord;
use routeros_proto::query::matches;

fuzz_target!(|input: (Vec<(String, String)>, Vec<String>)| {
    let (item, words) = input;
    let lookup = |name: &str| item.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());

    let parsed: Vec<QueryWord> = words
        .iter()
        .filter_map(|w| QueryWord::parse(w).ok())
        .collect();

    let first = matches(&parsed, lookup);
    let second = matches(&parsed, lookup);
    assert_eq!(first, second, "evaluation is not deterministic");
    assert!(matches(&[], lookup), "an empty query must match");

    if !parsed.iter().any(|w| matches!(w, QueryWord::Ops(_))) {
        let each = parsed
            .iter()
            .all(|w| matches(std::slice::from_ref(w), lookup));
        assert_eq!(first, each, "value words must AND together: {parsed:?}");
    }
});
