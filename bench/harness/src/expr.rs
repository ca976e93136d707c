//! DynamoDB condition and update expressions, for the fake DynamoDB
//! (`dynamo.rs`): the subset an idempotency store writes, evaluated on items
//! kept in DynamoDB's JSON (`{"attr": {"S": "..."}}`).
//!
//! Conditions: `attribute_exists(p)`, `attribute_not_exists(p)`,
//! `begins_with(p, v)`, the comparisons `= <> < <= > >=`, `AND`, `OR`, `NOT`,
//! parentheses; operands are top-level attribute names, `#names` and
//! `:values`. Updates: `SET p = v[, ...]` where `v` is an operand,
//! `if_not_exists(p, v)` or `a + b` / `a - b` on numbers, and `REMOVE p[, ...]`.
//! Anything else is a `ValidationException`, never a silent guess.
use serde_json::{Map, Value};
use std::cmp::Ordering;

pub type Item = Map<String, Value>;

/// The names and values a request binds (`ExpressionAttributeNames`/`Values`).
pub struct Bindings<'a> {
    pub names: Option<&'a Map<String, Value>>,
    pub values: Option<&'a Map<String, Value>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Name(String),
    Value(String),
    Op(&'static str),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' || c == ':' {
            i += 1;
            let w = word(&mut i);
            if w.is_empty() {
                return Err(format!("a bare {c} in {text:?}"));
            }
            out.push(if c == '#' {
                Token::Name(format!("#{w}"))
            } else {
                Token::Value(format!(":{w}"))
            });
        } else if c.is_alphabetic() || c == '_' {
            out.push(Token::Word(word(&mut i)));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = ["<>", "<=", ">="]
                .into_iter()
                .find(|o| *o == two)
                .or_else(|| {
                    ["=", "<", ">", "(", ")", ",", "+", "-"]
                        .into_iter()
                        .find(|o| o.starts_with(c))
                })
                .ok_or_else(|| format!("unexpected {c:?} in {text:?}"))?;
            i += op.len();
            out.push(Token::Op(op));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    bind: &'a Bindings<'a>,
}

/// An operand resolved against the bindings: an attribute or a literal.
#[derive(Clone, Debug)]
enum Operand {
    Path(String),
    Literal(Value),
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(k)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &'static str) -> Result<(), String> {
        match self.next() {
            Some(Token::Op(o)) if o == op => Ok(()),
            other => Err(format!("expected {op:?}, found {other:?}")),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(Operand::Path(w)),
            Some(Token::Name(n)) => self
                .bind
                .names
                .and_then(|m| m.get(&n))
                .and_then(Value::as_str)
                .map(|s| Operand::Path(s.to_string()))
                .ok_or_else(|| format!("{n} is not in ExpressionAttributeNames")),
            Some(Token::Value(v)) => self
                .bind
                .values
                .and_then(|m| m.get(&v))
                .map(|v| Operand::Literal(v.clone()))
                .ok_or_else(|| format!("{v} is not in ExpressionAttributeValues")),
            other => Err(format!("expected an operand, found {other:?}")),
        }
    }

    fn path(&mut self) -> Result<String, String> {
        match self.operand()? {
            Operand::Path(p) => Ok(p),
            Operand::Literal(_) => Err("expected an attribute, found a value".into()),
        }
    }

    fn or(&mut self, item: Option<&Item>) -> Result<bool, String> {
        let mut v = self.and(item)?;
        while self.keyword("OR") {
            v |= self.and(item)?;
        }
        Ok(v)
    }

    fn and(&mut self, item: Option<&Item>) -> Result<bool, String> {
        let mut v = self.unary(item)?;
        while self.keyword("AND") {
            v &= self.unary(item)?;
        }
        Ok(v)
    }

    fn unary(&mut self, item: Option<&Item>) -> Result<bool, String> {
        if self.keyword("NOT") {
            return Ok(!self.unary(item)?);
        }
        if self.peek() == Some(&Token::Op("(")) {
            self.at += 1;
            let v = self.or(item)?;
            self.expect(")")?;
            return Ok(v);
        }
        let function = match (self.peek(), self.tokens.get(self.at + 1)) {
            (Some(Token::Word(w)), Some(Token::Op("("))) => Some(w.to_ascii_lowercase()),
            _ => None,
        };
        let attr = |item: Option<&Item>, p: &str| item.and_then(|i| i.get(p)).cloned();
        if let Some(function) = function {
            self.at += 2;
            let p = self.path()?;
            let v = match function.as_str() {
                "attribute_exists" => attr(item, &p).is_some(),
                "attribute_not_exists" => attr(item, &p).is_none(),
                "begins_with" => {
                    self.expect(",")?;
                    let prefix = self.operand()?;
                    let prefix = self.resolve(item, prefix);
                    let s = attr(item, &p);
                    match (
                        s.as_ref().and_then(string),
                        prefix.as_ref().and_then(string),
                    ) {
                        (Some(s), Some(prefix)) => s.starts_with(prefix),
                        _ => false,
                    }
                }
                other => return Err(format!("function {other} is not supported")),
            };
            self.expect(")")?;
            return Ok(v);
        }
        let left = self.operand()?;
        let op = match self.next() {
            Some(Token::Op(o)) if ["=", "<>", "<", "<=", ">", ">="].contains(&o) => o,
            other => return Err(format!("expected a comparison, found {other:?}")),
        };
        let right = self.operand()?;
        let (Some(a), Some(b)) = (self.resolve(item, left), self.resolve(item, right)) else {
            // A missing attribute compares false, `<>` included.
            return Ok(false);
        };
        Ok(match op {
            "=" => equal(&a, &b),
            "<>" => !equal(&a, &b),
            _ => match compare(&a, &b) {
                Some(o) => match op {
                    "<" => o == Ordering::Less,
                    "<=" => o != Ordering::Greater,
                    ">" => o == Ordering::Greater,
                    _ => o != Ordering::Less,
                },
                None => false,
            },
        })
    }

    fn resolve(&self, item: Option<&Item>, o: Operand) -> Option<Value> {
        match o {
            Operand::Path(p) => item.and_then(|i| i.get(&p)).cloned(),
            Operand::Literal(v) => Some(v),
        }
    }

    fn done(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(format!("unexpected {t:?} at the end")),
        }
    }
}

fn string(v: &Value) -> Option<&str> {
    v.get("S").and_then(Value::as_str)
}

fn number(v: &Value) -> Option<f64> {
    v.get("N").and_then(Value::as_str)?.parse().ok()
}

fn equal(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => Some(string(a)?.cmp(string(b)?)),
    }
}

/// Whether `item` (`None`: no item under the key) satisfies `condition`.
pub fn condition(condition: &str, item: Option<&Item>, bind: &Bindings) -> Result<bool, String> {
    let mut p = Parser {
        tokens: tokens(condition)?,
        at: 0,
        bind,
    };
    let v = p.or(item)?;
    p.done()?;
    Ok(v)
}

/// Applies `update` to `item`; returns the attributes it set or removed.
pub fn update(update: &str, item: &mut Item, bind: &Bindings) -> Result<Vec<String>, String> {
    let mut p = Parser {
        tokens: tokens(update)?,
        at: 0,
        bind,
    };
    let before = item.clone();
    let mut touched = Vec::new();
    while p.peek().is_some() {
        if p.keyword("SET") {
            loop {
                let target = p.path()?;
                p.expect("=")?;
                let mut v = set_value(&mut p, &before)?;
                if let Some(Token::Op(op @ ("+" | "-"))) = p.peek().cloned() {
                    p.at += 1;
                    let w = set_value(&mut p, &before)?;
                    let (Some(x), Some(y)) = (number(&v), number(&w)) else {
                        return Err(format!("{op} needs two numbers"));
                    };
                    let r = if op == "+" { x + y } else { x - y };
                    v = serde_json::json!({ "N": format_number(r) });
                }
                item.insert(target.clone(), v);
                touched.push(target);
                if p.peek() != Some(&Token::Op(",")) {
                    break;
                }
                p.at += 1;
            }
        } else if p.keyword("REMOVE") {
            loop {
                let target = p.path()?;
                item.remove(&target);
                touched.push(target);
                if p.peek() != Some(&Token::Op(",")) {
                    break;
                }
                p.at += 1;
            }
        } else {
            return Err(format!(
                "expected SET or REMOVE, found {:?} (ADD and DELETE are not supported)",
                p.peek()
            ));
        }
    }
    Ok(touched)
}

fn set_value(p: &mut Parser, before: &Item) -> Result<Value, String> {
    if matches!(p.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case("if_not_exists"))
        && p.tokens.get(p.at + 1) == Some(&Token::Op("("))
    {
        p.at += 2;
        let path = p.path()?;
        p.expect(",")?;
        let fallback = p.operand()?;
        p.expect(")")?;
        return match before.get(&path) {
            Some(v) => Ok(v.clone()),
            None => p
                .resolve(Some(before), fallback)
                .ok_or_else(|| "if_not_exists: the fallback is missing".to_string()),
        };
    }
    let o = p.operand()?;
    p.resolve(Some(before), o)
        .ok_or_else(|| "SET reads an attribute the item does not have".to_string())
}

fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_idempotency_conditions() {
        let names = map(json!({"#owner": "owner"}));
        let values = map(json!({":holder": {"S": "h1"}, ":owner": {"S": "k"}}));
        let bind = Bindings {
            names: Some(&names),
            values: Some(&values),
        };
        let item = map(json!({"id": {"S": "x"}, "holder": {"S": "h1"}, "owner": {"S": "j"}}));
        let check = |c: &str, i: Option<&Item>| condition(c, i, &bind);
        assert_eq!(check("attribute_not_exists(id)", None), Ok(true));
        assert_eq!(check("attribute_not_exists(id)", Some(&item)), Ok(false));
        assert_eq!(check("holder = :holder", Some(&item)), Ok(true));
        assert_eq!(check("holder = :holder", None), Ok(false));
        assert_eq!(
            check("attribute_not_exists(id) OR #owner = :owner", Some(&item)),
            Ok(false)
        );
        assert_eq!(
            check(
                "NOT (attribute_not_exists(id) OR #owner = :owner)",
                Some(&item)
            ),
            Ok(true)
        );
        assert!(check("holder = :nope", Some(&item)).is_err());
        assert!(check("size(holder) > :holder", Some(&item)).is_err());
    }

    #[test]
    fn numbers_compare_as_numbers_and_updates_apply() {
        let values = map(json!({":now": {"N": "1000"}, ":one": {"N": "1"}, ":s": {"S": "DONE"}}));
        let bind = Bindings {
            names: None,
            values: Some(&values),
        };
        let mut item = map(json!({"id": {"S": "x"}, "held_until": {"N": "999"}, "n": {"N": "2"}}));
        assert_eq!(condition("held_until < :now", Some(&item), &bind), Ok(true));
        assert_eq!(
            condition("held_until >= :now", Some(&item), &bind),
            Ok(false)
        );
        let touched = update(
            "SET status = :s, n = n + :one, c = if_not_exists(c, :one) REMOVE held_until",
            &mut item,
            &bind,
        );
        assert_eq!(
            touched,
            Ok(vec![
                "status".into(),
                "n".into(),
                "c".into(),
                "held_until".into()
            ])
        );
        assert_eq!(
            Value::Object(item),
            json!({"id": {"S": "x"}, "status": {"S": "DONE"}, "n": {"N": "3"}, "c": {"N": "1"}})
        );
    }
}
