//! SCIM filter expressions (RFC 7644 §3.4.2.2) and attribute paths: parsing into an AST and
//! evaluation against JSON values. Translation to LDAP lives in `mapping`, not here.

use std::fmt;

use serde_json::Value;

use super::limits::Limits;

/// `[urn ":"] name ["." sub]`, as written (not yet resolved against a schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }
}

/// A comparison value: `false / null / true / number / string`.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
}

impl CompValue {
    /// The value as an LDAP assertion string, where one exists.
    pub fn as_text(&self) -> Option<String> {
        match self {
            CompValue::Str(s) => Some(s.clone()),
            CompValue::Num(n) => Some(n.to_string()),
            CompValue::Bool(b) => Some(if *b { "TRUE" } else { "FALSE" }.to_owned()),
            CompValue::Null => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `a and b and …`: a chain is one node, so its length never becomes tree depth.
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, CompValue),
    /// `attr[filter]`: some value of multi-valued `attr` matches the inner filter, whose paths
    /// name sub-attributes.
    ValuePath(AttrPath, Box<Filter>),
}

/// A PATCH path (RFC 7644 §3.5.2): `attrPath` or `valuePath [ "." subAttr ]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// Sub-attribute after a value filter (`emails[type eq "work"].value`).
    pub sub_after_filter: Option<String>,
}

/// Which of the server's limits an input went past (its configured value in `max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    Length { max: usize },
    Depth { max: usize },
    Terms { max: usize },
}

/// Where and why parsing failed; `pos` counts characters from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
    /// Set when the input was refused for its size rather than its syntax.
    pub limit: Option<LimitExceeded>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            Some(_) => f.write_str(&self.message),
            None => write!(f, "{} at character {}", self.message, self.pos + 1),
        }
    }
}

/// Parses a filter within the default limits (for trusted text such as the admin's config).
pub fn parse_filter(input: &str) -> Result<Filter, ParseError> {
    parse_filter_with(input, &Limits::default())
}

/// Parses a filter from a request: its length, nesting and number of terms are bounded by
/// `limits`, checked before or while parsing, so no input can exhaust the stack or the CPU.
pub fn parse_filter_with(input: &str, limits: &Limits) -> Result<Filter, ParseError> {
    let mut p = Parser::new(input, limits)?;
    p.skip_ws();
    let f = p.or_expr(false)?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error("unexpected text after the end of the filter"));
    }
    Ok(f)
}

pub fn parse_attr_path(input: &str) -> Result<AttrPath, ParseError> {
    let mut p = Parser::new(input.trim(), &Limits::default())?;
    let a = p.attr_path()?;
    if !p.at_end() {
        return Err(p.error("unexpected text after the attribute path"));
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
    if p.eat('[') {
        if path.attr.sub.is_some() {
            return Err(p.error("a value filter must follow the attribute, not a sub-attribute"));
        }
        p.enter()?;
        p.skip_ws();
        path.filter = Some(p.or_expr(true)?);
        p.skip_ws();
        if !p.eat(']') {
            return Err(p.error("expected ']' to close the value filter"));
        }
        p.leave();
        if p.eat('.') {
            path.sub_after_filter = Some(p.name()?);
        }
    }
    if !p.at_end() {
        return Err(p.error("unexpected text after the path"));
    }
    Ok(path)
}

/// A recursive-descent parser whose recursion is bounded by `max_depth` (each nesting level
/// costs a few frames) and whose work is bounded by the input length and `max_terms`.
struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    terms: usize,
    max_depth: usize,
    max_terms: usize,
}

impl Parser {
    fn new(src: &str, limits: &Limits) -> Result<Self, ParseError> {
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
        Ok(Parser {
            chars: src.chars().collect(),
            pos: 0,
            depth: 0,
            terms: 0,
            max_depth: limits.filter_max_depth.min(Limits::HARD_MAX_DEPTH),
            max_terms: limits.filter_max_terms.min(Limits::HARD_MAX_TERMS),
        })
    }

    fn error(&self, message: &str) -> ParseError {
        ParseError {
            pos: self.pos,
            message: message.to_owned(),
            limit: None,
        }
    }

    /// One level deeper: `(`, `not (` or `[`.
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(ParseError {
                pos: self.pos,
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
                pos: self.pos,
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

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_whitespace()) {
            self.pos += 1;
        }
    }

    /// Consumes `word` (case-insensitive) if it stands next, followed by a non-name character.
    /// The characters from `start` to `end`, or none when that runs past the input.
    fn span(&self, start: usize, end: usize) -> &[char] {
        self.chars.get(start..end).unwrap_or_default()
    }

    fn text(&self, start: usize, end: usize) -> String {
        self.span(start, end).iter().collect()
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
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

    /// `and_expr ("or" and_expr)*`, collected into one `Or` node.
    fn or_expr(&mut self, in_brackets: bool) -> Result<Filter, ParseError> {
        let mut parts = vec![self.and_expr(in_brackets)?];
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.pos > save && self.eat_keyword("or") {
                self.require_ws("'or'")?;
                parts.push(self.and_expr(in_brackets)?);
            } else {
                self.pos = save;
                return Ok(one_or(parts, Filter::Or));
            }
        }
    }

    fn and_expr(&mut self, in_brackets: bool) -> Result<Filter, ParseError> {
        let mut parts = vec![self.unary(in_brackets)?];
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.pos > save && self.eat_keyword("and") {
                self.require_ws("'and'")?;
                parts.push(self.unary(in_brackets)?);
            } else {
                self.pos = save;
                return Ok(one_or(parts, Filter::And));
            }
        }
    }

    fn require_ws(&mut self, after: &str) -> Result<(), ParseError> {
        let save = self.pos;
        self.skip_ws();
        if self.pos == save {
            return Err(self.error(&format!("expected a space after {after}")));
        }
        Ok(())
    }

    fn unary(&mut self, in_brackets: bool) -> Result<Filter, ParseError> {
        let save = self.pos;
        if self.eat_keyword("not") {
            self.skip_ws();
            if !self.eat('(') {
                return Err(self.error("expected '(' after 'not'"));
            }
            let inner = self.grouped(in_brackets)?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        self.pos = save;
        if self.eat('(') {
            return self.grouped(in_brackets);
        }
        self.attr_expr(in_brackets)
    }

    fn grouped(&mut self, in_brackets: bool) -> Result<Filter, ParseError> {
        self.enter()?;
        self.skip_ws();
        let inner = self.or_expr(in_brackets)?;
        self.skip_ws();
        if !self.eat(')') {
            return Err(self.error("expected ')'"));
        }
        self.leave();
        Ok(inner)
    }

    fn attr_expr(&mut self, in_brackets: bool) -> Result<Filter, ParseError> {
        if self.at_end() {
            return Err(self.error("expected an attribute name, found the end of the filter"));
        }
        self.count_term()?;
        let path = self.attr_path()?;
        if self.peek() == Some('[') {
            if in_brackets {
                return Err(self.error("value filters cannot be nested"));
            }
            if path.sub.is_some() {
                return Err(
                    self.error("a value filter must follow the attribute, not a sub-attribute")
                );
            }
            self.pos += 1;
            self.enter()?;
            self.skip_ws();
            let inner = self.or_expr(true)?;
            self.skip_ws();
            if !self.eat(']') {
                return Err(self.error("expected ']' to close the value filter"));
            }
            self.leave();
            // Entra sends `emails[type eq "work"].value eq "x"`, outside RFC 7644's grammar:
            // read as `emails[type eq "work" and value eq "x"]`, which means the same
            if !in_brackets && self.eat('.') {
                self.count_term()?;
                let sub = AttrPath {
                    urn: None,
                    name: self.name()?,
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
        let op_start = self.pos;
        let word = self.word();
        if word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::parse(&word) else {
            self.pos = op_start;
            return Err(self.error(&format!(
                "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after '{path}', found '{word}'"
            )));
        };
        self.require_ws(&format!("operator '{word}'"))?;
        let value = self.comp_value()?;
        Ok(Filter::Compare(path, op, value))
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if is_name_char(c)) {
            self.pos += 1;
        }
        self.text(start, self.pos)
    }

    fn name(&mut self) -> Result<String, ParseError> {
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

    fn attr_path(&mut self) -> Result<AttrPath, ParseError> {
        let start = self.pos;
        let is_urn = self.text(start, start + 4).eq_ignore_ascii_case("urn:");
        if is_urn {
            // The URN runs up to the last ':' before the attribute name; URNs contain dots
            // ("2.0"), so only the text after that colon is split on '.'.
            let mut end = start;
            while matches!(self.chars.get(end), Some(c) if !c.is_whitespace() && !"[]()".contains(*c))
            {
                end += 1;
            }
            let token = self.text(start, end);
            let Some(colon) = token.rfind(':') else {
                return Err(self.error("expected an attribute name after the schema URN"));
            };
            let (urn, _) = token.split_at(colon);
            let urn = urn.to_owned();
            self.pos = start + urn.chars().count() + 1;
            let name = self.name()?;
            let sub = if self.eat('.') {
                Some(self.name()?)
            } else {
                None
            };
            return Ok(AttrPath {
                urn: Some(urn),
                name,
                sub,
            });
        }
        let name = self.name()?;
        let sub = if self.eat('.') {
            Some(self.name()?)
        } else {
            None
        };
        Ok(AttrPath {
            urn: None,
            name,
            sub,
        })
    }

    fn comp_value(&mut self) -> Result<CompValue, ParseError> {
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

/// The attribute paths a filter names at its top level (inside `attr[…]` the paths are
/// sub-attributes of `attr`, which is the one listed).
pub fn top_paths(f: &Filter) -> Vec<&AttrPath> {
    match f {
        Filter::And(parts) | Filter::Or(parts) => parts.iter().flat_map(top_paths).collect(),
        Filter::Not(inner) => top_paths(inner),
        Filter::Present(p) | Filter::Compare(p, _, _) | Filter::ValuePath(p, _) => vec![p],
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

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$'
}

/// Evaluates `filter` against one JSON object (a resource, or one value of a multi-valued
/// attribute inside a value filter). `case_exact` tells, for a path, whether strings compare
/// case-sensitively.
pub fn matches(filter: &Filter, obj: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
    match filter {
        // recursion depth is the filter's nesting, bounded by the parser
        Filter::And(parts) => parts.iter().all(|f| matches(f, obj, case_exact)),
        Filter::Or(parts) => parts.iter().any(|f| matches(f, obj, case_exact)),
        Filter::Not(a) => !matches(a, obj, case_exact),
        Filter::Present(p) => values_at(obj, p)
            .into_iter()
            .map(comparable)
            .any(|v| match v {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            }),
        Filter::Compare(p, op, cv) => {
            let exact = case_exact(p);
            let vals: Vec<&Value> = values_at(obj, p).into_iter().map(comparable).collect();
            if *op == CompareOp::Ne {
                return !vals.iter().any(|v| compare(v, CompareOp::Eq, cv, exact));
            }
            vals.iter().any(|v| compare(v, *op, cv, exact))
        }
        Filter::ValuePath(p, inner) => values_at(obj, p).iter().any(|v| {
            let nested = |sp: &AttrPath| {
                case_exact(&AttrPath {
                    urn: p.urn.clone(),
                    name: p.name.clone(),
                    sub: Some(sp.name.clone()),
                })
            };
            matches(inner, v, &nested)
        }),
    }
}

/// The value `sortBy` orders by (RFC 7644 §3.4.2.3): the attribute's value, or for a
/// multi-valued attribute the primary (else first) value's `value`.
pub fn sort_value<'v>(obj: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let vals = values_at(obj, path);
    let first = vals
        .iter()
        .find(|v| v.get("primary") == Some(&Value::Bool(true)))
        .or(vals.first())
        .copied()?;
    match first {
        Value::Object(m) if path.sub.is_none() => m.get("value"),
        other => Some(other),
    }
}

/// Orders two resources by `path` for `sortBy`. A resource without a value orders after
/// every value (RFC 7644 §3.4.2.3: last when ascending, first when descending), as LDAP's
/// server-side sort does.
pub fn compare_for_sort(
    a: &Value,
    b: &Value,
    path: &AttrPath,
    case_exact: bool,
) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let key = |v: &Value| -> Option<Value> {
        sort_value(v, path).map(|x| match x {
            Value::String(s) if !case_exact => Value::String(s.to_lowercase()),
            other => other.clone(),
        })
    };
    match (key(a), key(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(&y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(&y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        _ => Ordering::Equal,
    }
}

/// A complex value compares through its `value` sub-attribute (`emails co "x"` means
/// `emails.value co "x"`, RFC 7644 §3.4.2.2).
fn comparable(v: &Value) -> &Value {
    match v {
        Value::Object(m) => m.get("value").unwrap_or(v),
        other => other,
    }
}

/// Every value found at `path` in `obj`, flattening multi-valued attributes.
fn values_at<'v>(obj: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let Some(map) = obj.as_object() else {
        return Vec::new();
    };
    let container = match &path.urn {
        Some(urn) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(urn))
            .map(|(_, v)| v)
            .and_then(Value::as_object)
            .or_else(|| {
                // core-schema URN: the attributes sit at the top level
                urn.to_ascii_lowercase()
                    .starts_with("urn:ietf:params:scim:schemas:core:")
                    .then_some(map)
            }),
        None => Some(map),
    };
    let Some(container) = container else {
        return Vec::new();
    };
    let Some(v) = get_ci(container, &path.name) else {
        return Vec::new();
    };
    let top: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        None => top,
        Some(sub) => top
            .into_iter()
            .filter_map(|t| t.as_object().and_then(|m| get_ci(m, sub)))
            .flat_map(|v| match v {
                Value::Array(a) => a.iter().collect::<Vec<_>>(),
                other => vec![other],
            })
            .collect(),
    }
}

pub fn get_ci<'m>(map: &'m serde_json::Map<String, Value>, key: &str) -> Option<&'m Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn compare(v: &Value, op: CompareOp, cv: &CompValue, case_exact: bool) -> bool {
    use CompareOp::*;
    match (v, cv) {
        (Value::String(s), CompValue::Str(c)) => {
            let (s, c) = if case_exact {
                (s.clone(), c.clone())
            } else {
                (s.to_lowercase(), c.to_lowercase())
            };
            match op {
                Eq => s == c,
                Ne => s != c,
                Co => s.contains(&c),
                Sw => s.starts_with(&c),
                Ew => s.ends_with(&c),
                Gt => s > c,
                Ge => s >= c,
                Lt => s < c,
                Le => s <= c,
            }
        }
        (Value::Bool(b), CompValue::Bool(c)) => match op {
            Eq => b == c,
            Ne => b != c,
            _ => false,
        },
        (Value::Number(n), CompValue::Num(c)) => {
            let (Some(a), Some(b)) = (n.as_f64(), c.as_f64()) else {
                return false;
            };
            match op {
                Eq => a == b,
                Ne => a != b,
                Gt => a > b,
                Ge => a >= b,
                Lt => a < b,
                Le => a <= b,
                Co | Sw | Ew => false,
            }
        }
        (Value::Null, CompValue::Null) => op == Eq,
        _ => op == Ne,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(name: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: None,
        }
    }

    fn s(v: &str) -> CompValue {
        CompValue::Str(v.into())
    }

    #[test]
    fn parses_simple_equality() {
        assert_eq!(
            parse_filter(r#"userName eq "bjensen""#).unwrap(),
            Filter::Compare(p("userName"), CompareOp::Eq, s("bjensen"))
        );
    }

    #[test]
    fn entras_sub_attribute_after_a_value_filter_means_one_more_condition_on_the_value() {
        assert_eq!(
            parse_filter(r#"emails[type eq "work"].value eq "a@example.org""#).unwrap(),
            parse_filter(r#"emails[type eq "work" and value eq "a@example.org"]"#).unwrap()
        );
        assert_eq!(
            parse_filter(r#"emails[type eq "work" or primary eq true].value pr"#).unwrap(),
            Filter::ValuePath(
                p("emails"),
                Box::new(Filter::And(vec![
                    Filter::Or(vec![
                        Filter::Compare(p("type"), CompareOp::Eq, s("work")),
                        Filter::Compare(p("primary"), CompareOp::Eq, CompValue::Bool(true)),
                    ]),
                    Filter::Present(p("value")),
                ]))
            )
        );
        assert!(parse_filter(r#"emails[type eq "work"].value"#).is_err());
        assert!(parse_filter(r#"emails[type eq "work"]. eq "x""#).is_err());
    }

    #[test]
    fn operators_and_keywords_are_case_insensitive() {
        let f = parse_filter(r#"userName EQ "a" OR title Pr"#).unwrap();
        assert_eq!(
            f,
            Filter::Or(vec![
                Filter::Compare(p("userName"), CompareOp::Eq, s("a")),
                Filter::Present(p("title"))
            ])
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let f = parse_filter(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap();
        let Filter::Or(parts) = f else {
            panic!("expected or at the top: {f:?}")
        };
        assert!(matches!(&parts[1], Filter::And(ands) if ands.len() == 2));
    }

    #[test]
    fn parentheses_and_not_group() {
        let f = parse_filter(r#"not (a eq "1" or b eq "2") and (c pr)"#).unwrap();
        let Filter::And(parts) = f else {
            panic!("expected and at the top")
        };
        assert!(matches!(parts[0], Filter::Not(_)));
        assert_eq!(parts[1], Filter::Present(p("c")));
    }

    #[test]
    fn parses_sub_attribute_and_urn_qualified_names() {
        let f = parse_filter(r#"name.familyName co "O'Malley""#).unwrap();
        assert_eq!(
            f,
            Filter::Compare(
                AttrPath {
                    urn: None,
                    name: "name".into(),
                    sub: Some("familyName".into())
                },
                CompareOp::Co,
                s("O'Malley")
            )
        );
        let f = parse_filter(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "42""#,
        )
        .unwrap();
        let Filter::Compare(path, _, _) = f else {
            panic!()
        };
        assert_eq!(
            path.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(path.name, "employeeNumber");
        let path = parse_attr_path(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        )
        .unwrap();
        assert_eq!(
            (path.name.as_str(), path.sub.as_deref()),
            ("manager", Some("value"))
        );
    }

    #[test]
    fn parses_value_path_with_logical_inner_filter() {
        let f = parse_filter(r#"emails[type eq "work" and value co "@example.com"]"#).unwrap();
        let Filter::ValuePath(path, inner) = f else {
            panic!()
        };
        assert_eq!(path, p("emails"));
        assert!(matches!(*inner, Filter::And(_)));
    }

    #[test]
    fn parses_literals() {
        assert_eq!(
            parse_filter("active eq true").unwrap(),
            Filter::Compare(p("active"), CompareOp::Eq, CompValue::Bool(true))
        );
        assert_eq!(
            parse_filter("x gt 4.5").unwrap(),
            Filter::Compare(
                p("x"),
                CompareOp::Gt,
                CompValue::Num("4.5".parse().unwrap())
            )
        );
        assert_eq!(
            parse_filter(r#"x eq "a \"quoted\" \u00e9""#).unwrap(),
            Filter::Compare(p("x"), CompareOp::Eq, s("a \"quoted\" é"))
        );
    }

    #[test]
    fn malformed_filters_report_the_position() {
        for (input, pos) in [
            (r#"userName eq"#, 11),
            (r#"userName xx "a""#, 9),
            (r#"userName eq "unterminated"#, 12),
            (r#"(userName eq "a""#, 16),
            (r#"userName eq "a" junk"#, 16),
            (r#"userName eq bare"#, 12),
            ("", 0),
        ] {
            let err = parse_filter(input).unwrap_err();
            assert_eq!(err.pos, pos, "{input}: {err}");
        }
    }

    /// Every example filter of RFC 7644 §3.4.2.2 parses, and evaluates as the RFC means.
    #[test]
    fn rfc_7644_example_filters() {
        let user = serde_json::json!({
            "userName": "John", "title": "Tour Guide", "userType": "Employee",
            "name": {"familyName": "O'Malley"},
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "emails": [{"type": "work", "value": "john@example.com"}],
            "meta": {"lastModified": "2011-05-13T04:42:34Z"}
        });
        let ci = |_: &AttrPath| false;
        for (f, expected) in [
            (r#"userName Eq "john""#, true),
            (r#"name.familyName co "O'Malley""#, true),
            (r#"userName sw "J""#, true),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
                true,
            ),
            ("title pr", true),
            (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
            (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, true),
            (r#"title pr and userType eq "Employee""#, true),
            (r#"title pr or userType eq "Intern""#, true),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:User""#,
                true,
            ),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                true,
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                false,
            ),
            (
                r#"userType eq "Employee" and (emails.type eq "work")"#,
                true,
            ),
            (
                r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
                true,
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                true,
            ),
        ] {
            let parsed = parse_filter(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(matches(&parsed, &user, &ci), expected, "{f}");
        }
    }

    #[test]
    fn parses_patch_paths() {
        let pp = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(pp.attr, p("emails"));
        assert!(pp.filter.is_some());
        assert_eq!(pp.sub_after_filter.as_deref(), Some("value"));
        let pp = parse_patch_path("name.givenName").unwrap();
        assert_eq!(pp.attr.sub.as_deref(), Some("givenName"));
        assert!(parse_patch_path("emails[type eq \"work\"").is_err());
    }

    #[test]
    fn top_paths_name_each_attribute_once_per_use() {
        let f = parse_filter(r#"userName eq "a" or not (emails[type eq "work"]) and title pr"#)
            .unwrap();
        let names: Vec<String> = top_paths(&f).iter().map(|p| p.to_string()).collect();
        assert_eq!(names, vec!["userName", "emails", "title"]);
    }

    #[test]
    fn a_chain_of_ands_is_one_node_however_long() {
        let chain = vec![r#"a eq "1""#; 50].join(" and ");
        let Filter::And(parts) = parse_filter(&chain).unwrap() else {
            panic!("one And node")
        };
        assert_eq!(parts.len(), 50);
    }

    /// Inputs that overflowed a worker's stack before the parser was bounded: each is now a
    /// parse error naming the limit, found without deep recursion.
    #[test]
    fn hostile_filters_are_refused_by_limit_not_by_crash() {
        let limits = Limits::default();
        let refused = |input: &str| parse_filter_with(input, &limits).unwrap_err().limit;
        let depth = Some(LimitExceeded::Depth { max: 16 });
        assert_eq!(refused(&"(".repeat(1800)), depth);
        assert_eq!(refused(&format!("{}a pr", "not (".repeat(800))), depth);
        let terms = Some(LimitExceeded::Terms { max: 100 });
        assert_eq!(refused(&vec!["a pr"; 400].join(" and ")), terms);
        assert_eq!(refused(&vec!["a pr"; 101].join(" or ")), terms);
        let long = vec![r#"userName eq "x""#; 6000].join(" and ");
        assert_eq!(
            refused(&long),
            Some(LimitExceeded::Length { max: 4096 }),
            "a 100 KB filter is refused before it is read"
        );
        let e = parse_filter_with(&"(".repeat(1800), &limits).unwrap_err();
        assert!(
            e.to_string().contains("limit of 16 levels"),
            "the message names the limit and its value: {e}"
        );
        let e =
            parse_patch_path_with(&format!("emails[{}", "(".repeat(5000)), &limits).unwrap_err();
        assert_eq!(e.limit, Some(LimitExceeded::Length { max: 4096 }));
        let e = parse_patch_path_with(&format!("emails[{}", "(".repeat(100)), &limits).unwrap_err();
        assert_eq!(e.limit, depth);
    }

    #[test]
    fn filters_within_the_limits_parse_at_the_edge() {
        let limits = Limits::default();
        let deepest = format!("{}a pr{}", "(".repeat(16), ")".repeat(16));
        assert!(parse_filter_with(&deepest, &limits).is_ok());
        let too_deep = format!("{}a pr{}", "(".repeat(17), ")".repeat(17));
        assert!(parse_filter_with(&too_deep, &limits).is_err());
        let most = vec!["a pr"; 100].join(" or ");
        assert!(parse_filter_with(&most, &limits).is_ok());
        // a value path and its parentheses count as levels
        let vp = format!("emails[{}type pr{}]", "(".repeat(15), ")".repeat(15));
        assert!(parse_filter_with(&vp, &limits).is_ok());
        let vp = format!("emails[{}type pr{}]", "(".repeat(16), ")".repeat(16));
        assert!(parse_filter_with(&vp, &limits).is_err());
    }

    #[test]
    fn configured_limits_above_the_hard_ceiling_are_capped() {
        let generous = Limits {
            filter_max_depth: 1_000_000,
            filter_max_length: usize::MAX,
            filter_max_terms: usize::MAX,
            ..Limits::default()
        };
        let e = parse_filter_with(&"(".repeat(10_000), &generous).unwrap_err();
        assert_eq!(
            e.limit,
            Some(LimitExceeded::Depth {
                max: Limits::HARD_MAX_DEPTH
            })
        );
    }

    #[test]
    fn sorts_by_value_primary_first_and_missing_as_greatest() {
        let a = json!({"userName": "b", "emails": [{"value": "z@x"}, {"value": "a@x", "primary": true}]});
        let b = json!({"userName": "A", "emails": [{"value": "m@x"}]});
        let c = json!({"userName": "c"});
        let by = |p: &str| parse_attr_path(p).unwrap();
        let mut v = vec![a.clone(), b.clone(), c.clone()];
        v.sort_by(|x, y| compare_for_sort(x, y, &by("userName"), false));
        assert_eq!(v, vec![b.clone(), a.clone(), c.clone()]);
        v.sort_by(|x, y| compare_for_sort(x, y, &by("emails"), false));
        assert_eq!(
            v,
            vec![a.clone(), b.clone(), c.clone()],
            "primary email a@x first, no email last"
        );
        v.sort_by(|x, y| compare_for_sort(x, y, &by("emails"), false).reverse());
        assert_eq!(v, vec![c, b, a], "descending: no email first");
    }

    #[test]
    fn evaluates_against_json() {
        let user = json!({
            "userName": "BJensen",
            "active": true,
            "emails": [{"type": "work", "value": "b@example.com"}, {"type": "home", "value": "b@home.org"}],
            "name": {"familyName": "Jensen"}
        });
        let ci = |_: &AttrPath| false;
        let t = |f: &str| matches(&parse_filter(f).unwrap(), &user, &ci);
        assert!(t(r#"userName eq "bjensen""#));
        assert!(t(r#"emails[type eq "work" and value ew "example.com"]"#));
        assert!(!t(r#"emails[type eq "work" and value ew "home.org"]"#));
        assert!(t(r#"emails.value co "home""#));
        assert!(t(r#"name.familyName sw "jen""#));
        assert!(t("active eq true and not (title pr)"));
        assert!(t(r#"title ne "x""#));
        let exact = |_: &AttrPath| true;
        assert!(!matches(
            &parse_filter(r#"userName eq "bjensen""#).unwrap(),
            &user,
            &exact
        ));
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Pieces of filter syntax, so that generated inputs get deep into the grammar.
    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("userName".to_owned()),
            Just("emails".to_owned()),
            Just("name.familyName".to_owned()),
            Just(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
                    .to_owned()
            ),
            Just(" eq ".to_owned()),
            Just(" co ".to_owned()),
            Just(" pr".to_owned()),
            Just(" and ".to_owned()),
            Just(" or ".to_owned()),
            Just("not ".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("\"x\\\"y\"".to_owned()),
            Just("12.5e3".to_owned()),
            Just("true".to_owned()),
            Just(".".to_owned()),
            Just(":".to_owned()),
            "[a-zA-Z0-9 é$_-]{0,4}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_filter_parser_never_panics_on_any_text(s in "\\PC{0,64}") {
            let _ = parse_filter(&s);
            let _ = parse_patch_path(&s);
            let _ = parse_attr_path(&s);
        }

        /// Deep nesting and long chains, far past the limits (the shapes that once
        /// overflowed the stack): refused or parsed, never a crash, under the default limits
        /// and under the hard ceilings; what parses evaluates.
        #[test]
        fn deep_and_long_filters_never_crash(
            depth in 0usize..3000,
            width in 0usize..3000,
            opener in prop_oneof![Just("("), Just("not ("), Just("not("), Just("emails[(")],
            joiner in prop_oneof![Just(" and "), Just(" or "), Just(" AND ")],
            limits in prop_oneof![Just(Limits::default()), Just(Limits {
                filter_max_length: Limits::HARD_MAX_LENGTH,
                filter_max_depth: Limits::HARD_MAX_DEPTH,
                filter_max_terms: Limits::HARD_MAX_TERMS,
                ..Limits::default()
            })],
        ) {
            let chain = vec![r#"userName eq "x""#; width + 1].join(joiner);
            let s = format!("{}{}{}", opener.repeat(depth), chain, ")".repeat(depth));
            if let Ok(f) = parse_filter_with(&s, &limits) {
                let _ = matches(&f, &serde_json::json!({"userName": "x"}), &|_| false);
            }
            let _ = parse_patch_path_with(&format!("emails[{s}]"), &limits);
            let _ = parse_patch_path_with(&format!("members[{s}].value"), &limits);
        }

        #[test]
        fn the_filter_parser_never_panics_on_near_grammatical_input(parts in prop::collection::vec(token(), 0..16)) {
            let s: String = parts.concat();
            if let Ok(f) = parse_filter(&s) {
                // what parses can be evaluated without panicking
                let _ = matches(&f, &serde_json::json!({"userName": "x", "emails": [{"value": "y"}]}), &|_| false);
            }
            let _ = parse_patch_path(&s);
        }
    }
}
