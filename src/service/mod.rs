//! The provisioning service: SCIM operations carried out against a `Directory` through the
//! mapping and the DN cache. Knows nothing of HTTP; the `http` module calls it.

use std::sync::Arc;

use crate::auth::Tenant;
pub use error::{ServiceError, ServiceResult, RETRY_AFTER_SECS};

pub mod creates;
pub mod cursor;
pub mod error;
pub mod groups;
pub mod journal;
pub mod list;
mod listing;
pub mod memberships;
pub mod recovery;
pub mod repair;
pub mod store;
pub mod users;
pub mod view;
pub mod write;

pub use view::View;

/// Who is asking: the tenant fixes the directory subtree. (How they reach us, the URL, is the
/// HTTP layer's: the service answers views without URLs.)
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub tenant: Arc<Tenant>,
    /// The request's `If-Match` header: writes apply only to this version.
    pub if_match: Option<String>,
}

/// The bare version inside an entity tag: `W/"abc"` → `abc`.
pub fn etag_value(tag: &str) -> &str {
    let t = tag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.trim_matches('"')
}

/// The entity tag for a version (weak: equal versions mean equal resources, not bytes).
pub fn etag(version: &str) -> String {
    ["W/\"", version, "\""].concat()
}

/// A directory's diagnostic text as a client may see it: what it says about the values
/// (schema, syntax, policy), without what it says about the server itself (Samba names its
/// source files: `../../source4/dsdb/…c:1234`), on one line, bounded. The whole text goes to
/// the log.
pub(crate) fn for_clients(text: &str) -> String {
    let internal = |w: &str| {
        let w = w.trim_matches(|c: char| "()[]{},;".contains(c));
        w.contains("../")
            || w.contains("source3/")
            || w.contains("source4/")
            || w.contains("/lib/")
            || [".c:", ".h:", ".c", ".h"]
                .iter()
                .any(|s| w.ends_with(s) && w.contains('/'))
    };
    let kept: Vec<&str> = text.split_whitespace().filter(|w| !internal(w)).collect();
    let one_line = kept.join(" ");
    crate::logging::shorten(&one_line, 300).into_owned()
}

/// LDAP GeneralizedTime → RFC 3339 in whole seconds (SCIM's `meta.created`/`lastModified`),
/// as the directories write it (`20261124203607Z`, AD's `20261124203607.0Z`): UTC, seconds,
/// maybe a fraction (dropped). Read by position, the date checked by `time`'s constructors:
/// `time`'s format-description parser was 2% of a GET, for two fixed-width timestamps.
pub fn generalized_to_rfc3339(g: &str) -> Option<String> {
    let b = g.as_bytes();
    let (digits, rest) = b.split_at_checked(14)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let fraction_ok = match rest {
        [b'Z'] => true,
        [b'.', fraction @ .., b'Z'] => {
            !fraction.is_empty() && fraction.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    if !fraction_ok {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u16> {
        digits
            .get(range)?
            .iter()
            .try_fold(0u16, |n, d| Some(n * 10 + u16::from(d - b'0')))
    };
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let day = u8::try_from(num(6..8)?).ok()?;
    time::Date::from_calendar_date(i32::from(num(0..4)?), month, day).ok()?;
    let [h, m, s] = [num(8..10)?, num(10..12)?, num(12..14)?].map(|n| u8::try_from(n).ok());
    time::Time::from_hms(h?, m?, s?).ok()?;
    // "YYYY-MM-DDTHH:MM:SSZ", the digits copied into place
    let mut out = *b"0000-00-00T00:00:00Z";
    for (to, from) in [
        (0..4, 0..4),
        (5..7, 4..6),
        (8..10, 6..8),
        (11..13, 8..10),
        (14..16, 10..12),
        (17..19, 12..14),
    ] {
        out.get_mut(to)?.copy_from_slice(digits.get(from)?);
    }
    String::from_utf8(out.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_ldap_timestamps() {
        assert_eq!(
            generalized_to_rfc3339("20261124203607Z").as_deref(),
            Some("2026-11-24T20:36:07Z")
        );
        assert_eq!(
            generalized_to_rfc3339("20261124203607.123456Z").as_deref(),
            Some("2026-11-24T20:36:07Z")
        );
        assert_eq!(generalized_to_rfc3339("2026"), None);
    }

    #[test]
    fn converts_ad_timestamps_and_refuses_impossible_dates() {
        assert_eq!(
            generalized_to_rfc3339("20261124203607.0Z").as_deref(),
            Some("2026-11-24T20:36:07Z")
        );
        assert_eq!(generalized_to_rfc3339("20261324203607Z"), None);
        assert_eq!(generalized_to_rfc3339("20261124203607"), None);
    }

    /// The conversion before it was written by position: `time`'s parser and formatter.
    fn by_time_crate(g: &str) -> Option<String> {
        const GENERALIZED_TIME: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
            "[year][month][day][hour][minute][second][optional [.[subsecond]]]Z"
        );
        let t = time::PrimitiveDateTime::parse(g, GENERALIZED_TIME).ok()?;
        t.replace_nanosecond(0)
            .ok()?
            .assume_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    }

    proptest::proptest! {
        #[test]
        fn reading_by_position_agrees_with_the_time_crate(
            g in "[0-9]{12,16}(\\.[0-9]{0,10})?Z?|20[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])([01][0-9]|2[0-4])[0-6][0-9][0-6][0-9](\\.[0-9]{1,10})?Z"
        ) {
            proptest::prop_assert_eq!(generalized_to_rfc3339(&g), by_time_crate(&g), "{}", g);
        }
    }

    #[test]
    fn impossible_days_and_times_and_odd_text_are_refused() {
        for g in [
            "20250229000000Z",
            "20261131000000Z",
            "20261124240000Z",
            "20261124236000Z",
            "20261124203660Z",
            "20261124203607.Z",
            "2026112420360ZZ",
            "20261124203607Zx",
            "+0261124203607Z",
            "２0261124203607Z",
        ] {
            assert_eq!(generalized_to_rfc3339(g), None, "{g}");
            assert_eq!(by_time_crate(g), None, "{g}");
        }
        assert_eq!(
            generalized_to_rfc3339("20240229235959Z").as_deref(),
            Some("2024-02-29T23:59:59Z")
        );
        assert_eq!(
            generalized_to_rfc3339("20261124203607.1234567890Z").as_deref(),
            Some("2026-11-24T20:36:07Z"),
            "a fraction of any length, as time's parser reads it"
        );
    }
}
