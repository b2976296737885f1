//! Identifiers and timestamps of records.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A new random identifier (128 bits from the kernel's CSPRNG, UUID-v4 shaped).
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    let mut filled = 0;
    while filled < b.len() {
        match rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("getrandom: {e}"),
        }
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether `s` has the shape of an id made by [`new_id`] (ids become file and container names).
pub fn is_id(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
            }
        })
}

/// Now, in UTC.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// RFC 3339 serialization of timestamps in records.
pub mod rfc3339 {
    pub use time::serde::rfc3339::*;
    pub mod option {
        pub use time::serde::rfc3339::option::*;
    }
}

/// `t` as RFC 3339.
pub fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ids_are_unique_and_recognised() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert!(is_id(&a), "{a}");
        assert!(!is_id("../etc/passwd"));
        assert!(!is_id(&a.to_uppercase()));
    }
}
