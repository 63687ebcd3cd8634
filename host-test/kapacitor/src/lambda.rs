//! Kapacitor's `match` expressions for topic handlers: the subset of its
//! lambda syntax that handler files use, parsed at load and evaluated per
//! event.
//!
//! - `level()`, `changed()` (the level differs from the alert's previous
//!   one), `name()`, `taskName()`, `duration()`;
//! - `OK`, `INFO`, `WARNING`, `CRITICAL`, `TRUE`, `FALSE`;
//! - `"host"`: the event's tag `host`; `'text'`: a string; `/re/`: a
//!   regular expression; numbers; durations (`5m`, `1h30m`, `10s`, `500ms`,
//!   `2d`: see [`crate::duration::parse_tick`]);
//! - `==`, `!=`, `<`, `<=`, `>`, `>=`, `=~`, `!~`, `AND`, `OR`, `!`,
//!   parentheses.
//!
//! Anything else is an error at load naming the position (never silently
//! true). At evaluation, a tag the event does not have, or operands of
//! kinds that do not compare, make the expression false and say why.

use std::fmt;

use regex::Regex;

use alert_handler_host::{AlertEvent, Level};

use crate::duration;

/// A parsed `match` expression.
#[derive(Debug, Clone)]
pub struct Lambda {
    text: String,
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    Value(Value),
    Tag(String),
    Call(Function),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Compare(Box<Node>, Op, Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Level,
    Changed,
    Name,
    TaskName,
    Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
    NotMatches,
}

#[derive(Debug, Clone)]
enum Value {
    Bool(bool),
    Number(f64),
    Str(String),
    /// Nanoseconds.
    Duration(i64),
    Level(u8),
    Regex(Regex),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::Str(_) => "a string",
            Value::Duration(_) => "a duration",
            Value::Level(_) => "a level",
            Value::Regex(_) => "a regular expression",
        }
    }
}

/// A parse error: what is wrong and where (1-based column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

fn level_rank(level: Level) -> u8 {
    match level {
        Level::Ok => 0,
        Level::Info => 1,
        Level::Warning => 2,
        Level::Critical => 3,
    }
}

impl Lambda {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Lambda, ParseError> {
        let tokens = lex(text)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            end: text.chars().count() + 1,
        };
        let root = parser.or()?;
        if let Some(token) = parser.tokens.get(parser.at) {
            return Err(ParseError {
                column: token.column,
                message: format!("unexpected {}", token.kind.describe()),
            });
        }
        Ok(Lambda {
            text: text.to_string(),
            root,
        })
    }

    /// Whether `event` matches; `Err` says why it cannot be evaluated (the
    /// handler then does not take the event).
    pub fn matches(&self, event: &AlertEvent) -> Result<bool, String> {
        match eval(&self.root, event)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!(
                "`{}` is {}, not true or false",
                self.text,
                other.kind()
            )),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

fn eval(node: &Node, event: &AlertEvent) -> Result<Value, String> {
    Ok(match node {
        Node::Value(v) => v.clone(),
        Node::Tag(name) => match event.tags.iter().find(|(k, _)| k == name) {
            Some((_, v)) => Value::Str(v.clone()),
            None => return Err(format!("the event has no tag \"{name}\"")),
        },
        Node::Call(f) => match f {
            Function::Level => Value::Level(level_rank(event.level)),
            Function::Changed => Value::Bool(
                event
                    .previous_level
                    .is_none_or(|previous| previous != event.level),
            ),
            Function::Name => Value::Str(event.name.clone()),
            Function::TaskName => Value::Str(event.task_name.clone()),
            Function::Duration => Value::Duration(event.duration),
        },
        Node::Not(inner) => match eval(inner, event)? {
            Value::Bool(b) => Value::Bool(!b),
            other => return Err(format!("`!` needs a boolean, not {}", other.kind())),
        },
        Node::And(a, b) => Value::Bool(truth(a, event)? && truth(b, event)?),
        Node::Or(a, b) => Value::Bool(truth(a, event)? || truth(b, event)?),
        Node::Compare(a, op, b) => Value::Bool(compare(&eval(a, event)?, *op, &eval(b, event)?)?),
    })
}

fn truth(node: &Node, event: &AlertEvent) -> Result<bool, String> {
    match eval(node, event)? {
        Value::Bool(b) => Ok(b),
        other => Err(format!("AND/OR need booleans, not {}", other.kind())),
    }
}

fn compare(a: &Value, op: Op, b: &Value) -> Result<bool, String> {
    use std::cmp::Ordering;
    let order = |o: Option<Ordering>| -> Result<bool, String> {
        let o = o.ok_or("values that do not compare")?;
        Ok(match op {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
            Op::Matches | Op::NotMatches => unreachable!("handled below"),
        })
    };
    match (a, op, b) {
        (Value::Str(s), Op::Matches, Value::Regex(r)) => Ok(r.is_match(s)),
        (Value::Str(s), Op::NotMatches, Value::Regex(r)) => Ok(!r.is_match(s)),
        (_, Op::Matches | Op::NotMatches, _) => Err(format!(
            "`=~` and `!~` take a string and a regular expression, not {} and {}",
            a.kind(),
            b.kind()
        )),
        (Value::Bool(x), Op::Eq | Op::Ne, Value::Bool(y)) => order(Some(x.cmp(y))),
        (Value::Number(x), _, Value::Number(y)) => order(x.partial_cmp(y)),
        (Value::Str(x), _, Value::Str(y)) => order(Some(x.cmp(y))),
        (Value::Duration(x), _, Value::Duration(y)) => order(Some(x.cmp(y))),
        (Value::Level(x), _, Value::Level(y)) => order(Some(x.cmp(y))),
        _ => Err(format!("cannot compare {} with {}", a.kind(), b.kind())),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Ident(String),
    Ref(String),
    Str(String),
    Regex(String),
    Number(f64),
    Duration(i64),
    Op(Op),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl TokenKind {
    fn describe(&self) -> String {
        match self {
            TokenKind::Ident(name) => format!("`{name}`"),
            TokenKind::Ref(name) => format!("\"{name}\""),
            TokenKind::Str(s) => format!("'{s}'"),
            TokenKind::Regex(r) => format!("/{r}/"),
            TokenKind::Number(n) => format!("{n}"),
            TokenKind::Duration(_) => "a duration".to_string(),
            TokenKind::Op(_) => "an operator".to_string(),
            TokenKind::And => "AND".to_string(),
            TokenKind::Or => "OR".to_string(),
            TokenKind::Not => "`!`".to_string(),
            TokenKind::Open => "`(`".to_string(),
            TokenKind::Close => "`)`".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    column: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let err = |column: usize, message: String| ParseError { column, message };
    // Whether a `/` starts a regular expression: only where a value can be.
    let value_expected = |tokens: &Vec<Token>| {
        tokens.last().is_none_or(|t: &Token| {
            matches!(
                t.kind,
                TokenKind::Op(_)
                    | TokenKind::And
                    | TokenKind::Or
                    | TokenKind::Not
                    | TokenKind::Open
            )
        })
    };
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let quoted = |i: &mut usize, end: char| -> Result<String, ParseError> {
            let mut out = String::new();
            *i += 1;
            while *i < chars.len() {
                match chars[*i] {
                    '\\' if *i + 1 < chars.len() => {
                        if chars[*i + 1] != end && end == '/' {
                            out.push('\\');
                        }
                        out.push(chars[*i + 1]);
                        *i += 2;
                    }
                    ch if ch == end => {
                        *i += 1;
                        return Ok(out);
                    }
                    ch => {
                        out.push(ch);
                        *i += 1;
                    }
                }
            }
            Err(err(column, format!("unterminated {end}...{end}")))
        };
        let kind = match c {
            '\'' => TokenKind::Str(quoted(&mut i, '\'')?),
            '"' => TokenKind::Ref(quoted(&mut i, '"')?),
            '/' if value_expected(&tokens) => TokenKind::Regex(quoted(&mut i, '/')?),
            '(' => {
                i += 1;
                TokenKind::Open
            }
            ')' => {
                i += 1;
                TokenKind::Close
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (kind, len) = match (c, next) {
                    ('=', Some('=')) => (TokenKind::Op(Op::Eq), 2),
                    ('=', Some('~')) => (TokenKind::Op(Op::Matches), 2),
                    ('!', Some('=')) => (TokenKind::Op(Op::Ne), 2),
                    ('!', Some('~')) => (TokenKind::Op(Op::NotMatches), 2),
                    ('!', _) => (TokenKind::Not, 1),
                    ('<', Some('=')) => (TokenKind::Op(Op::Le), 2),
                    ('<', _) => (TokenKind::Op(Op::Lt), 1),
                    ('>', Some('=')) => (TokenKind::Op(Op::Ge), 2),
                    ('>', _) => (TokenKind::Op(Op::Gt), 1),
                    _ => return Err(err(column, "`=` alone is not an operator; use `==`".into())),
                };
                i += len;
                kind
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == 'µ')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if let Ok(n) = word.parse::<f64>() {
                    TokenKind::Number(n)
                } else if let Some(ns) = duration::parse_tick(&word) {
                    TokenKind::Duration(ns)
                } else {
                    return Err(err(
                        column,
                        format!("`{word}` is not a number or a duration"),
                    ));
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.as_str() {
                    "AND" => TokenKind::And,
                    "OR" => TokenKind::Or,
                    _ => TokenKind::Ident(word),
                }
            }
            other => return Err(err(column, format!("unexpected `{other}`"))),
        };
        tokens.push(Token { kind, column });
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// The column just past the text, for "ends where ... was expected".
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&TokenKind> {
        self.tokens.get(self.at).map(|t| &t.kind)
    }

    fn column(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |t| t.column)
    }

    fn fail<T>(&self, message: String) -> Result<T, ParseError> {
        Err(ParseError {
            column: self.column(),
            message,
        })
    }

    fn or(&mut self) -> Result<Node, ParseError> {
        let mut left = self.and()?;
        while self.peek() == Some(&TokenKind::Or) {
            self.at += 1;
            let right = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, ParseError> {
        let mut left = self.comparison()?;
        while self.peek() == Some(&TokenKind::And) {
            self.at += 1;
            let right = self.comparison()?;
            left = Node::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Node, ParseError> {
        let left = self.unary()?;
        if let Some(TokenKind::Op(op)) = self.peek().cloned() {
            self.at += 1;
            let right = self.unary()?;
            return Ok(Node::Compare(Box::new(left), op, Box::new(right)));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        if self.peek() == Some(&TokenKind::Not) {
            self.at += 1;
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        let column = self.column();
        let Some(token) = self.peek().cloned() else {
            return self.fail("the expression ends where a value was expected".into());
        };
        self.at += 1;
        Ok(match token {
            TokenKind::Open => {
                let inner = self.or()?;
                if self.peek() != Some(&TokenKind::Close) {
                    return self.fail("expected `)`".into());
                }
                self.at += 1;
                inner
            }
            TokenKind::Ref(name) => Node::Tag(name),
            TokenKind::Str(s) => Node::Value(Value::Str(s)),
            TokenKind::Number(n) => Node::Value(Value::Number(n)),
            TokenKind::Duration(ns) => Node::Value(Value::Duration(ns)),
            TokenKind::Regex(r) => match Regex::new(&r) {
                Ok(re) => Node::Value(Value::Regex(re)),
                Err(e) => {
                    return Err(ParseError {
                        column,
                        message: format!("bad regular expression: {e}"),
                    })
                }
            },
            TokenKind::Ident(word) => {
                if self.peek() == Some(&TokenKind::Open) {
                    let function = match word.as_str() {
                        "level" => Function::Level,
                        "changed" => Function::Changed,
                        "name" => Function::Name,
                        "taskName" => Function::TaskName,
                        "duration" => Function::Duration,
                        _ => {
                            return Err(ParseError {
                                column,
                                message: format!(
                                    "unsupported function `{word}()`; match expressions here take level(), changed(), name(), taskName() and duration()"
                                ),
                            })
                        }
                    };
                    self.at += 1;
                    if self.peek() != Some(&TokenKind::Close) {
                        return self.fail(format!("`{word}()` takes no arguments"));
                    }
                    self.at += 1;
                    Node::Call(function)
                } else {
                    match word.as_str() {
                        "OK" => Node::Value(Value::Level(0)),
                        "INFO" => Node::Value(Value::Level(1)),
                        "WARNING" => Node::Value(Value::Level(2)),
                        "CRITICAL" => Node::Value(Value::Level(3)),
                        "TRUE" => Node::Value(Value::Bool(true)),
                        "FALSE" => Node::Value(Value::Bool(false)),
                        _ => {
                            return Err(ParseError {
                                column,
                                message: format!(
                                    "unknown name `{word}`; a tag is written in double quotes (\"{word}\"), a string in single quotes"
                                ),
                            })
                        }
                    }
                }
            }
            other => {
                return Err(ParseError {
                    column,
                    message: format!("unexpected {}", other.describe()),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alert_handler_host::Timestamp;
    use proptest::prelude::Strategy;

    fn event(level: Level, previous: Option<Level>) -> AlertEvent {
        AlertEvent {
            id: "cpu:host=a".into(),
            message: "m".into(),
            details: String::new(),
            time: Timestamp {
                seconds: 0,
                nanoseconds: 0,
            },
            duration: 300_000_000_000,
            level,
            previous_level: previous,
            recoverable: true,
            topic: None,
            name: "cpu".into(),
            task_name: "cpu_alert".into(),
            group: "host=a".into(),
            tags: vec![
                ("host".into(), "serverA".into()),
                ("dc".into(), "eu-1".into()),
            ],
            fields: vec![],
            context: vec![],
        }
    }

    fn holds(text: &str, e: &AlertEvent) -> bool {
        Lambda::parse(text)
            .unwrap_or_else(|p| panic!("{text}: {p}"))
            .matches(e)
            .unwrap_or_else(|why| panic!("{text}: {why}"))
    }

    #[test]
    fn levels_and_changes() {
        let crit = event(Level::Critical, Some(Level::Warning));
        let still = event(Level::Critical, Some(Level::Critical));
        assert!(holds("level() == CRITICAL", &crit));
        assert!(!holds("level() == WARNING", &crit));
        assert!(holds("level() > WARNING", &crit));
        assert!(holds("level() >= OK", &crit));
        assert!(holds("changed()", &crit));
        assert!(!holds("changed()", &still));
        assert!(holds("changed() == FALSE", &still));
        assert!(holds("changed() OR level() == CRITICAL", &still));
        assert!(!holds("changed() AND level() == CRITICAL", &still));
        assert!(holds("!changed()", &still));
        // A first event has no previous level: it is a change.
        assert!(holds("changed()", &event(Level::Info, None)));
    }

    #[test]
    fn tags_strings_regexes_names_and_durations() {
        let e = event(Level::Warning, Some(Level::Ok));
        assert!(holds("\"host\" == 'serverA'", &e));
        assert!(!holds("\"host\" != 'serverA'", &e));
        assert!(holds("\"host\" =~ /^server[A-C]$/", &e));
        assert!(holds("\"dc\" !~ /^us-/", &e));
        assert!(holds("name() == 'cpu' AND taskName() == 'cpu_alert'", &e));
        assert!(holds("duration() > 1m AND duration() <= 5m", &e));
        assert!(holds("duration() < 1h30m", &e));
        assert!(holds(
            "(\"host\" == 'x' OR \"dc\" =~ /eu/) AND !(level() == OK)",
            &e
        ));
        assert!(holds("'a/b' == 'a/b'", &e), "a slash in a string");
    }

    #[test]
    fn unsupported_syntax_is_an_error_with_its_column() {
        for (text, column, says) in [
            ("level() = CRITICAL", 9, "use `==`"),
            ("host == 'a'", 1, "double quotes"),
            ("sigma(\"x\") > 3", 1, "unsupported function `sigma()`"),
            ("level() == CRITICAL AND", 24, "ends where a value"),
            ("(level() == OK", 15, "expected `)`"),
            ("\"host\" =~ /[/", 11, "bad regular expression"),
            ("level() == CRITICAL CRITICAL", 21, "unexpected `CRITICAL`"),
            ("'open", 1, "unterminated"),
            ("level(1)", 7, "takes no arguments"),
            ("3x", 1, "not a number or a duration"),
        ] {
            let e = Lambda::parse(text).expect_err(text);
            assert_eq!(e.column, column, "{text}: {e}");
            assert!(e.message.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn what_cannot_be_evaluated_does_not_match_and_says_why() {
        let e = event(Level::Critical, None);
        let why = Lambda::parse("\"region\" == 'eu'")
            .unwrap()
            .matches(&e)
            .unwrap_err();
        assert!(why.contains("no tag \"region\""), "{why}");
        let why = Lambda::parse("level() == 'CRITICAL'")
            .unwrap()
            .matches(&e)
            .unwrap_err();
        assert!(
            why.contains("cannot compare a level with a string"),
            "{why}"
        );
        let why = Lambda::parse("name()").unwrap().matches(&e).unwrap_err();
        assert!(why.contains("not true or false"), "{why}");
    }

    proptest::proptest! {
        /// Whatever a handler file holds, parsing answers, and what parses
        /// evaluates to an answer: never a panic.
        #[test]
        fn any_text_parses_or_fails_and_evaluates_without_panicking(text in ".{0,60}") {
            if let Ok(lambda) = Lambda::parse(&text) {
                let _ = lambda.matches(&event(Level::Critical, Some(Level::Ok)));
            }
        }

        #[test]
        fn expression_like_text_too(
            text in proptest::collection::vec(
                proptest::sample::select(vec![
                    "level()", "changed()", "==", "!=", "<", ">=", "=~", "!~", "AND", "OR",
                    "!", "(", ")", "CRITICAL", "'a'", "\"host\"", "/s.*/", "5m", "1.5", "TRUE", " ",
                ]),
                0..12,
            ).prop_map(|parts| parts.concat())
        ) {
            if let Ok(lambda) = Lambda::parse(&text) {
                let _ = lambda.matches(&event(Level::Warning, None));
            }
        }
    }
}
