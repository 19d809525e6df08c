//! Recursive-descent / precedence-climbing parser from tokens to the `ast::Node` tree.
//!
//! It must not evaluate anything. It must bound recursion: tree depth is tracked while
//! building and anything deeper than `MAX_DEPTH` is rejected, so hostile input cannot
//! overflow the stack here or later in evaluation, printing or dropping.

use super::FhirPathError;
use super::ast::{BinOp, Node};
use super::datetime::Dt;
use super::functions::arity;
use super::lexer::{Tok, Token, tokenize};

/// Maximum depth of the syntax tree (nesting, path length and operator chains all count).
pub const MAX_DEPTH: usize = 128;

pub const CALENDAR: [&str; 16] = [
    "year",
    "years",
    "month",
    "months",
    "week",
    "weeks",
    "day",
    "days",
    "hour",
    "hours",
    "minute",
    "minutes",
    "second",
    "seconds",
    "millisecond",
    "milliseconds",
];

type P = (Node, usize);

struct Parser {
    toks: Vec<Token>,
    i: usize,
    end: usize,
    nest: usize,
}

/// Maximum nesting of sub-expressions (parentheses, arguments, indexers, unary signs).
pub const MAX_NEST: usize = 64;

/// Parse a whole expression.
pub fn parse(src: &str) -> Result<Node, FhirPathError> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        end: src.len(),
        nest: 0,
    };
    if p.toks.is_empty() {
        return Err(p.err("empty expression"));
    }
    let (n, _) = p.expr(0)?;
    if p.i < p.toks.len() {
        return Err(p.err("unexpected token"));
    }
    Ok(n)
}

fn level_ops(level: usize, t: &Tok) -> Option<BinOp> {
    let (sym, word) = match t {
        Tok::Sym(s) => (*s, ""),
        Tok::Ident(w, false) => ("", w.as_str()),
        _ => return None,
    };
    let op = match (level, sym, word) {
        (0, _, "implies") => BinOp::Implies,
        (1, _, "or") => BinOp::Or,
        (1, _, "xor") => BinOp::Xor,
        (2, _, "and") => BinOp::And,
        (3, _, "in") => BinOp::In,
        (3, _, "contains") => BinOp::Contains,
        (4, "=", _) => BinOp::Eq,
        (4, "!=", _) => BinOp::Ne,
        (4, "~", _) => BinOp::Equiv,
        (4, "!~", _) => BinOp::NotEquiv,
        (5, "<", _) => BinOp::Lt,
        (5, ">", _) => BinOp::Gt,
        (5, "<=", _) => BinOp::Le,
        (5, ">=", _) => BinOp::Ge,
        (6, "|", _) => BinOp::Union,
        (8, "+", _) => BinOp::Add,
        (8, "-", _) => BinOp::Sub,
        (8, "&", _) => BinOp::Concat,
        (9, "*", _) => BinOp::Mul,
        (9, "/", _) => BinOp::Div,
        (9, _, "div") => BinOp::IntDiv,
        (9, _, "mod") => BinOp::Mod,
        _ => return None,
    };
    Some(op)
}

fn deeper(d: usize, pos: usize) -> Result<usize, FhirPathError> {
    if d + 1 > MAX_DEPTH {
        Err(FhirPathError::Parse {
            position: pos,
            message: format!("expression nested deeper than {MAX_DEPTH}"),
        })
    } else {
        Ok(d + 1)
    }
}

impl Parser {
    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.end, |t| t.pos)
    }
    fn err(&self, m: &str) -> FhirPathError {
        FhirPathError::Parse {
            position: self.pos(),
            message: m.to_string(),
        }
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }
    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if *x == s)
    }
    fn expect(&mut self, s: &str) -> Result<(), FhirPathError> {
        if self.is_sym(s) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{s}'")))
        }
    }

    fn expr(&mut self, level: usize) -> Result<P, FhirPathError> {
        if level == 0 {
            self.nest += 1;
            if self.nest > MAX_NEST {
                return Err(self.err("expression nested too deeply"));
            }
            let r = self.level(0);
            self.nest -= 1;
            return r;
        }
        self.level(level)
    }

    fn level(&mut self, level: usize) -> Result<P, FhirPathError> {
        if level == 7 {
            return self.type_expr();
        }
        if level >= 10 {
            return self.unary();
        }
        let (mut left, mut d) = self.expr(level + 1)?;
        while let Some(op) = self.peek().and_then(|t| level_ops(level, t)) {
            let pos = self.pos();
            self.i += 1;
            let (right, rd) = self.expr(level + 1)?;
            d = deeper(d.max(rd), pos)?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
        Ok((left, d))
    }

    fn type_expr(&mut self) -> Result<P, FhirPathError> {
        let (mut left, mut d) = self.expr(8)?;
        while let Some(Tok::Ident(w, false)) = self.peek() {
            let is = match w.as_str() {
                "is" => true,
                "as" => false,
                _ => break,
            };
            let pos = self.pos();
            self.i += 1;
            let t = self.type_name()?;
            d = deeper(d, pos)?;
            left = Node::TypeOp(is, Box::new(left), t);
        }
        Ok((left, d))
    }

    fn type_name(&mut self) -> Result<String, FhirPathError> {
        let mut name = String::new();
        loop {
            match self.peek() {
                Some(Tok::Ident(w, _)) => name.push_str(w),
                _ => return Err(self.err("expected a type name")),
            }
            self.i += 1;
            let qualified =
                self.is_sym(".") && matches!(self.toks.get(self.i + 1).map(|t| &t.tok), Some(Tok::Ident(..)));
            if !qualified || name.contains('.') {
                return Ok(name);
            }
            self.i += 1;
            name.push('.');
        }
    }

    fn unary(&mut self) -> Result<P, FhirPathError> {
        let pos = self.pos();
        if self.is_sym("-") || self.is_sym("+") {
            let neg = self.is_sym("-");
            self.i += 1;
            self.nest += 1;
            if self.nest > MAX_NEST {
                return Err(self.err("expression nested too deeply"));
            }
            let r = self.unary();
            self.nest -= 1;
            let (e, d) = r?;
            let d = deeper(d, pos)?;
            return Ok(match e {
                Node::Int(i) if neg => (Node::Int(i.wrapping_neg()), d),
                Node::Dec(v, t) if neg => (Node::Dec(-v, format!("-{t}")), d),
                Node::Quantity(v, t, u) if neg => (Node::Quantity(-v, format!("-{t}"), u), d),
                e => (Node::Neg(Box::new(e), neg), d),
            });
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<P, FhirPathError> {
        let (mut node, mut d) = self.term()?;
        loop {
            let pos = self.pos();
            if self.is_sym(".") {
                self.i += 1;
                let (n, nd) = self.invocation(Some(node))?;
                node = n;
                d = deeper(d.max(nd), pos)?;
            } else if self.is_sym("[") {
                self.i += 1;
                let (idx, id) = self.expr(0)?;
                self.expect("]")?;
                d = deeper(d.max(id), pos)?;
                node = Node::Indexer(Box::new(node), Box::new(idx));
            } else {
                return Ok((node, d));
            }
        }
    }

    fn invocation(&mut self, base: Option<Node>) -> Result<P, FhirPathError> {
        let pos = self.pos();
        let (name, delimited) = match self.peek() {
            Some(Tok::Ident(w, q)) => (w.clone(), *q),
            Some(Tok::Special(s)) if base.is_none() => {
                let s = s.clone();
                self.i += 1;
                return Ok((Node::Special(s), 1));
            }
            _ => return Err(self.err("expected an identifier")),
        };
        self.i += 1;
        let base = base.map(Box::new);
        if delimited || !self.is_sym("(") {
            return Ok((Node::Member(base, name), 1));
        }
        self.i += 1;
        let Some((min, max)) = arity(&name) else {
            return Err(FhirPathError::Unsupported(format!(
                "function '{name}' is not supported"
            )));
        };
        let mut args = Vec::new();
        let mut d = 1;
        if !self.is_sym(")") {
            loop {
                let (a, ad) = if matches!(name.as_str(), "ofType" | "is" | "as") {
                    (Node::Type(self.type_name()?), 1)
                } else {
                    self.expr(0)?
                };
                d = d.max(ad);
                args.push(a);
                if self.is_sym(",") {
                    self.i += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(")")?;
        if args.len() < min || args.len() > max {
            return Err(FhirPathError::Parse {
                position: pos,
                message: format!("function '{name}' takes {min}..={max} arguments"),
            });
        }
        Ok((Node::Call(base, name, args), deeper(d, pos)?))
    }

    fn term(&mut self) -> Result<P, FhirPathError> {
        let pos = self.pos();
        let Some(tok) = self.peek().cloned() else {
            return Err(self.err("unexpected end of expression"));
        };
        let node = match tok {
            Tok::Num(text) => {
                self.i += 1;
                let value: f64 = text.parse().map_err(|_| self.err("bad number"))?;
                let unit = match self.peek() {
                    Some(Tok::Str(u)) => Some(u.clone()),
                    Some(Tok::Ident(w, false)) if CALENDAR.contains(&w.as_str()) => Some(w.clone()),
                    _ => None,
                };
                if let Some(u) = unit {
                    self.i += 1;
                    Node::Quantity(value, text, u)
                } else if text.contains('.') {
                    Node::Dec(value, text)
                } else {
                    Node::Int(text.parse().map_err(|_| FhirPathError::Parse {
                        position: pos,
                        message: "integer literal out of range".into(),
                    })?)
                }
            }
            Tok::Str(s) => {
                self.i += 1;
                Node::Str(s)
            }
            Tok::DateTime(s) => {
                let ok = match s.strip_prefix('T') {
                    Some(t) => Dt::parse(t, true).is_some(),
                    None => Dt::parse(s.trim_end_matches('T'), false).is_some(),
                };
                if !ok {
                    return Err(self.err("invalid date/time literal"));
                }
                self.i += 1;
                Node::DateTime(s)
            }
            Tok::Var(v) => {
                self.i += 1;
                Node::Var(v)
            }
            Tok::Ident(w, false) if w == "true" || w == "false" => {
                self.i += 1;
                Node::Bool(w == "true")
            }
            Tok::Sym("{") => {
                self.i += 1;
                self.expect("}")?;
                Node::Empty
            }
            Tok::Sym("(") => {
                self.i += 1;
                let (e, d) = self.expr(0)?;
                self.expect(")")?;
                return Ok((e, deeper(d, pos)?));
            }
            Tok::Ident(..) | Tok::Special(_) => return self.invocation(None),
            _ => return Err(self.err("unexpected token")),
        };
        Ok((node, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> String {
        parse(s).unwrap().to_string()
    }

    #[test]
    fn precedence_and_display() {
        assert_eq!(rt("a.b = 1 and c or d"), "(((a.b = 1) and c) or d)");
        assert_eq!(rt("1 + 2 * 3"), "(1 + (2 * 3))");
        assert_eq!(rt("x is Quantity"), "(x is Quantity)");
        assert_eq!(rt("value.ofType(FHIR.Quantity)"), "value.ofType(FHIR.Quantity)");
        assert_eq!(rt("name[0].given"), "name[0].given");
        assert_eq!(rt("-5 'mg'"), "-5 'mg'");
        assert_eq!(rt("a contains 'x' implies b"), "((a contains 'x') implies b)");
    }

    #[test]
    fn round_trip_is_stable() {
        for s in [
            "name.where(use = 'official' and given.exists()).family | {}",
            "`div`.x[1 + 1] ~ @2014-01-01",
            "%resource.id & $this",
        ] {
            let once = rt(s);
            assert_eq!(rt(&once), once);
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(parse("a.foo()"), Err(FhirPathError::Unsupported(m)) if m.contains("foo")));
        assert!(matches!(parse("a ="), Err(FhirPathError::Parse { .. })));
        assert!(parse("first(1, 2, 3)").is_err());
        assert!(parse("").is_err());
        let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
        assert!(parse(&deep).is_err());
        let long = vec!["a"; 10_000].join(".");
        assert!(parse(&long).is_err());
        let chain = vec!["1"; 10_000].join("+");
        assert!(parse(&chain).is_err());
        assert!(parse(&"-".repeat(10_000)).is_err());
    }
}
