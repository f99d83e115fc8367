//! Logging that request values cannot forge. Every field value is written either bare, when
//! it holds only characters that cannot end a line or start another field, or quoted with
//! control characters, quotes and backslashes escaped; messages have their control characters
//! escaped. So one event is one line, and `key=value` pairs in it are the ones the code wrote,
//! whatever a client put in a userName, a path or a PATCH value.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

mod clock;
mod line;
mod sink;
use clock::Clock;
pub use sink::LineSink;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `time LEVEL span: message key=value`, values escaped (see the module comment).
    Text,
    /// One JSON object per line (serde escapes every value), for journald and log shippers.
    Json,
}

impl LogFormat {
    /// `log.format`: "text", "json", or "auto": JSON when standard error goes to the journal
    /// (systemd sets `JOURNAL_STREAM`) rather than a terminal, text otherwise.
    pub fn from_config(name: &str) -> Option<LogFormat> {
        match name {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            "auto" => Some(
                if std::env::var_os("JOURNAL_STREAM").is_some()
                    && !std::io::IsTerminal::is_terminal(&std::io::stderr())
                {
                    LogFormat::Json
                } else {
                    LogFormat::Text
                },
            ),
            _ => None,
        }
    }
}

type FilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// Changes the log level of the running process (on reload).
pub struct LogControl {
    filter: Option<FilterHandle>,
    /// `SCIM2LDAP_LOG` was set: it wins over the config, at start and on reload.
    from_env: bool,
}

impl LogControl {
    /// Sets the level to `level` (an env-filter directive such as "info" or
    /// "info,scim2ldap::directory=debug"), unless `SCIM2LDAP_LOG` fixed it.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        if self.from_env {
            return Ok(());
        }
        let filter = parse_level(level)?;
        match &self.filter {
            Some(h) => h.reload(filter).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// A level directive, checked.
pub fn parse_level(level: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())
}

/// Installs the process-wide subscriber, to standard error: `SCIM2LDAP_LOG` when set, else
/// `level`; text with colours only on a terminal, or JSON.
pub fn init(format: LogFormat, level: &str) -> LogControl {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let from_env = std::env::var("SCIM2LDAP_LOG").is_ok_and(|v| !v.is_empty());
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCIM2LDAP_LOG")
        .ok()
        .or_else(|| parse_level(level).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let sink = LineSink::stderr();
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let text = (format == LogFormat::Text && colours).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(sink.clone())
            .with_timer(Clock)
            .with_ansi(true)
            .fmt_fields(SafeFields)
    });
    // the same line without colours (a service's, to the journal), written piece by piece
    let plain = (format == LogFormat::Text && !colours).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(sink.clone())
            .with_ansi(false)
            .fmt_fields(SafeFields)
            .event_format(line::Line { timer: Clock })
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_timer(Clock)
            .with_writer(sink)
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(plain)
        .with(json)
        .try_init()
        .is_ok();
    LogControl {
        filter: installed.then_some(handle),
        from_env,
    }
}

/// Formats fields as `name=value` with values made safe (see the module comment).
#[derive(Debug, Default, Clone, Copy)]
pub struct SafeFields;

impl<'w> FormatFields<'w> for SafeFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = SafeVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct SafeVisitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl SafeVisitor<'_> {
    fn write(&mut self, field: &Field, text: &str) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        // pieces written as they are: `write!` ran the formatting machinery for each field
        // of each line
        let w = &mut self.writer;
        self.result = if field.name() == "message" {
            w.write_str(sep)
                .and_then(|()| w.write_str(&escape_controls(text)))
        } else {
            w.write_str(sep)
                .and_then(|()| w.write_str(field.name()))
                .and_then(|()| w.write_str("="))
                .and_then(|()| w.write_str(&safe_value(text)))
        };
    }
}

impl Visit for SafeVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here too, formatted with Display: raw text, made safe below.
        // Formatted into this thread's buffer, not a new string per field and line.
        thread_local! {
            static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        TEXT.with(|buf| match buf.try_borrow_mut() {
            Ok(mut text) => {
                text.clear();
                let _ = write!(text, "{value:?}");
                self.write(field, &text);
                // a rare long value does not stay allocated
                if text.capacity() > 4096 {
                    *text = String::new();
                }
            }
            // a value whose Debug logs (re-entered): a string of its own
            Err(_) => self.write(field, &format!("{value:?}")),
        });
    }
}

/// Characters a bare value may hold: none of them can end the line, separate fields or open a
/// quoted string.
fn is_bare(c: char) -> bool {
    match u8::try_from(c) {
        Ok(b) if b.is_ascii() => is_bare_ascii(b),
        _ => c.is_alphanumeric() && !c.is_control(),
    }
}

fn is_bare_ascii(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b':'
                | b'/'
                | b'@'
                | b'+'
                | b','
                | b';'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'('
                | b')'
                | b'*'
                | b'#'
                | b'%'
                | b'&'
                | b'~'
                | b'!'
                | b'?'
                | b'$'
                | b'\''
                | b'<'
                | b'>'
                | b'|'
                | b'^'
        )
}

/// The value as it is when that is unambiguous, else a quoted string with `"`, `\` and every
/// control or line-separating character escaped.
pub fn safe_value(text: &str) -> Cow<'_, str> {
    // every field of every line passes here (an audit record is a long one): ASCII is
    // checked byte by byte, and what needs no escape is copied in runs
    let bare = if text.is_ascii() {
        text.bytes().all(is_bare_ascii)
    } else {
        text.chars().all(is_bare)
    };
    if bare && !text.is_empty() {
        return Cow::Borrowed(text);
    }
    // room for an escape per eight bytes: a JSON audit record quotes every name and value
    let mut out = String::with_capacity(text.len() + text.len() / 8 + 16);
    out.push('"');
    // runs of bytes that need nothing are copied whole; a quote or a backslash gets its
    // backslash and starts the next run; a control or a non-ASCII character is looked at
    let bytes = text.as_bytes();
    let (mut run, mut at) = (0, 0);
    while let Some(&b) = bytes.get(at) {
        match b {
            b'"' | b'\\' => {
                out.push_str(text.get(run..at).unwrap_or_default());
                out.push('\\');
                run = at;
                at += 1;
            }
            0..=0x1f | 0x7f.. => {
                let Some(c) = text.get(at..).and_then(|t| t.chars().next()) else {
                    break; // unreachable: `at` is on a character boundary
                };
                if needs_escape(c) {
                    out.push_str(text.get(run..at).unwrap_or_default());
                    push_escaped(&mut out, c);
                    run = at + c.len_utf8();
                }
                at += c.len_utf8();
            }
            _ => at += 1,
        }
    }
    out.push_str(text.get(run..).unwrap_or_default());
    out.push('"');
    Cow::Owned(out)
}

/// Free text (a message) with every control or line-separating character escaped.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Control characters, the Unicode line and paragraph separators some viewers break on, and
/// the bidirectional overrides that can make a line read differently from its bytes.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// At most `max` characters of `text`, with `…` when cut: for echoing request values in
/// error details without echoing megabytes.
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}…", &text[..cut])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_stay_bare() {
        assert_eq!(safe_value("bjensen@example.com"), "bjensen@example.com");
        assert_eq!(safe_value("/scim/v2/Users"), "/scim/v2/Users");
        assert_eq!(
            safe_value("uid=bjensen,ou=people"),
            "\"uid=bjensen,ou=people\""
        );
    }

    #[test]
    fn a_forged_line_or_field_stays_inside_one_quoted_value() {
        let forged =
            "x\n2026-11-25T00:00:00Z  INFO request{request_id=1}: method=DELETE tenant=globex";
        let v = safe_value(forged);
        assert!(!v.contains('\n'));
        assert!(v.starts_with('"') && v.ends_with('"'));
        assert_eq!(
            v.matches('"').count(),
            2,
            "no quote ends the value early: {v}"
        );
        assert_eq!(safe_value("a\" tenant=\"b"), "\"a\\\" tenant=\\\"b\"");
        assert_eq!(safe_value("a\u{2028}b\rc"), "\"a\\u{2028}b\\rc\"");
        assert_eq!(safe_value(""), "\"\"");
        assert_eq!(escape_controls("one\ntwo"), "one\\ntwo");
        assert_eq!(safe_value("a\u{202e}b"), "\"a\\u{202e}b\"");
    }

    /// `safe_value` as first written, a character at a time: the plain definition.
    fn safe_value_by_char(text: &str) -> String {
        if !text.is_empty() && text.chars().all(is_bare) {
            return text.to_owned();
        }
        let mut out = String::from('"');
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if needs_escape(c) => push_escaped(&mut out, c),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest::proptest! {
        #[test]
        fn safe_value_escapes_as_the_plain_definition_does(
            text in "[ -~\n\r\t\u{0}\u{7f}\u{85}\u{2028}\u{202e}é€]{0,40}"
        ) {
            proptest::prop_assert_eq!(safe_value(&text), safe_value_by_char(&text));
        }
    }

    #[test]
    fn shorten_cuts_on_a_character_boundary() {
        assert_eq!(shorten("ééé", 2), "éé…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
