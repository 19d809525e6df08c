//! FHIRPath (a subset of FHIRPath R4 / N1) over `serde_json::Value`: compile once with
//! `Expr::parse`, evaluate many times with `Expr::evaluate`.
//!
//! This module must not do I/O, hold global state, or panic on any input: hostile
//! expressions and JSON produce `FhirPathError`, and expression nesting is bounded.
//! See docs/fhirpath.md for what the subset covers.

mod ast;
mod convert;
mod datetime;
mod eval;
mod functions;
mod lexer;
mod parser;
mod value;

use std::borrow::Cow;
use std::fmt;

/// Errors from parsing or evaluating a FHIRPath expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FhirPathError {
    /// Syntax error at a byte offset of the source.
    #[error("FHIRPath parse error at {position}: {message}")]
    Parse { position: usize, message: String },
    /// Runtime error (type mismatch, collection where a single item was needed, ...).
    #[error("FHIRPath evaluation error: {0}")]
    Eval(String),
    /// A function or feature outside the supported subset (named in the message).
    #[error("FHIRPath feature not supported: {0}")]
    Unsupported(String),
}

/// A compiled FHIRPath expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    root: ast::Node,
}

impl Expr {
    /// Compile an expression. Unknown functions yield `Unsupported` naming the function.
    pub fn parse(src: &str) -> Result<Expr, FhirPathError> {
        Ok(Expr {
            root: parser::parse(src)?,
        })
    }

    /// Evaluate against a resource (the resource is `%resource`, `%context` and the focus).
    pub fn evaluate(&self, resource: &serde_json::Value) -> Result<Vec<serde_json::Value>, FhirPathError> {
        self.evaluate_on(resource, resource)
    }

    /// Evaluate with `focus` as the starting collection (an element inside `resource`, such as
    /// the name a mapping's `foreach` is on); `resource` stays `%resource`.
    pub fn evaluate_on(
        &self,
        resource: &serde_json::Value,
        focus: &serde_json::Value,
    ) -> Result<Vec<serde_json::Value>, FhirPathError> {
        let root = value::Item::node(Cow::Borrowed(resource), None);
        let start = value::Item::node(Cow::Borrowed(focus), None);
        let ctx = eval::Ctx {
            root: &root,
            this: None,
            index: None,
        };
        eval::eval(&self.root, ctx, std::slice::from_ref(&start))?
            .iter()
            .map(value::Item::to_json)
            .collect()
    }

    /// Names of the functions this expression calls, each once, in first-seen order.
    pub fn functions(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.root.collect_functions(&mut out);
        out
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn public_api() {
        let e = Expr::parse("name.where(use = 'official').given.first().exists()").unwrap();
        assert_eq!(e.functions(), vec!["where", "first", "exists"]);
        let again = Expr::parse(&e.to_string()).unwrap();
        assert_eq!(again, e);
        let p = json!({"resourceType": "Patient", "name": [{"use": "official", "given": ["x"]}]});
        assert_eq!(e.evaluate(&p).unwrap(), vec![json!(true)]);
        assert!(
            matches!(Expr::parse("a.frobnicate()"), Err(FhirPathError::Unsupported(m)) if m.contains("frobnicate"))
        );
    }

    #[test]
    fn deepest_accepted_expressions_do_not_overflow() {
        let r = json!({"resourceType": "Patient", "a": [1, 2]});
        let chain = format!("a{}", ".first()".repeat(120));
        assert_eq!(Expr::parse(&chain).unwrap().evaluate(&r).unwrap(), vec![json!(1)]);
        let mut nested = String::from("a");
        for _ in 0..30 {
            nested = format!("iif(true, where({nested}.exists()), {{}})");
        }
        let e = Expr::parse(&nested).unwrap();
        assert_eq!(e.evaluate(&r).unwrap().len(), 1);
        assert!(Expr::parse(&format!("a{}", ".first()".repeat(200))).is_err());
    }

    #[test]
    fn hostile_json_is_fine() {
        let mut v = json!(1);
        for _ in 0..100 {
            v = json!({"a": [v]});
        }
        let e = Expr::parse("descendants().count()").unwrap();
        assert_eq!(e.evaluate(&v).unwrap(), vec![json!(100)]);
    }
}
