//! The time at the start of every log line, as tracing-subscriber's default timer writes it
//! (RFC 3339, UTC, microseconds: `2026-12-07T16:30:01.123456Z`), with the date and the time
//! to the second formatted once per second per thread instead of for every line: callgrind
//! put the civil-date arithmetic at an eighth of a request's log line.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

#[derive(Debug, Clone, Copy, Default)]
pub struct Clock;

impl FormatTime for Clock {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        write_time(w, now.as_secs(), now.subsec_micros())
    }
}

thread_local! {
    /// The second last formatted on this thread, and its text up to the seconds.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

fn write_time(w: &mut impl fmt::Write, secs: u64, micros: u32) -> fmt::Result {
    SECOND.with(|cached| {
        match cached.try_borrow_mut() {
            Ok(mut cached) => {
                if cached.0 != secs {
                    cached.0 = u64::MAX;
                    cached.1.clear();
                    to_the_second(&mut cached.1, secs)?;
                    cached.0 = secs;
                }
                w.write_str(&cached.1)?;
            }
            // re-entered (a line logged while this one is timed): no cache for this one
            Err(_) => {
                let mut text = String::new();
                to_the_second(&mut text, secs)?;
                w.write_str(&text)?;
            }
        }
        write!(w, ".{micros:06}Z")
    })
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time.
fn to_the_second(out: &mut String, secs: u64) -> fmt::Result {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u32) -> String {
        let mut s = String::new();
        write_time(&mut s, secs, micros).unwrap();
        s
    }

    #[test]
    fn times_are_rfc3339_utc_with_microseconds() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_796_661_001, 123_456), "2026-12-07T16:30:01.123456Z");
        // 2024 was a leap year
        assert_eq!(at(1_709_208_000, 7), "2024-02-29T12:00:00.000007Z");
    }

    #[test]
    fn the_cached_second_changes_with_the_time() {
        assert_eq!(at(1_796_661_001, 1), "2026-12-07T16:30:01.000001Z");
        assert_eq!(at(1_796_661_001, 999_999), "2026-12-07T16:30:01.999999Z");
        assert_eq!(at(1_796_661_002, 0), "2026-12-07T16:30:02.000000Z");
        assert_eq!(at(1_796_661_001, 5), "2026-12-07T16:30:01.000005Z");
    }

    #[test]
    fn the_time_is_the_default_timers_to_the_second() {
        use tracing_subscriber::fmt::time::SystemTime as Default;
        // the two clocks are read a moment apart: a second that turns between them is retried
        for _ in 0..3 {
            let (mut ours, mut theirs) = (String::new(), String::new());
            Clock.format_time(&mut Writer::new(&mut ours)).unwrap();
            Default.format_time(&mut Writer::new(&mut theirs)).unwrap();
            if ours.get(..19) == theirs.get(..19) {
                assert_eq!(ours.len(), theirs.len(), "{ours} vs {theirs}");
                return;
            }
        }
        panic!("the two timers disagree to the second three times");
    }
}
