//! The characters of a filter or path, read one token at a time: names, keywords,
//! comparison values. The input's length is bounded before it is read.

use super::{CompValue, LimitExceeded, ParseError};
use crate::scim::limits::Limits;

/// The input as characters (positions in errors count characters) and where reading is.
pub(super) struct Scanner {
    pub(super) chars: Vec<char>,
    pub(super) pos: usize,
}

impl Scanner {
    /// Refuses input longer than the server's limit before reading any of it.
    pub(super) fn new(src: &str, limits: &Limits) -> Result<Self, ParseError> {
        let max_len = limits.filter_max_length.min(Limits::HARD_MAX_LENGTH);
        // bytes ≥ characters: the cheap test settles short inputs without counting
        if src.len() > max_len && src.chars().count() > max_len {
            return Err(ParseError {
                pos: max_len,
                message: format!(
                    "longer than the server's limit of {max_len} characters (limits.filter_max_length)"
                ),
                limit: Some(LimitExceeded::Length { max: max_len }),
            });
        }
        Ok(Scanner {
            chars: src.chars().collect(),
            pos: 0,
        })
    }

    pub(super) fn error(&self, message: &str) -> ParseError {
        ParseError {
            pos: self.pos,
            message: message.to_owned(),
            limit: None,
        }
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(super) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_whitespace()) {
            self.pos += 1;
        }
    }

    /// The characters from `start` to `end`, or none when that runs past the input.
    pub(super) fn span(&self, start: usize, end: usize) -> &[char] {
        self.chars.get(start..end).unwrap_or_default()
    }

    pub(super) fn text(&self, start: usize, end: usize) -> String {
        self.span(start, end).iter().collect()
    }

    /// Consumes `word` (case-insensitive) if it stands next, followed by a non-name character.
    pub(super) fn eat_keyword(&mut self, word: &str) -> bool {
        let n = word.chars().count();
        if self.pos + n > self.chars.len() {
            return false;
        }
        let matches_word = self
            .span(self.pos, self.pos + n)
            .iter()
            .zip(word.chars())
            .all(|(a, b)| a.eq_ignore_ascii_case(&b));
        if !matches_word {
            return false;
        }
        match self.chars.get(self.pos + n) {
            Some(c) if is_name_char(*c) => false,
            _ => {
                self.pos += n;
                true
            }
        }
    }

    pub(super) fn word(&mut self) -> String {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if is_name_char(c)) {
            self.pos += 1;
        }
        self.text(start, self.pos)
    }

    pub(super) fn name(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == '$' => self.pos += 1,
            _ => return Err(self.error("expected an attribute name")),
        }
        while matches!(self.peek(), Some(c) if is_name_char(c)) {
            self.pos += 1;
        }
        Ok(self.text(start, self.pos))
    }

    pub(super) fn comp_value(&mut self) -> Result<CompValue, ParseError> {
        match self.peek() {
            Some('"') => {
                let start = self.pos;
                self.pos += 1;
                loop {
                    match self.peek() {
                        None => {
                            self.pos = start;
                            return Err(self.error("unterminated string"));
                        }
                        Some('\\') => self.pos += 2,
                        Some('"') => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) => self.pos += 1,
                    }
                }
                let raw = self.text(start, self.pos);
                serde_json::from_str::<String>(&raw)
                    .map(CompValue::Str)
                    .map_err(|e| ParseError {
                        pos: start,
                        message: format!("invalid string ({e})"),
                        limit: None,
                    })
            }
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_digit() || "+-.eE".contains(c)) {
                    self.pos += 1;
                }
                let raw = self.text(start, self.pos);
                raw.parse::<serde_json::Number>()
                    .map(CompValue::Num)
                    .map_err(|_| ParseError {
                        pos: start,
                        message: format!("invalid number '{raw}'"),
                        limit: None,
                    })
            }
            _ => {
                let start = self.pos;
                let w = self.word();
                match w.to_ascii_lowercase().as_str() {
                    "true" => Ok(CompValue::Bool(true)),
                    "false" => Ok(CompValue::Bool(false)),
                    "null" => Ok(CompValue::Null),
                    _ => {
                        self.pos = start;
                        Err(self.error(
                            "expected a value: a \"quoted string\", a number, true, false or null",
                        ))
                    }
                }
            }
        }
    }
}

pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$'
}
