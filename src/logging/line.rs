//! The text log line without colours, written piece by piece.
//!
//! tracing-subscriber's `Full` format writes each piece of a line (level, span names, target)
//! through `write!` and paints it with an ANSI style even when colours are off: about 2,000
//! instructions a line, and every request logs one. `Line` writes the same bytes with plain
//! string writes (a test compares the two); on a terminal, with colours, `Full` stays.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// `Full`'s line, colourless: `time LEVEL span{fields}:span{fields}: target: fields`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Line<T> {
    pub timer: T,
}

/// The level as `Full` pads it (five wide, right-aligned).
fn level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

impl<S, N, T> FormatEvent<S, N> for Line<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // records from the `log` crate carry their own target
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if self.timer.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        writer.write_char(' ')?;
        writer.write_str(level(meta.level()))?;
        writer.write_char(' ')?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        writer.write_char('{')?;
                        writer.write_str(fields)?;
                        writer.write_char('}')?;
                    }
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    /// A fixed time, so that two formats' lines can be compared.
    #[derive(Clone, Copy)]
    struct Noon;

    impl FormatTime for Noon {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-12-07T12:00:00.000000Z")
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `log` writes through a colourless text layer with format `F`.
    fn lines<F>(format: F, log: impl Fn()) -> String
    where
        F: FormatEvent<tracing_subscriber::Registry, super::super::SafeFields>
            + Send
            + Sync
            + 'static,
    {
        let buf = Buffer::default();
        let out = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .fmt_fields(super::super::SafeFields)
            .event_format(format);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn a_line_is_the_one_the_full_format_writes_without_colours() {
        let log = || {
            tracing::info!(method = "GET", status = 200u16, "request");
            tracing::warn!(target: "audit", record = "{\"op\":\"x\"}", "write");
            let outer = tracing::info_span!("request", request_id = "abc-1");
            let _o = outer.enter();
            tracing::error!(error = %"it broke\nhere", "failed");
            let inner = tracing::debug_span!("step");
            let _i = inner.enter();
            tracing::debug!(n = 3, "inside");
            tracing::trace!("deepest");
        };
        let full = tracing_subscriber::fmt::format()
            .with_timer(Noon)
            .with_ansi(false);
        let theirs = lines(full, log);
        let mine = lines(Line { timer: Noon }, log);
        assert_eq!(mine, theirs);
        // every event came out, through both spans
        assert_eq!(mine.lines().count(), 5, "{mine}");
        assert!(mine.contains("request{request_id=abc-1}:step: "), "{mine}");
    }
}
