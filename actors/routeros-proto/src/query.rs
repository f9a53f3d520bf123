//! Query words of `print` and `listen` (`?name`, `?-name`, `?name=x`, `?<name=x`, `?>name=x`,
//! `?#ops`) and their evaluation over RouterOS's boolean stack.
//!
//! The stack starts with infinitely many `true`; an item matches when the final stack holds no
//! `false`. That makes `?#|` over a single pushed value always match, exactly as on RouterOS.

/// One query word, in the order it appeared (order is significant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryWord {
    /// `?name`: the item has the property.
    Has(String),
    /// `?-name`: the item lacks the property.
    HasNot(String),
    /// `?name=x` (or `?=name=x`): the printed value equals `x` exactly.
    Eq(String, String),
    /// `?<name=x`: the value is less than `x`.
    Lt(String, String),
    /// `?>name=x`: the value is greater than `x`.
    Gt(String, String),
    /// `?#ops`: stack operations (`!`, `&`, `|`, `.`, digits).
    Ops(String),
}

/// A query word that cannot be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The word does not start with `?`.
    NotAQuery,
    /// The property name is empty.
    EmptyName,
    /// `?#` holds a character that is not an operator.
    BadOperator(char),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAQuery => write!(f, "query word does not start with '?'"),
            Self::EmptyName => write!(f, "query word names no property"),
            Self::BadOperator(c) => write!(f, "unknown query operator {c:?}"),
        }
    }
}

impl std::error::Error for QueryError {}

impl QueryWord {
    /// Parses a word that starts with `?`.
    pub fn parse(word: &str) -> Result<Self, QueryError> {
        let body = word.strip_prefix('?').ok_or(QueryError::NotAQuery)?;
        let named = |s: &str| -> Result<String, QueryError> {
            if s.is_empty() {
                Err(QueryError::EmptyName)
            } else {
                Ok(s.to_owned())
            }
        };
        let split = |s: &str| -> Result<(String, String), QueryError> {
            match s.split_once('=') {
                Some((n, v)) => Ok((named(n)?, v.to_owned())),
                None => Ok((named(s)?, String::new())),
            }
        };
        if let Some(ops) = body.strip_prefix('#') {
            if let Some(c) = ops
                .chars()
                .find(|c| !matches!(c, '!' | '&' | '|' | '.' | '0'..='9'))
            {
                return Err(QueryError::BadOperator(c));
            }
            return Ok(Self::Ops(ops.to_owned()));
        }
        if let Some(rest) = body.strip_prefix('-') {
            return Ok(Self::HasNot(named(rest)?));
        }
        if let Some(rest) = body.strip_prefix('<') {
            let (n, v) = split(rest)?;
            return Ok(Self::Lt(n, v));
        }
        if let Some(rest) = body.strip_prefix('>') {
            let (n, v) = split(rest)?;
            return Ok(Self::Gt(n, v));
        }
        if let Some(rest) = body.strip_prefix('=') {
            let (n, v) = split(rest)?;
            return Ok(Self::Eq(n, v));
        }
        match body.split_once('=') {
            Some((n, v)) => Ok(Self::Eq(named(n)?, v.to_owned())),
            None => Ok(Self::Has(named(body)?)),
        }
    }

    /// The wire form of the word.
    pub fn to_word(&self) -> String {
        match self {
            Self::Has(n) => format!("?{n}"),
            Self::HasNot(n) => format!("?-{n}"),
            // A name starting with an operator character needs the explicit `?=` form to
            // read back as an equality.
            Self::Eq(n, v) if n.starts_with(['-', '<', '>', '#']) => format!("?={n}={v}"),
            Self::Eq(n, v) => format!("?{n}={v}"),
            Self::Lt(n, v) => format!("?<{n}={v}"),
            Self::Gt(n, v) => format!("?>{n}={v}"),
            Self::Ops(o) => format!("?#{o}"),
        }
    }
}

/// Evaluates `words` against one item; `lookup` returns a property's printed value.
pub fn matches<'a>(words: &[QueryWord], lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
    // The explicit part of the stack; below it lie infinitely many `true`.
    let mut stack: Vec<bool> = Vec::new();
    for word in words {
        match word {
            QueryWord::Has(n) => stack.push(lookup(n).is_some()),
            QueryWord::HasNot(n) => stack.push(lookup(n).is_none()),
            QueryWord::Eq(n, v) => stack.push(lookup(n) == Some(v.as_str())),
            QueryWord::Lt(n, v) => {
                stack.push(lookup(n).is_some_and(|x| compare(x, v) == std::cmp::Ordering::Less))
            }
            QueryWord::Gt(n, v) => {
                stack.push(lookup(n).is_some_and(|x| compare(x, v) == std::cmp::Ordering::Greater))
            }
            QueryWord::Ops(ops) => apply_ops(&mut stack, ops),
        }
    }
    stack.iter().all(|&b| b)
}

/// Compares numerically when both sides are integers, otherwise as text.
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<i128>(), b.parse::<i128>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

fn apply_ops(stack: &mut Vec<bool>, ops: &str) {
    let pop = |s: &mut Vec<bool>| s.pop().unwrap_or(true);
    // Index 0 is the top; anything past the explicit stack reads the implicit `true`.
    let at = |s: &Vec<bool>, i: usize| {
        i.checked_add(1)
            .and_then(|n| s.len().checked_sub(n))
            .is_none_or(|j| s[j])
    };
    let bytes = ops.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                // Saturate absurd indices: anything past the explicit stack reads `true`.
                let index = ops[start..i].parse::<usize>().unwrap_or(usize::MAX);
                let value = at(stack, index);
                if i == bytes.len() {
                    stack.clear();
                    stack.push(value);
                } else {
                    stack.push(value);
                    if bytes[i] == b'.' {
                        i += 1; // `.` right after an index is a no-op
                    }
                }
                continue;
            }
            b'!' => {
                let v = pop(stack);
                stack.push(!v);
            }
            b'&' => {
                let (a, b) = (pop(stack), pop(stack));
                stack.push(a && b);
            }
            b'|' => {
                let (a, b) = (pop(stack), pop(stack));
                stack.push(a || b);
            }
            b'.' => {
                let v = at(stack, 0);
                stack.push(v);
            }
            _ => {} // parse() only admits the characters above
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(words: &[&str]) -> Vec<QueryWord> {
        words.iter().map(|w| QueryWord::parse(w).unwrap()).collect()
    }

    fn item<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
    }

    const ETHER: &[(&str, &str)] = &[("name", "ether1"), ("type", "ether"), ("mtu", "1500")];
    const VLAN: &[(&str, &str)] = &[("name", "vlan10"), ("type", "vlan"), ("mtu", "1496")];
    const WG: &[(&str, &str)] = &[("name", "wg0"), ("type", "wg"), ("comment", "x")];

    #[test]
    fn parses_every_form() {
        assert_eq!(
            QueryWord::parse("?name").unwrap(),
            QueryWord::Has("name".into())
        );
        assert_eq!(
            QueryWord::parse("?-name").unwrap(),
            QueryWord::HasNot("name".into())
        );
        assert_eq!(
            QueryWord::parse("?type=ether").unwrap(),
            QueryWord::Eq("type".into(), "ether".into())
        );
        assert_eq!(
            QueryWord::parse("?=type=ether").unwrap(),
            QueryWord::Eq("type".into(), "ether".into())
        );
        assert_eq!(
            QueryWord::parse("?<mtu=1500").unwrap(),
            QueryWord::Lt("mtu".into(), "1500".into())
        );
        assert_eq!(
            QueryWord::parse("?>comment=").unwrap(),
            QueryWord::Gt("comment".into(), String::new())
        );
        assert_eq!(
            QueryWord::parse("?#|!").unwrap(),
            QueryWord::Ops("|!".into())
        );
        assert_eq!(QueryWord::parse("?#x"), Err(QueryError::BadOperator('x')));
        assert_eq!(QueryWord::parse("?"), Err(QueryError::EmptyName));
        assert_eq!(QueryWord::parse("name"), Err(QueryError::NotAQuery));
    }

    #[test]
    fn or_and_negated_or_select_as_documented() {
        let either = q(&["?type=ether", "?type=vlan", "?#|"]);
        assert!(matches(&either, item(ETHER)));
        assert!(matches(&either, item(VLAN)));
        assert!(!matches(&either, item(WG)));
        let neither = q(&["?type=ether", "?type=vlan", "?#|!"]);
        assert!(!matches(&neither, item(ETHER)));
        assert!(matches(&neither, item(WG)));
    }

    #[test]
    fn or_over_one_value_always_matches() {
        // The classic pitfall: `|` ORs with the implicit `true` below.
        let pitfall = q(&["?type=vlan", "?#|"]);
        assert!(matches(&pitfall, item(ETHER)));
    }

    #[test]
    fn comparisons_are_numeric_when_both_sides_are_numbers() {
        assert!(matches(&q(&["?<mtu=1500"]), item(VLAN)));
        assert!(!matches(&q(&["?<mtu=1500"]), item(ETHER)));
        assert!(
            matches(&q(&["?>mtu=900"]), item(ETHER)),
            "1500 > 900 numerically"
        );
        assert!(matches(&q(&["?>comment="]), item(WG)));
        assert!(
            !matches(&q(&["?>comment="]), item(ETHER)),
            "absent is not greater"
        );
    }

    #[test]
    fn presence_and_absence() {
        assert!(matches(&q(&["?comment"]), item(WG)));
        assert!(!matches(&q(&["?comment"]), item(ETHER)));
        assert!(matches(&q(&["?-comment"]), item(ETHER)));
    }

    #[test]
    fn three_way_or_and_stack_index() {
        let any = q(&["?name=ether1", "?name=vlan10", "?name=zzz", "?#||"]);
        assert!(matches(&any, item(ETHER)));
        assert!(matches(&any, item(VLAN)));
        assert!(!matches(&any, item(WG)));
        // Index at the end replaces the stack: keep only the first pushed value (index 1).
        let first = q(&["?type=ether", "?type=vlan", "?#1"]);
        assert!(matches(&first, item(ETHER)));
        assert!(!matches(&first, item(VLAN)));
    }

    #[test]
    fn huge_stack_indices_read_the_implicit_true() {
        let words = q(&[
            "?type=vlan",
            "?#18446744073709551615",
            "?#!33333333333333333331",
        ]);
        let _ = matches(&words, item(ETHER));
        assert!(matches(&q(&["?#99999999999999999999999"]), item(ETHER)));
    }

    #[test]
    fn equality_on_operator_like_names_round_trips() {
        for name in ["-", "<x", ">y", "#z"] {
            let w = QueryWord::Eq(name.into(), "v".into());
            assert_eq!(QueryWord::parse(&w.to_word()).unwrap(), w, "{name}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_ops_string_evaluates_without_panic(ops in "[!&|.0-9]{0,40}") {
            let words = vec![QueryWord::Has("name".into()), QueryWord::Ops(ops)];
            let _ = matches(&words, item(ETHER));
        }

        #[test]
        fn parse_then_print_round_trips(name in "[a-z][a-z.-]{0,10}", value in "[a-z0-9=]{0,10}") {
            for w in [
                QueryWord::Has(name.clone()),
                QueryWord::Eq(name.clone(), value.clone()),
                QueryWord::Lt(name.clone(), value.clone()),
                QueryWord::Gt(name.clone(), value.clone()),
            ] {
                proptest::prop_assert_eq!(QueryWord::parse(&w.to_word()).unwrap(), w);
            }
        }
    }
}
