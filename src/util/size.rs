//! Sizes in config values: `32MiB`, `512KiB`, `1GiB`, a number of bytes, and `0`.

/// What a malformed size's error message suggests instead.
const EXAMPLES: &str =
    "write sizes like 32MiB, 512KiB or 1GiB (binary units), or a number of bytes";

/// Units by how many bytes they hold. Decimal `kB`, `MB` and `GB` are accepted and mean what
/// they say (powers of 1000), so a value never silently means a different amount.
const UNITS: [(&str, u64); 7] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
];

/// Parses `<integer>` (bytes) or `<integer><unit>` with a unit of [`UNITS`]; the error message
/// quotes the input and says how to write it.
pub fn parse_size(input: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("\"{input}\" {why}; {EXAMPLES}");
    let digits_end = input
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(input.len());
    let (digits, unit) = input.split_at(digits_end);
    if digits.is_empty() {
        return Err(bad("is not a size"));
    }
    let count: u64 = digits.parse().map_err(|_| bad("is too large"))?;
    let scale = match unit.trim_start() {
        "" => 1,
        unit => UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| bad(&format!("has an unknown unit \"{unit}\"")))?,
    };
    count.checked_mul(scale).ok_or_else(|| bad("is too large"))
}

/// Formats `bytes` as [`parse_size`] reads it back: in the largest binary unit that divides it.
pub fn format_size(bytes: u64) -> String {
    for (name, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes != 0 && bytes.is_multiple_of(scale) {
            return format!("{}{name}", bytes / scale);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_units_and_bare_bytes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("32 MiB"), Ok(32 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("10B"), Ok(10));
    }

    #[test]
    fn refuses_what_it_cannot_read_and_says_how() {
        for (input, why) in [
            ("", "is not a size"),
            ("MiB", "is not a size"),
            ("-1MiB", "is not a size"),
            ("1.5MiB", "unknown unit \".5MiB\""),
            ("32mb", "unknown unit \"mb\""),
            ("99999999999999999999", "is too large"),
            ("99999999999GiB", "is too large"),
        ] {
            let message = parse_size(input).expect_err(input);
            assert!(message.contains(why), "{input}: {message}");
            assert!(message.contains("32MiB"), "{message}");
        }
    }

    #[test]
    fn formats_what_it_reads() {
        for bytes in [0, 1, 1000, 1024, 3 << 20, (1 << 30) + 1024, 5 << 30] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes), "{bytes}");
        }
        assert_eq!(format_size(32 << 20), "32MiB");
        assert_eq!(format_size(1536), "1536");
    }
}
