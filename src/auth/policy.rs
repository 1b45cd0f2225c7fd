//! Who may ask for what: a pure function of the principal's patterns and the requested names.

use crate::domain::{DomainName, DomainPattern, NameSet};

/// The first requested name that none of `patterns` allows, if any.
pub fn first_denied<'a>(patterns: &[DomainPattern], names: &'a NameSet) -> Option<&'a DomainName> {
    names
        .names()
        .iter()
        .find(|name| !patterns.iter().any(|pattern| pattern.matches(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<DomainPattern> {
        list.iter()
            .map(|p| DomainPattern::parse(p).expect("pattern"))
            .collect()
    }

    fn names(list: &[&str]) -> NameSet {
        NameSet::parse(list).expect("names")
    }

    #[test]
    fn table() {
        let cases: &[(&[&str], &[&str], Option<&str>)] = &[
            (&["*"], &["a.example.com", "*.b.example.org"], None),
            (
                &["*.a.example.com", "a.example.com"],
                &["a.example.com", "x.a.example.com"],
                None,
            ),
            (
                &["*.a.example.com"],
                &["a.example.com"],
                Some("a.example.com"),
            ),
            (&["*.a.example.com"], &["*.a.example.com"], None),
            (&["*.a.example.com"], &["x.y.a.example.com"], None),
            (
                &["a.example.com"],
                &["a.example.com", "b.example.com"],
                Some("b.example.com"),
            ),
            (
                &["a.example.com"],
                &["*.a.example.com"],
                Some("*.a.example.com"),
            ),
            (&[], &["a.example.com"], Some("a.example.com")),
            (
                &["*.example.com"],
                &["example.com.evil.net"],
                Some("example.com.evil.net"),
            ),
        ];
        for (allowed, requested, denied) in cases {
            let requested = names(requested);
            let got = first_denied(&patterns(allowed), &requested).map(DomainName::as_str);
            assert_eq!(got, *denied, "{allowed:?} vs {requested}");
        }
    }
}
