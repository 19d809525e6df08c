//! The compiled FHIRPath syntax tree and its `Display` (which prints an equivalent expression).
//!
//! It must not evaluate anything or know about JSON; printing must round-trip through the
//! parser (binary operations are fully parenthesized to keep precedence explicit).

use std::fmt;

/// Binary operators, in FHIRPath spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::IntDiv => "div",
            BinOp::Mod => "mod",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Concat => "&",
            BinOp::Union => "|",
            BinOp::Lt => "<",
            BinOp::Gt => ">",
            BinOp::Le => "<=",
            BinOp::Ge => ">=",
            BinOp::Eq => "=",
            BinOp::Ne => "!=",
            BinOp::Equiv => "~",
            BinOp::NotEquiv => "!~",
            BinOp::In => "in",
            BinOp::Contains => "contains",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Xor => "xor",
            BinOp::Implies => "implies",
        }
    }
}

/// A node of the syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Empty,
    Bool(bool),
    Int(i64),
    /// Decimal literal: value and original text.
    Dec(f64, String),
    Str(String),
    /// Date/time literal text without `@` (e.g. `2014-01-01`, `T10:00`).
    DateTime(String),
    /// Quantity literal: value, value text, unit (UCUM code or calendar keyword).
    Quantity(f64, String, String),
    /// `$this`, `$index`, `$total`.
    Special(String),
    /// `%name`.
    Var(String),
    /// Member access on `base` (or on the focus when `None`).
    Member(Option<Box<Node>>, String),
    /// Function call on `base` (or on the focus when `None`).
    Call(Option<Box<Node>>, String, Vec<Node>),
    /// Type specifier argument (`Quantity`, `FHIR.string`, `System.Integer`).
    Type(String),
    Indexer(Box<Node>, Box<Node>),
    /// Unary `+` / `-`.
    Neg(Box<Node>, bool),
    Binary(BinOp, Box<Node>, Box<Node>),
    /// `x is T` (true) or `x as T` (false).
    TypeOp(bool, Box<Node>, String),
}

const KEYWORDS: [&str; 13] = [
    "and", "or", "xor", "implies", "is", "as", "div", "mod", "in", "contains", "true", "false", "not",
];

fn write_ident(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    let plain = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name);
    if plain {
        f.write_str(name)
    } else {
        write!(f, "`{}`", escape(name, '`'))
    }
}

fn escape(s: &str, quote: char) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Empty => f.write_str("{}"),
            Node::Bool(b) => write!(f, "{b}"),
            Node::Int(i) => write!(f, "{i}"),
            Node::Dec(_, t) => f.write_str(t),
            Node::Str(s) => write!(f, "'{}'", escape(s, '\'')),
            Node::DateTime(s) => write!(f, "@{s}"),
            Node::Quantity(_, t, u) => {
                if super::parser::CALENDAR.contains(&u.as_str()) {
                    write!(f, "{t} {u}")
                } else {
                    write!(f, "{t} '{}'", escape(u, '\''))
                }
            }
            Node::Special(s) => write!(f, "${s}"),
            Node::Var(s) => write!(f, "%`{}`", escape(s, '`')),
            Node::Member(base, name) => {
                if let Some(b) = base {
                    write!(f, "{b}.")?;
                }
                write_ident(f, name)
            }
            Node::Call(base, name, args) => {
                if let Some(b) = base {
                    write!(f, "{b}.")?;
                }
                write_ident(f, name)?;
                f.write_str("(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Node::Type(t) => f.write_str(t),
            Node::Indexer(b, i) => write!(f, "{b}[{i}]"),
            Node::Neg(e, neg) => write!(f, "({}{e})", if *neg { "-" } else { "+" }),
            Node::Binary(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Node::TypeOp(is, e, t) => write!(f, "({e} {} {t})", if *is { "is" } else { "as" }),
        }
    }
}

impl Node {
    /// Collect names of all functions called anywhere in this tree.
    pub fn collect_functions<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Node::Member(Some(b), _) => b.collect_functions(out),
            Node::Call(b, name, args) => {
                if let Some(b) = b {
                    b.collect_functions(out);
                }
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
                for a in args {
                    a.collect_functions(out);
                }
            }
            Node::Indexer(a, b) | Node::Binary(_, a, b) => {
                a.collect_functions(out);
                b.collect_functions(out);
            }
            Node::Neg(e, _) | Node::TypeOp(_, e, _) => e.collect_functions(out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let n = Node::Binary(
            BinOp::Eq,
            Box::new(Node::Member(None, "use".into())),
            Box::new(Node::Str("it's".into())),
        );
        assert_eq!(n.to_string(), "(use = 'it\\'s')");
        assert_eq!(Node::Member(None, "div".into()).to_string(), "`div`");
        assert_eq!(
            Node::Quantity(4.0, "4".into(), "days".into()).to_string(),
            "4 days"
        );
    }

    #[test]
    fn collects_functions_once() {
        let n = Node::Call(
            Some(Box::new(Node::Call(None, "first".into(), vec![]))),
            "first".into(),
            vec![Node::Call(None, "exists".into(), vec![])],
        );
        let mut v = Vec::new();
        n.collect_functions(&mut v);
        assert_eq!(v, vec!["first", "exists"]);
    }
}
