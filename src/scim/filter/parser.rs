//! A recursive-descent parser for filters and PATCH paths, whose recursion is bounded by
//! the filter depth limit and whose work by the input length and the term limit.

use super::lexer::Scanner;
use super::{AttrPath, CompareOp, Filter, LimitExceeded, ParseError, PatchPath};
use crate::scim::limits::Limits;

/// Parses a filter within the default limits (for trusted text such as the admin's config).
pub fn parse_filter(input: &str) -> Result<Filter, ParseError> {
    parse_filter_with(input, &Limits::default())
}

/// Parses a filter from a request: its length, nesting and number of terms are bounded by
/// `limits`, checked before or while parsing, so no input can exhaust the stack or the CPU.
pub fn parse_filter_with(input: &str, limits: &Limits) -> Result<Filter, ParseError> {
    let mut p = Parser::new(input, limits)?;
    p.s.skip_ws();
    let f = p.or_expr(false)?;
    p.s.skip_ws();
    if !p.s.at_end() {
        return Err(p.s.error("unexpected text after the end of the filter"));
    }
    Ok(f)
}

pub fn parse_attr_path(input: &str) -> Result<AttrPath, ParseError> {
    let mut p = Parser::new(input.trim(), &Limits::default())?;
    let a = p.attr_path()?;
    if !p.s.at_end() {
        return Err(p.s.error("unexpected text after the attribute path"));
    }
    Ok(a)
}

pub fn parse_patch_path(input: &str) -> Result<PatchPath, ParseError> {
    parse_patch_path_with(input, &Limits::default())
}

/// A PATCH path from a request, bounded like a filter.
pub fn parse_patch_path_with(input: &str, limits: &Limits) -> Result<PatchPath, ParseError> {
    let mut p = Parser::new(input.trim(), limits)?;
    let attr = p.attr_path()?;
    let mut path = PatchPath {
        attr,
        filter: None,
        sub_after_filter: None,
    };
    if p.s.eat('[') {
        if path.attr.sub.is_some() {
            return Err(p
                .s
                .error("a value filter must follow the attribute, not a sub-attribute"));
        }
        p.enter()?;
        p.s.skip_ws();
        path.filter = Some(p.or_expr(true)?);
        p.s.skip_ws();
        if !p.s.eat(']') {
            return Err(p.s.error("expected ']' to close the value filter"));
        }
        p.leave();
        if p.s.eat('.') {
            path.sub_after_filter = Some(p.s.name()?);
        }
    }
    if !p.s.at_end() {
        return Err(p.s.error("unexpected text after the path"));
    }
    Ok(path)
}

/// A recursive-descent parser whose recursion is bounded by `max_depth` (each nesting level
/// costs a few frames) and whose work is bounded by the input length and `max_terms`.
struct Parser {
    s: Scanner,
    depth: usize,
    terms: usize,
    max_depth: usize,
    max_terms: usize,
}

impl Parser {
    fn new(src: &str, limits: &Limits) -> Result<Self, ParseError> {
        Ok(Parser {
            s: Scanner::new(src, limits)?,
            depth: 0,
            terms: 0,
            max_depth: limits.filter_max_depth.min(Limits::HARD_MAX_DEPTH),
            max_terms: limits.filter_max_terms.min(Limits::HARD_MAX_TERMS),
        })
    }

    /// One level deeper: `(`, `not (` or `[`.
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(ParseError {
                pos: self.s.pos,
                message: format!(
                    "nested deeper than the server's limit of {} levels of parentheses, not and value filters (limits.filter_max_depth)",
                    self.max_depth
                ),
                limit: Some(LimitExceeded::Depth {
                    max: self.max_depth,
                }),
            });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// One more comparison or presence test.
    fn count_term(&mut self) -> Result<(), ParseError> {
        self.terms += 1;
        if self.terms > self.max_terms {
            return Err(ParseError {
                pos: self.s.pos,
                message: format!(
                    "more than the server's limit of {} comparisons in one filter (limits.filter_max_terms)",
                    self.max_terms
                ),
                limit: Some(LimitExceeded::Terms {
                    max: self.max_terms,
                }),
            });
        }
        Ok(())
    }

    /// `and_expr ("or" and_expr)*`, collected into one `Or` node.
    fn or_expr(&mut self, in_brackets: bool) -> Result<Filter, ParseError> {
        let mut parts = vec![self.and_expr(in_brackets)?];
        loop {
            let save = self.s.pos;
            self.s.skip_ws();
            if self.s.pos > save && self.s.eat_keyword("or") {
                self.require_ws("'or'")?;
                parts.push(self.and_expr(in_brackets)?);
            } else {
                self.s.pos = save;
                return Ok(one_or(parts, Filter::Or));
            }
        }
    }

    fn and_expr(&mut self, in_brackets: bool) -> Result<Filter, ParseError> {
        let mut parts = vec![self.unary(in_brackets)?];
        loop {
            let save = self.s.pos;
            self.s.skip_ws();
            if self.s.pos > save && self.s.eat_keyword("and") {
                self.require_ws("'and'")?;
                parts.push(self.unary(in_brackets)?);
            } else {
                self.s.pos = save;
                return Ok(one_or(parts, Filter::And));
            }
        }
    }

    fn require_ws(&mut self, after: &str) -> Result<(), ParseError> {
        let save = self.s.pos;
        self.s.skip_ws();
        if self.s.pos == save {
            return Err(self.s.error(&format!("expected a space after {after}")));
        }
        Ok(())
    }

    fn unary(&mut self, in_brackets: bool) -> Result<Filter, ParseError> {
        let save = self.s.pos;
        if self.s.eat_keyword("not") {
            self.s.skip_ws();
            if !self.s.eat('(') {
                return Err(self.s.error("expected '(' after 'not'"));
            }
            let inner = self.grouped(in_brackets)?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        self.s.pos = save;
        if self.s.eat('(') {
            return self.grouped(in_brackets);
        }
        self.attr_expr(in_brackets)
    }

    fn grouped(&mut self, in_brackets: bool) -> Result<Filter, ParseError> {
        self.enter()?;
        self.s.skip_ws();
        let inner = self.or_expr(in_brackets)?;
        self.s.skip_ws();
        if !self.s.eat(')') {
            return Err(self.s.error("expected ')'"));
        }
        self.leave();
        Ok(inner)
    }

    fn attr_expr(&mut self, in_brackets: bool) -> Result<Filter, ParseError> {
        if self.s.at_end() {
            return Err(self
                .s
                .error("expected an attribute name, found the end of the filter"));
        }
        self.count_term()?;
        let path = self.attr_path()?;
        if self.s.peek() == Some('[') {
            if in_brackets {
                return Err(self.s.error("value filters cannot be nested"));
            }
            if path.sub.is_some() {
                return Err(self
                    .s
                    .error("a value filter must follow the attribute, not a sub-attribute"));
            }
            self.s.pos += 1;
            self.enter()?;
            self.s.skip_ws();
            let inner = self.or_expr(true)?;
            self.s.skip_ws();
            if !self.s.eat(']') {
                return Err(self.s.error("expected ']' to close the value filter"));
            }
            self.leave();
            // Entra sends `emails[type eq "work"].value eq "x"`, outside RFC 7644's grammar:
            // read as `emails[type eq "work" and value eq "x"]`, which means the same
            if !in_brackets && self.s.eat('.') {
                self.count_term()?;
                let sub = AttrPath {
                    urn: None,
                    name: self.s.name()?,
                    sub: None,
                };
                let cmp = self.comparison(sub)?;
                let both = match inner {
                    Filter::And(mut terms) => {
                        terms.push(cmp);
                        Filter::And(terms)
                    }
                    other => Filter::And(vec![other, cmp]),
                };
                return Ok(Filter::ValuePath(path, Box::new(both)));
            }
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        self.comparison(path)
    }

    /// `SP compareOp SP compValue` or `SP "pr"` after `path`.
    fn comparison(&mut self, path: AttrPath) -> Result<Filter, ParseError> {
        self.require_ws(&format!("attribute '{path}'"))?;
        let op_start = self.s.pos;
        let word = self.s.word();
        if word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::parse(&word) else {
            self.s.pos = op_start;
            return Err(self.s.error(&format!(
                "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after '{path}', found '{word}'"
            )));
        };
        self.require_ws(&format!("operator '{word}'"))?;
        let value = self.s.comp_value()?;
        Ok(Filter::Compare(path, op, value))
    }

    fn attr_path(&mut self) -> Result<AttrPath, ParseError> {
        let start = self.s.pos;
        let is_urn = self.s.text(start, start + 4).eq_ignore_ascii_case("urn:");
        if is_urn {
            // The URN runs up to the last ':' before the attribute name; URNs contain dots
            // ("2.0"), so only the text after that colon is split on '.'.
            let mut end = start;
            while matches!(self.s.chars.get(end), Some(c) if !c.is_whitespace() && !"[]()".contains(*c))
            {
                end += 1;
            }
            let token = self.s.text(start, end);
            let Some(colon) = token.rfind(':') else {
                return Err(self
                    .s
                    .error("expected an attribute name after the schema URN"));
            };
            let (urn, _) = token.split_at(colon);
            let urn = urn.to_owned();
            self.s.pos = start + urn.chars().count() + 1;
            let name = self.s.name()?;
            let sub = if self.s.eat('.') {
                Some(self.s.name()?)
            } else {
                None
            };
            return Ok(AttrPath {
                urn: Some(urn),
                name,
                sub,
            });
        }
        let name = self.s.name()?;
        let sub = if self.s.eat('.') {
            Some(self.s.name()?)
        } else {
            None
        };
        Ok(AttrPath {
            urn: None,
            name,
            sub,
        })
    }
}

/// A chain of one is its only member; longer chains become one n-ary node.
fn one_or(mut parts: Vec<Filter>, node: fn(Vec<Filter>) -> Filter) -> Filter {
    if parts.len() == 1 {
        if let Some(only) = parts.pop() {
            return only;
        }
    }
    node(parts)
}
