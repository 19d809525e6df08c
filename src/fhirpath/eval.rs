//! Tree-walking evaluator: paths, indexers, variables and operators over collections.
//!
//! It must not panic or recurse deeper than the (parser-bounded) syntax tree; JSON
//! traversal here is one level per step. Function calls are delegated to `functions`.

use super::FhirPathError;
use super::ast::{BinOp, Node};
use super::datetime::Dt;
use super::functions;
use super::value::{Item, compare, equals, equivalent};
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

/// Evaluation context: the root resource and lambda variables. `'c` is how long the context
/// is lent, `'a` how long the resource's JSON is (what the items borrow).
#[derive(Clone, Copy)]
pub struct Ctx<'c, 'a> {
    pub root: &'c Item<'a>,
    pub this: Option<&'c Item<'a>>,
    pub index: Option<usize>,
}

pub type Coll<'a> = Vec<Item<'a>>;

/// Evaluate `node` against the focus collection.
pub fn eval<'a>(node: &Node, ctx: Ctx<'_, 'a>, focus: &[Item<'a>]) -> Result<Coll<'a>, FhirPathError> {
    Ok(match node {
        Node::Empty => vec![],
        Node::Bool(b) => vec![Item::Bool(*b)],
        Node::Int(i) => vec![Item::Int(*i)],
        Node::Dec(d, _) => vec![Item::Dec(*d)],
        Node::Str(s) => vec![Item::Str(s.clone())],
        Node::DateTime(s) => vec![datetime_literal(s)],
        Node::Quantity(v, _, u) => vec![Item::Quantity(*v, u.clone())],
        Node::Type(t) => vec![Item::Str(t.clone())],
        Node::Special(s) => match s.as_str() {
            "this" => ctx.this.map_or_else(|| focus.to_vec(), |t| vec![t.clone()]),
            "index" => ctx.index.map(|i| Item::Int(i as i64)).into_iter().collect(),
            "total" => vec![],
            other => return Err(FhirPathError::Eval(format!("unknown variable ${other}"))),
        },
        Node::Var(v) => variable(v, ctx)?,
        Node::Member(base, name) => {
            let input = match base {
                Some(b) => eval(b, ctx, focus)?,
                None => focus.to_vec(),
            };
            let mut out = Vec::new();
            for item in &input {
                member(item, name, &mut out);
            }
            out
        }
        Node::Call(base, name, args) => {
            let input = match base {
                Some(b) => eval(b, ctx, focus)?,
                None => focus.to_vec(),
            };
            functions::call(name, args, input, ctx, focus)?
        }
        Node::Indexer(base, idx) => {
            let input = eval(base, ctx, focus)?;
            let i = eval(idx, ctx, focus)?;
            match single(&i)?.map(Item::prim) {
                None => vec![],
                Some(Item::Int(n)) => usize::try_from(n)
                    .ok()
                    .and_then(|n| input.into_iter().nth(n))
                    .into_iter()
                    .collect(),
                Some(_) => return Err(FhirPathError::Eval("indexer must be an integer".into())),
            }
        }
        Node::Neg(e, neg) => {
            let v = eval(e, ctx, focus)?;
            match single(&v)?.map(Item::prim) {
                None => vec![],
                Some(_) if !neg => v,
                Some(Item::Int(i)) => vec![Item::Int(i.checked_neg().ok_or_else(overflow)?)],
                Some(Item::Dec(d)) => vec![Item::Dec(-d)],
                Some(Item::Quantity(q, u)) => vec![Item::Quantity(-q, u)],
                Some(_) => return Err(FhirPathError::Eval("cannot negate a non-number".into())),
            }
        }
        Node::TypeOp(is, e, t) => {
            let v = eval(e, ctx, focus)?;
            if *is {
                match single(&v)? {
                    None => vec![],
                    Some(i) => vec![Item::Bool(i.is_type(t))],
                }
            } else {
                v.into_iter().filter(|i| i.is_type(t)).collect()
            }
        }
        Node::Binary(op, l, r) => binary(*op, l, r, ctx, focus)?,
    })
}

fn overflow() -> FhirPathError {
    FhirPathError::Eval("integer overflow".into())
}

fn datetime_literal(s: &str) -> Item<'static> {
    if let Some(t) = s.strip_prefix('T') {
        Item::Time(t.to_string())
    } else if s.contains('T') {
        Item::DateTime(s.trim_end_matches('T').to_string())
    } else {
        Item::Date(s.to_string())
    }
}

fn variable<'a>(v: &str, ctx: Ctx<'_, 'a>) -> Result<Coll<'a>, FhirPathError> {
    let s = |x: &str| Ok(vec![Item::Str(x.to_string())]);
    match v {
        "resource" | "context" | "rootResource" => Ok(vec![ctx.root.clone()]),
        "ucum" => s("http://unitsofmeasure.org"),
        "sct" => s("http://snomed.info/sct"),
        "loinc" => s("http://loinc.org"),
        _ => {
            if let Some(x) = v.strip_prefix("vs-") {
                s(&format!("http://hl7.org/fhir/ValueSet/{x}"))
            } else if let Some(x) = v.strip_prefix("ext-") {
                s(&format!("http://hl7.org/fhir/StructureDefinition/{x}"))
            } else {
                Err(FhirPathError::Eval(format!("unknown environment variable %{v}")))
            }
        }
    }
}

/// Push children named `name` of `item` (arrays flattened, choice types resolved).
pub fn member<'a>(item: &Item<'a>, name: &str, out: &mut Coll<'a>) {
    let Item::Node(node, _) = item else {
        return;
    };
    let Value::Object(o) = node.as_ref() else {
        return;
    };
    // The key holding the member, and the type its choice suffix names.
    let found = match o.get_key_value(name) {
        Some((k, _)) => Some((k.as_str(), None)),
        None => o.keys().find_map(|k| {
            k.strip_prefix(name)
                .filter(|suffix| suffix.starts_with(|c: char| c.is_ascii_uppercase()))
                .map(|suffix| (k.as_str(), Some(Item::choice_type(suffix))))
        }),
    };
    let Some((key, hint)) = found else {
        if o.get("resourceType").and_then(Value::as_str) == Some(name) {
            out.push(item.clone());
        }
        return;
    };
    // Borrowed JSON lends its children; JSON made during evaluation gives copies.
    match node {
        Cow::Borrowed(v) => push_children(&v[key], hint, out, Cow::Borrowed),
        Cow::Owned(v) => push_children(&v[key], hint, out, |c: &Value| Cow::Owned(c.clone())),
    }
}

/// Pushes a member's value (an array flattened, nulls left out) as items.
fn push_children<'v, 'a>(
    v: &'v Value,
    hint: Option<String>,
    out: &mut Coll<'a>,
    lend: impl Fn(&'v Value) -> Cow<'a, Value>,
) {
    match v {
        Value::Array(a) => out.extend(
            a.iter()
                .filter(|x| !x.is_null())
                .map(|x| Item::node(lend(x), hint.clone())),
        ),
        Value::Null => {}
        v => out.push(Item::node(lend(v), hint)),
    }
}

/// The single item of a collection; more than one is an error.
pub fn single<'i, 'a>(c: &'i [Item<'a>]) -> Result<Option<&'i Item<'a>>, FhirPathError> {
    match c {
        [] => Ok(None),
        [x] => Ok(Some(x)),
        _ => Err(FhirPathError::Eval(
            "expected a single item, got a collection".into(),
        )),
    }
}

/// Singleton evaluation to boolean: empty -> None, single boolean -> it, other single -> true.
pub fn to_bool(c: &[Item]) -> Result<Option<bool>, FhirPathError> {
    Ok(match single(c)?.map(Item::prim) {
        None => None,
        Some(Item::Bool(b)) => Some(b),
        Some(_) => Some(true),
    })
}

fn bool_coll(b: Option<bool>) -> Coll<'static> {
    b.map(Item::Bool).into_iter().collect()
}

/// Union without duplicates (by `=`), keeping first-seen order.
pub fn union<'a>(mut a: Coll<'a>, b: Coll<'a>) -> Coll<'a> {
    let mut out: Coll<'a> = Vec::new();
    for i in a.drain(..).chain(b) {
        if !out.iter().any(|o| equals(o, &i) == Some(true)) {
            out.push(i);
        }
    }
    out
}

fn binary<'a>(
    op: BinOp,
    l: &Node,
    r: &Node,
    ctx: Ctx<'_, 'a>,
    focus: &[Item<'a>],
) -> Result<Coll<'a>, FhirPathError> {
    let a = eval(l, ctx, focus)?;
    // Short-circuit forms of the boolean operators (three-valued logic).
    match op {
        BinOp::And | BinOp::Or | BinOp::Implies => {
            let x = to_bool(&a)?;
            match (op, x) {
                (BinOp::And, Some(false)) => return Ok(bool_coll(Some(false))),
                (BinOp::Or, Some(true)) => return Ok(bool_coll(Some(true))),
                (BinOp::Implies, Some(false)) => return Ok(bool_coll(Some(true))),
                _ => {}
            }
            let y = to_bool(&eval(r, ctx, focus)?)?;
            let res = match op {
                BinOp::And => match (x, y) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
                BinOp::Or => match (x, y) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
                _ => match (x, y) {
                    (_, Some(true)) => Some(true),
                    (Some(true), Some(false)) => Some(false),
                    _ => None,
                },
            };
            return Ok(bool_coll(res));
        }
        _ => {}
    }
    let b = eval(r, ctx, focus)?;
    Ok(match op {
        BinOp::Union => union(a, b),
        BinOp::Xor => match (to_bool(&a)?, to_bool(&b)?) {
            (Some(x), Some(y)) => bool_coll(Some(x != y)),
            _ => vec![],
        },
        BinOp::Eq | BinOp::Ne => {
            if a.is_empty() || b.is_empty() {
                return Ok(vec![]);
            }
            let mut res = Some(a.len() == b.len());
            if a.len() == b.len() {
                for (x, y) in a.iter().zip(&b) {
                    match equals(x, y) {
                        Some(true) => {}
                        Some(false) => {
                            res = Some(false);
                            break;
                        }
                        None => res = None,
                    }
                }
            }
            bool_coll(res.map(|r| r == (op == BinOp::Eq)))
        }
        BinOp::Equiv | BinOp::NotEquiv => {
            let eq = a.len() == b.len()
                && a.iter().all(|x| b.iter().any(|y| equivalent(x, y)))
                && b.iter().all(|y| a.iter().any(|x| equivalent(x, y)));
            bool_coll(Some(eq == (op == BinOp::Equiv)))
        }
        BinOp::In | BinOp::Contains => {
            let (needle, hay) = if op == BinOp::In { (&a, &b) } else { (&b, &a) };
            match single(needle)? {
                None => vec![],
                Some(n) => bool_coll(Some(hay.iter().any(|h| equals(h, n) == Some(true)))),
            }
        }
        BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => match (single(&a)?, single(&b)?) {
            (Some(x), Some(y)) => {
                let res = compare(x, y)?.map(|o| match op {
                    BinOp::Lt => o == Ordering::Less,
                    BinOp::Gt => o == Ordering::Greater,
                    BinOp::Le => o != Ordering::Greater,
                    _ => o != Ordering::Less,
                });
                bool_coll(res)
            }
            _ => vec![],
        },
        BinOp::Concat => {
            let s = |c: &[Item]| -> Result<String, FhirPathError> {
                Ok(single(c)?
                    .and_then(|i| i.as_str().map(str::to_string))
                    .unwrap_or_default())
            };
            vec![Item::Str(s(&a)? + &s(&b)?)]
        }
        _ => match (single(&a)?, single(&b)?) {
            (Some(x), Some(y)) => arith(op, x.prim(), y.prim())?.into_iter().collect(),
            _ => vec![],
        },
    })
}

fn arith<'a>(op: BinOp, x: Item<'a>, y: Item<'a>) -> Result<Option<Item<'a>>, FhirPathError> {
    use Item::{Dec, Int, Quantity, Str};
    let bad = || FhirPathError::Eval(format!("operator {} not defined for these operands", op.symbol()));
    Ok(Some(match (op, x, y) {
        (BinOp::Add, Str(a), Str(b)) => Str(a + &b),
        (_, Int(a), Int(b)) => match op {
            BinOp::Add => Int(a.checked_add(b).ok_or_else(overflow)?),
            BinOp::Sub => Int(a.checked_sub(b).ok_or_else(overflow)?),
            BinOp::Mul => Int(a.checked_mul(b).ok_or_else(overflow)?),
            BinOp::Div if b == 0 => return Ok(None),
            BinOp::Div => Dec(a as f64 / b as f64),
            BinOp::IntDiv => match a.checked_div(b) {
                Some(v) => Int(v),
                None => return Ok(None),
            },
            _ => match a.checked_rem(b) {
                Some(v) => Int(v),
                None => return Ok(None),
            },
        },
        (_, a @ (Int(_) | Dec(_)), b @ (Int(_) | Dec(_))) => {
            let f = |i: Item| {
                if let Int(v) = i {
                    v as f64
                } else if let Dec(v) = i {
                    v
                } else {
                    0.0
                }
            };
            let (a, b) = (f(a), f(b));
            match op {
                BinOp::Add => Dec(a + b),
                BinOp::Sub => Dec(a - b),
                BinOp::Mul => Dec(a * b),
                _ if b == 0.0 => return Ok(None),
                BinOp::Div => Dec(a / b),
                BinOp::IntDiv => Int((a / b).trunc() as i64),
                _ => Dec(a % b),
            }
        }
        (BinOp::Add | BinOp::Sub, Quantity(a, u), Quantity(b, w)) if u == w => {
            Quantity(if op == BinOp::Add { a + b } else { a - b }, u)
        }
        (
            BinOp::Add | BinOp::Sub,
            d @ (Item::Date(_) | Item::DateTime(_) | Item::Time(_)),
            Quantity(v, u),
        ) => {
            let time = matches!(d, Item::Time(_));
            let text = match &d {
                Item::Date(t) | Item::DateTime(t) | Item::Time(t) => t.clone(),
                _ => String::new(),
            };
            let v = if op == BinOp::Sub { -v } else { v };
            let r = Dt::parse(&text, time)
                .and_then(|dt| dt.add(v, &u))
                .ok_or_else(|| FhirPathError::Eval(format!("cannot add '{u}' to {text}")))?;
            match d {
                Item::Date(_) => Item::Date(r.format()),
                Item::DateTime(_) => Item::DateTime(r.format()),
                _ => Item::Time(r.format()),
            }
        }
        _ => return Err(bad()),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::Expr;
    use serde_json::json;

    fn ev(e: &str) -> Vec<serde_json::Value> {
        let r = json!({"resourceType": "Patient", "name": [{"given": ["A", "B"]}, {"given": ["C"]}],
            "valueQuantity": {"value": 1, "unit": "kg"}});
        Expr::parse(e).unwrap().evaluate(&r).unwrap()
    }

    #[test]
    fn paths_and_operators() {
        assert_eq!(ev("Patient.name.given"), vec![json!("A"), json!("B"), json!("C")]);
        assert_eq!(ev("name.given[2]"), vec![json!("C")]);
        assert_eq!(ev("value.unit"), vec![json!("kg")]);
        assert_eq!(ev("1 + 2 * 3 = 7"), vec![json!(true)]);
        assert_eq!(ev("{} and false"), vec![json!(false)]);
        assert_eq!(ev("{} or false"), Vec::<serde_json::Value>::new());
        assert_eq!(ev("(1 | 2 | 1).count()"), vec![json!(2)]);
        assert_eq!(ev("'a' & {} + 'b'"), vec![json!("ab")]);
        assert_eq!(ev("'B' in name.given"), vec![json!(true)]);
    }

    #[test]
    fn errors_instead_of_panics() {
        let r = json!({});
        for e in [
            "9223372036854775807 + 1",
            "1 < 'a'",
            "-(-9223372036854775807 - 1)",
        ] {
            assert!(super::super::Expr::parse(e).unwrap().evaluate(&r).is_err(), "{e}");
        }
    }
}
