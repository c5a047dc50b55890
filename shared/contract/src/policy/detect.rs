//! Personal-data detectors over sample values.
//!
//! Each detector is a pure function of one value (trimmed first) that answers whether it looks
//! like one kind of personal data: an e-mail address, a phone number, a payment card number (with
//! its Luhn check digit), an IBAN (with its mod-97 check) or an IP address. They are written to
//! miss rather than to cry wolf: plain integers, dates, amounts, order ids and version-like
//! numbers are not phone numbers, and a 16-digit number is a card only when its check digit
//! holds. A [`ValueScan`] counts matches over a column's values; a detector that matches at least
//! a threshold share of the non-empty values proposes the column's classification.
//!
//! ```
//! use tessera_contract::policy::{Detector, ValueScan};
//!
//! assert!(Detector::Card.matches("4111 1111 1111 1111"));
//! assert!(!Detector::Card.matches("4111 1111 1111 1112")); // fails the Luhn check
//! assert!(!Detector::Phone.matches("20240501"));            // a plain integer
//!
//! let mut scan = ValueScan::default();
//! for v in ["ada@example.com", "bob@example.org", "", "n/a"] {
//!     scan.add(v);
//! }
//! let finding = scan.finding(&Detector::ALL, 0.6).expect("2 of 3 values are e-mails");
//! assert_eq!((finding.detector, finding.matches, finding.values), (Detector::Email, 2, 3));
//! ```

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// A kind of personal data the detectors recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detector {
    /// E-mail addresses (`local@domain.tld`).
    Email,
    /// Phone numbers: international (`+` or `00`), North American (`(212) 555-0123`) and
    /// national numbers with a trunk `0` (`030 1234567`, `06 12 34 56 78`).
    Phone,
    /// Payment card numbers: 13 to 19 digits of a card network, valid Luhn check digit.
    Card,
    /// International bank account numbers, valid mod-97 check digits.
    Iban,
    /// IPv4 and IPv6 addresses.
    Ip,
}

impl Detector {
    /// Every detector, in the order findings are preferred.
    pub const ALL: [Detector; 5] = [
        Detector::Email,
        Detector::Card,
        Detector::Iban,
        Detector::Ip,
        Detector::Phone,
    ];

    /// The name used in policy files (`email`, `phone`, `card`, `iban`, `ip`).
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::Card => "card",
            Detector::Iban => "iban",
            Detector::Ip => "ip",
        }
    }

    /// What matching values are, in words (`e-mail addresses`).
    pub fn describe(self) -> &'static str {
        match self {
            Detector::Email => "e-mail addresses",
            Detector::Phone => "phone numbers",
            Detector::Card => "payment card numbers",
            Detector::Iban => "IBANs",
            Detector::Ip => "IP addresses",
        }
    }

    /// Whether `value` (trimmed) looks like this kind of personal data.
    pub fn matches(self, value: &str) -> bool {
        let v = value.trim();
        match self {
            Detector::Email => is_email(v),
            Detector::Phone => is_phone(v),
            Detector::Card => is_card(v),
            Detector::Iban => is_iban(v),
            Detector::Ip => is_ip(v),
        }
    }

    fn index(self) -> usize {
        match self {
            Detector::Email => 0,
            Detector::Phone => 1,
            Detector::Card => 2,
            Detector::Iban => 3,
            Detector::Ip => 4,
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Match counts of every detector over the values of one column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValueScan {
    values: u64,
    matches: [u64; 5],
}

/// A detector that matched enough of a column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What the values look like.
    pub detector: Detector,
    /// Values it matched.
    pub matches: u64,
    /// Non-empty values seen.
    pub values: u64,
}

impl Finding {
    /// Share of the values matched, from 0 to 1.
    pub fn share(&self) -> f64 {
        if self.values == 0 {
            0.0
        } else {
            self.matches as f64 / self.values as f64
        }
    }
}

impl ValueScan {
    /// Counts one value; empty (or blank) values are not counted.
    pub fn add(&mut self, value: &str) {
        let v = value.trim();
        if v.is_empty() {
            return;
        }
        self.values += 1;
        for d in Detector::ALL {
            if d.matches(v) {
                self.matches[d.index()] += 1;
            }
        }
    }

    /// Non-empty values counted.
    pub fn values(&self) -> u64 {
        self.values
    }

    /// The detector of `detectors` matching the largest share of the values, if that share is
    /// at least `threshold` (0 to 1); ties go to the earlier detector of [`Detector::ALL`].
    pub fn finding(&self, detectors: &[Detector], threshold: f64) -> Option<Finding> {
        let mut best: Option<Finding> = None;
        for d in Detector::ALL {
            if !detectors.contains(&d) {
                continue;
            }
            let f = Finding {
                detector: d,
                matches: self.matches[d.index()],
                values: self.values,
            };
            if f.matches > 0 && f.share() >= threshold && best.is_none_or(|b| f.matches > b.matches)
            {
                best = Some(f);
            }
        }
        best
    }
}

/// `local@domain.tld` with the characters RFC 5321 allows unquoted, a domain of at least two
/// labels and an alphabetic top-level domain.
fn is_email(v: &str) -> bool {
    if v.len() > 254 {
        return false;
    }
    let Some((local, domain)) = v.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    if !local_ok {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let tld = labels.last().copied().unwrap_or_default();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && (tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic())
            || tld.starts_with("xn--"))
}

/// Digit groups of a phone-like value: digits separated by single spaces, `-`, `.` or `/`, with
/// at most one group in parentheses. `None` when anything else is in the value.
struct Groups<'a> {
    groups: Vec<&'a str>,
    separators: Vec<char>,
    parenthesized: Option<usize>,
}

fn phone_groups(v: &str) -> Option<Groups<'_>> {
    let mut groups = Vec::new();
    let mut separators = Vec::new();
    let mut parenthesized = None;
    let bytes = v.as_bytes();
    let mut i = 0;
    let mut open = false;
    // Whether the last token was a separator (or the start): two in a row are refused.
    let mut after_separator = true;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            groups.push(&v[start..i]);
            after_separator = false;
            continue;
        }
        match c {
            b'(' if !open && parenthesized.is_none() && after_separator => {
                open = true;
                parenthesized = Some(groups.len());
            }
            b')' if open && !after_separator && parenthesized.is_some_and(|g| g < groups.len()) => {
                open = false;
                // `(555) 123` and `(0)20`: a separator may follow, or the next digits.
                after_separator = true;
                if bytes
                    .get(i + 1)
                    .is_some_and(|n| matches!(n, b' ' | b'-' | b'.' | b'/'))
                {
                    separators.push(char::from(bytes[i + 1]));
                    i += 1;
                }
            }
            b' ' | b'-' | b'.' | b'/' if !after_separator && !open => {
                separators.push(char::from(c));
                after_separator = true;
            }
            _ => return None,
        }
        i += 1;
    }
    if open || after_separator || groups.is_empty() {
        return None;
    }
    // Only the groups opened after `(` and closed before `)` count as parenthesized.
    if let Some(g) = parenthesized
        && groups.len() <= g
    {
        return None;
    }
    Some(Groups {
        groups,
        separators,
        parenthesized,
    })
}

fn is_phone(v: &str) -> bool {
    if v.len() > 32 {
        return false;
    }
    if let Some(rest) = v.strip_prefix('+') {
        // E.164: a country code (never 0) and at most 15 digits in all; `(0)` may mark the
        // trunk prefix that is not dialled from abroad.
        let Some(g) = phone_groups(rest) else {
            return false;
        };
        let digits: usize = g
            .groups
            .iter()
            .enumerate()
            .filter(|(i, d)| !(Some(*i) == g.parenthesized && **d == "0"))
            .map(|(_, d)| d.len())
            .sum();
        return !rest.starts_with('0') && (8..=15).contains(&digits) && g.parenthesized != Some(0);
    }
    let Some(g) = phone_groups(v) else {
        return false;
    };
    // A single run of digits is an integer, not a phone number.
    if g.groups.len() < 2 {
        return false;
    }
    // Dotted quads are IP addresses (or versions), not phone numbers.
    if g.groups.len() == 4 && g.separators.iter().all(|s| *s == '.') && g.parenthesized.is_none() {
        return false;
    }
    let digits: usize = g.groups.iter().map(|d| d.len()).sum();
    let first = g.groups[0];
    if let Some(rest) = first.strip_prefix("00")
        && g.parenthesized != Some(0)
    {
        // International with the `00` prefix: the country code never starts with 0.
        let digits = digits - 2;
        let country = if rest.is_empty() {
            g.groups.get(1).copied().unwrap_or_default()
        } else {
            rest
        };
        return !country.starts_with('0') && (8..=15).contains(&digits);
    }
    // North American: [1] (NXX) NXX-XXXX, the area code starting with 2-9.
    let lengths: Vec<usize> = g.groups.iter().map(|d| d.len()).collect();
    let nanp = match lengths.as_slice() {
        [3, 3, 4] => Some(0),
        [1, 3, 3, 4] if first == "1" => Some(1),
        _ => None,
    };
    if let Some(area) = nanp {
        let area_ok = g.groups[area]
            .chars()
            .next()
            .is_some_and(|c| ('2'..='9').contains(&c));
        let parens_ok = g.parenthesized.is_none_or(|p| p == area);
        return area_ok && parens_ok;
    }
    // National with a trunk 0: `030 1234567`, `(030) 1234567`, `06 12 34 56 78`, `020 7946 0958`.
    first.starts_with('0')
        && first.len() >= 2
        && !first.starts_with("00")
        && g.parenthesized.is_none_or(|p| p == 0)
        && (9..=12).contains(&digits)
}

/// 13 to 19 digits (single spaces or dashes between groups allowed) of a card network (first
/// digit 2 to 6) whose Luhn check digit holds.
fn is_card(v: &str) -> bool {
    let mut digits = Vec::with_capacity(19);
    let mut last_separator = true;
    let mut separator = None;
    for c in v.chars() {
        if let Some(d) = c.to_digit(10) {
            digits.push(d);
            last_separator = false;
        } else if (c == ' ' || c == '-') && !last_separator && separator.is_none_or(|s| s == c) {
            separator = Some(c);
            last_separator = true;
        } else {
            return false;
        }
    }
    if last_separator || !(13..=19).contains(&digits.len()) {
        return false;
    }
    if !(2..=6).contains(&digits[0]) {
        return false;
    }
    luhn(&digits)
}

/// The Luhn (mod 10) check over digits whose last one is the check digit.
pub fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Country code, two check digits and up to 30 letters or digits (single spaces allowed between
/// groups), 15 to 34 characters in all, whose ISO 7064 mod-97 check gives 1.
fn is_iban(v: &str) -> bool {
    if v.contains("  ") || v.starts_with(' ') {
        return false;
    }
    let compact: String = v.chars().filter(|c| *c != ' ').collect();
    let bytes = compact.as_bytes();
    if !(15..=34).contains(&bytes.len()) {
        return false;
    }
    let country_ok = bytes[..2].iter().all(u8::is_ascii_uppercase);
    let check_ok = bytes[2..4].iter().all(u8::is_ascii_digit);
    let rest_ok = bytes[4..]
        .iter()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    if !(country_ok && check_ok && rest_ok) {
        return false;
    }
    iban_mod97(bytes) == 1
}

/// The remainder of the IBAN's number (first four characters moved to the end, letters as 10 to
/// 35) divided by 97, computed digit by digit.
pub fn iban_mod97(iban: &[u8]) -> u32 {
    let mut rem = 0u32;
    for &b in iban[4..].iter().chain(&iban[..4]) {
        let value = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b.to_ascii_uppercase() - b'A') + 10
        };
        rem = if value >= 10 {
            (rem * 100 + value) % 97
        } else {
            (rem * 10 + value) % 97
        };
    }
    rem
}

/// Dotted-quad IPv4 (no leading zeros) or IPv6 text.
fn is_ip(v: &str) -> bool {
    v.parse::<Ipv4Addr>().is_ok()
        || (v.contains(':')
            && v.chars().any(|c| c.is_ascii_hexdigit())
            && v.parse::<Ipv6Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(d: Detector, v: &str) -> bool {
        Detector::ALL
            .iter()
            .all(|other| other.matches(v) == (*other == d))
    }

    fn none(v: &str) -> bool {
        Detector::ALL.iter().all(|d| !d.matches(v))
    }

    #[test]
    fn emails() {
        for v in [
            "ada@example.com",
            "  bob@example.org ",
            "first.last+tag@mail.example.co.uk",
            "o'brien@example.ie",
            "x@xn--bcher-kva.example",
        ] {
            assert!(only(Detector::Email, v), "{v}");
        }
        for v in [
            "ada@example",
            "ada@@example.com",
            "@example.com",
            "ada.@example.com",
            "a..b@example.com",
            "ada@-example.com",
            "ada@example.c0m",
            "ada example@example.com",
            "Contact ada@example.com",
            "ada@example.com;bob@example.org",
            "user@localhost",
        ] {
            assert!(!Detector::Email.matches(v), "{v}");
        }
    }

    #[test]
    fn phones() {
        for v in [
            "+4915112345678",
            "+44 20 7946 0958",
            "+44 (0)20 7946 0958",
            "+1 (212) 555-0123",
            "+33 6 12 34 56 78",
            "0044 20 7946 0958",
            "(212) 555-0123",
            "212-555-0123",
            "212.555.0123",
            "1 212 555 0123",
            "030 1234567",
            "030/1234567",
            "(030) 1234567",
            "06 12 34 56 78",
            "06-12345678",
            "020 7946 0958",
        ] {
            assert!(only(Detector::Phone, v), "{v}");
        }
    }

    #[test]
    fn phone_look_alikes_do_not_match() {
        for v in [
            // plain integers, zero-padded or not, and epoch seconds
            "1714557600",
            "0612345678",
            "000000012345",
            "+0123456789",
            // order ids and other codes
            "ORD-000001",
            "CUST-0001",
            "2024-000123",
            "0-306-40615-2",
            // dates and times
            "2024-05-01",
            "01-05-2024",
            "01.05.2024",
            "01/05/2024",
            "2024-05-01 10:30",
            "10:30:00",
            // amounts
            "120.50",
            "1.234.567",
            "1 234 567",
            "0.123456789",
            "12,50",
            // too short or too long
            "+49 1234",
            "+1234567890123456",
            "555-0123",
            // dotted quads
            "010.001.002.003",
            // malformed punctuation
            "030  1234567",
            "(030 1234567",
            "030) 1234567",
            "030 1234567-",
        ] {
            assert!(!Detector::Phone.matches(v), "{v}");
        }
    }

    #[test]
    fn cards_need_a_network_and_the_luhn_check() {
        for v in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500 0000 0000 0004",
            "3400 000000 00009",
            "6011000990139424",
            "2221000000000009",
        ] {
            assert!(only(Detector::Card, v), "{v}");
        }
        for v in [
            "4111111111111112", // Luhn fails
            "4111 1111 1111 1112",
            "1234567812345678", // Luhn fails, and no network starts with 1
            "1111111111111117", // Luhn holds, no network starts with 1
            "0000000000000000",
            "9111111111111111",
            "411111111111",         // 12 digits
            "41111111111111111111", // 20 digits
            "4111 1111-1111 1111",  // mixed separators
            "4111  1111 1111 1111", // double space
            "4111111111111111.00",  // an amount
            "ORD-4111111111111111",
        ] {
            assert!(!Detector::Card.matches(v), "{v}");
        }
    }

    #[test]
    fn luhn_and_mod97_arithmetic() {
        assert!(luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
        assert!(!luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 4]));
        assert_eq!(iban_mod97(b"GB82WEST12345698765432"), 1);
        assert_eq!(iban_mod97(b"GB83WEST12345698765432"), 2);
    }

    #[test]
    fn ibans_need_the_mod97_check() {
        for v in [
            "GB82WEST12345698765432",
            "GB82 WEST 1234 5698 7654 32",
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "BE68539007547034",
        ] {
            assert!(only(Detector::Iban, v), "{v}");
        }
        for v in [
            "GB83WEST12345698765432", // wrong check digits
            "DE89370400440532013001",
            "gb82west12345698765432", // not the IBAN's upper case
            "GB82WEST1234569876543200000000000000",
            "GB82",
            "1282WEST12345698765432",
            "GB82-WEST-1234-5698-7654-32",
        ] {
            assert!(!Detector::Iban.matches(v), "{v}");
        }
    }

    #[test]
    fn ip_addresses() {
        for v in [
            "192.168.1.10",
            "8.8.8.8",
            "2001:db8::1",
            "::1",
            "fe80::1ff:fe23:4567:890a",
        ] {
            assert!(only(Detector::Ip, v), "{v}");
        }
        for v in [
            "192.168.1",
            "256.1.1.1",
            "192.168.001.010",
            "10:30:00",
            "00:1a:2b:3c:4d:5e",
            "::",
            "2024-05-01",
            "1.5",
        ] {
            assert!(!Detector::Ip.matches(v), "{v}");
        }
    }

    #[test]
    fn ordinary_values_match_nothing() {
        for v in [
            "ORD-000001",
            "CUST-0001",
            "2024-05-01",
            "2024-05-01T08:15:00Z",
            "120.50",
            "EUR",
            "placed",
            "Leave at the door, please",
            "Ada Example",
            "true",
            "42",
            "-5.00",
        ] {
            assert!(none(v), "{v}");
        }
    }

    #[test]
    fn a_scan_proposes_the_detector_over_the_threshold() {
        let mut scan = ValueScan::default();
        for v in [
            "ada@example.com",
            "bob@example.org",
            "cy@example.net",
            "unknown",
            " ",
            "",
        ] {
            scan.add(v);
        }
        assert_eq!(scan.values(), 4);
        let f = scan.finding(&Detector::ALL, 0.75).unwrap();
        assert_eq!((f.detector, f.matches, f.values), (Detector::Email, 3, 4));
        assert!((f.share() - 0.75).abs() < 1e-9);
        assert_eq!(scan.finding(&Detector::ALL, 0.8), None);
        assert_eq!(scan.finding(&[Detector::Phone], 0.1), None);
        assert_eq!(ValueScan::default().finding(&Detector::ALL, 0.0), None);
    }

    #[test]
    fn ids_passing_luhn_by_chance_stay_under_the_threshold() {
        // One 16-digit id in ten passes the Luhn check by chance: a column of such ids is not a
        // column of card numbers.
        let mut scan = ValueScan::default();
        for n in 0..1000u64 {
            scan.add(&format!("{}", 4_000_000_000_000_000u64 + n * 7919));
        }
        let share = scan
            .finding(&[Detector::Card], 0.0)
            .map_or(0.0, |f| f.share());
        assert!(share > 0.05 && share < 0.2, "{share}");
        assert_eq!(scan.finding(&[Detector::Card], 0.5), None);
    }
}
