//! `logicalTypeOptions.format`: what a string must look like (`email`, `uuid`, `uri`, `hostname`,
//! `ipv4`, `ipv6`, `byte`), and how many bits an integer or a float may use (`i8` … `u128`,
//! `f32`, `f64`).

use std::net::{Ipv4Addr, Ipv6Addr};

/// A string format Tessera checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextFormat {
    /// `local@domain.tld`.
    Email,
    /// Canonical 8-4-4-4-12 hexadecimal.
    Uuid,
    /// `scheme:rest` (RFC 3986 scheme, no white space).
    Uri,
    /// RFC 1123 host name.
    Hostname,
    /// Dotted-quad IPv4 address.
    Ipv4,
    /// IPv6 address.
    Ipv6,
    /// Base64 (standard alphabet, padded).
    Byte,
}

impl TextFormat {
    /// The format named `name`; `None` if Tessera has no check for it.
    pub(super) fn parse(name: &str) -> Option<TextFormat> {
        Some(match name.to_ascii_lowercase().as_str() {
            "email" => TextFormat::Email,
            "uuid" => TextFormat::Uuid,
            "uri" | "url" => TextFormat::Uri,
            "hostname" => TextFormat::Hostname,
            "ipv4" => TextFormat::Ipv4,
            "ipv6" => TextFormat::Ipv6,
            "byte" => TextFormat::Byte,
            _ => return None,
        })
    }

    /// Whether `value` has this format.
    pub(super) fn matches(self, value: &str) -> bool {
        match self {
            TextFormat::Email => email(value),
            TextFormat::Uuid => uuid(value),
            TextFormat::Uri => uri(value),
            TextFormat::Hostname => hostname(value),
            TextFormat::Ipv4 => value.parse::<Ipv4Addr>().is_ok(),
            TextFormat::Ipv6 => value.parse::<Ipv6Addr>().is_ok(),
            TextFormat::Byte => base64(value),
        }
    }
}

/// The range of an integer `format` (`i8` … `u128`), as floating-point bounds.
pub(super) fn integer_range(format: &str) -> Option<(f64, f64)> {
    let bits = |b: i32| 2f64.powi(b);
    Some(match format {
        "i8" => (-bits(7), bits(7) - 1.0),
        "i16" => (-bits(15), bits(15) - 1.0),
        "i32" => (-bits(31), bits(31) - 1.0),
        "i64" => (-bits(63), bits(63) - 1.0),
        "i128" => (-bits(127), bits(127) - 1.0),
        "u8" => (0.0, bits(8) - 1.0),
        "u16" => (0.0, bits(16) - 1.0),
        "u32" => (0.0, bits(32) - 1.0),
        "u64" => (0.0, bits(64) - 1.0),
        "u128" => (0.0, bits(128) - 1.0),
        _ => return None,
    })
}

fn email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && !local.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain.contains('.')
        && hostname(domain)
}

fn uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn uri(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once(':') else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn hostname(value: &str) -> bool {
    let value = value.strip_suffix('.').unwrap_or(value);
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn base64(value: &str) -> bool {
    let body = value.trim_end_matches('=');
    let padding = value.len() - body.len();
    value.len().is_multiple_of(4)
        && padding <= 2
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_formats_accept_what_they_name_and_nothing_else() {
        let cases = [
            (
                TextFormat::Email,
                &["ada@example.com", "a.b+tag@mail.example.org"][..],
                &[
                    "ada",
                    "ada@",
                    "@example.com",
                    "ada@example",
                    "a da@example.com",
                    "a@b@c.com",
                ][..],
            ),
            (
                TextFormat::Uuid,
                &[
                    "123e4567-e89b-12d3-a456-426614174000",
                    "123E4567-E89B-12D3-A456-426614174000",
                ],
                &[
                    "123e4567e89b12d3a456426614174000",
                    "123e4567-e89b-12d3-a456-42661417400g",
                ],
            ),
            (
                TextFormat::Uri,
                &[
                    "https://example.com/a?b=c",
                    "urn:tessera:sales:orders",
                    "s3://bucket/key",
                ],
                &[
                    "example.com",
                    "https://exa mple.com",
                    "1http://x",
                    "mailto:",
                ],
            ),
            (
                TextFormat::Hostname,
                &["example.com", "db-1.internal", "localhost"],
                &["-bad.example.com", "under_score.com", "a..b", ""],
            ),
            (
                TextFormat::Ipv4,
                &["10.0.0.1", "255.255.255.255"],
                &["256.0.0.1", "10.0.0", "::1"],
            ),
            (
                TextFormat::Ipv6,
                &["::1", "2001:db8::8a2e:370:7334"],
                &["10.0.0.1", "2001:db8:::1"],
            ),
            (
                TextFormat::Byte,
                &["aGVsbG8=", "aGk=", ""],
                &["aGVsbG8", "a$==", "a==="],
            ),
        ];
        for (format, good, bad) in cases {
            for v in good {
                assert!(format.matches(v), "{format:?} should accept {v:?}");
            }
            for v in bad {
                assert!(!format.matches(v), "{format:?} should refuse {v:?}");
            }
        }
        assert_eq!(TextFormat::parse("EMAIL"), Some(TextFormat::Email));
        assert_eq!(TextFormat::parse("password"), None);
    }

    #[test]
    fn integer_formats_bound_their_values() {
        assert_eq!(integer_range("i8"), Some((-128.0, 127.0)));
        assert_eq!(integer_range("u16"), Some((0.0, 65535.0)));
        assert_eq!(integer_range("i32"), Some((-2147483648.0, 2147483647.0)));
        assert_eq!(integer_range("f32"), None);
    }
}
