//! Who may ask for what: pure functions of the principal's patterns and profiles and the
//! requested identity.

use crate::domain::{DomainName, DomainPattern, NameSet, Profile};

/// Whether a principal limited to `allowed` (`None`: no limit) may ask for `profile` (`None`:
/// the configured default, which every principal may have).
pub fn profile_allowed(allowed: Option<&[Profile]>, profile: Option<&Profile>) -> bool {
    match (allowed, profile) {
        (None, _) | (_, None) => true,
        (Some(allowed), Some(profile)) => allowed.contains(profile),
    }
}

/// The profiles a principal may ask for, for messages.
pub fn profiles_text(allowed: Option<&[Profile]>) -> String {
    match allowed {
        None => "any profile".to_owned(),
        Some([]) => "the default profile only".to_owned(),
        Some(list) => {
            let names: Vec<&str> = list.iter().map(Profile::as_str).collect();
            format!("the default profile or {}", names.join(", "))
        }
    }
}

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
    fn profiles_are_allowed_by_the_list_and_the_default_always() {
        let short = Profile::parse("shortlived").expect("a profile");
        let classic = Profile::parse("classic").expect("a profile");
        let only_short = [short.clone()];
        for (allowed, asked, expected) in [
            (None, Some(&short), true),
            (None, None, true),
            (Some(&only_short[..]), Some(&short), true),
            (Some(&only_short[..]), Some(&classic), false),
            (Some(&only_short[..]), None, true),
            (Some(&[][..]), Some(&short), false),
            (Some(&[][..]), None, true),
        ] {
            assert_eq!(
                profile_allowed(allowed, asked),
                expected,
                "{allowed:?} asked {asked:?}"
            );
        }
        assert_eq!(profiles_text(Some(&[][..])), "the default profile only");
        assert_eq!(
            profiles_text(Some(&only_short[..])),
            "the default profile or shortlived"
        );
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
