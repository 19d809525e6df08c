//! The supported FHIRPath function library (`where`, `first`, `exists`, string functions, ...)
//! and its arity table, which the parser uses to reject unsupported functions by name.
//!
//! It must not parse, must not panic on any input (string indices are char-based and
//! checked) and must not loop without bound: every traversal is over finite collections.

use super::FhirPathError;
use super::ast::Node;
use super::datetime::{Dt, now_utc};
use super::eval::{Coll, Ctx, eval, member, single, to_bool, union};
use super::value::{Item, equals};
use serde_json::Value;

/// (min, max) argument counts of every supported function; `None` = unsupported.
pub fn arity(name: &str) -> Option<(usize, usize)> {
    Some(match name {
        "empty" | "count" | "first" | "last" | "tail" | "single" | "distinct" | "isDistinct" | "not"
        | "lower" | "upper" | "length" | "toString" | "toInteger" | "toDecimal" | "toBoolean"
        | "convertsToString" | "convertsToInteger" | "convertsToDecimal" | "convertsToBoolean"
        | "children" | "descendants" | "allTrue" | "anyTrue" | "allFalse" | "anyFalse" | "hasValue"
        | "toChars" | "abs" | "ceiling" | "floor" | "truncate" | "now" | "today" | "sqrt" | "exp" | "ln"
        | "trim" | "toDate" | "toDateTime" | "toTime" | "convertsToDate" | "convertsToDateTime"
        | "convertsToTime" => (0, 0),
        "split" => (1, 1),
        "join" => (0, 1),
        "exists" => (0, 1),
        "where" | "select" | "all" | "ofType" | "is" | "as" | "extension" | "startsWith" | "endsWith"
        | "contains" | "skip" | "take" | "indexOf" | "union" | "combine" | "intersect" | "exclude"
        | "subsetOf" | "supersetOf" | "log" | "power" => (1, 1),
        "trace" | "substring" | "round" => (0, 2),
        "replace" => (2, 2),
        "iif" => (2, 3),
        _ => return None,
    })
}

pub(super) fn err(m: impl Into<String>) -> FhirPathError {
    FhirPathError::Eval(m.into())
}

pub(super) fn one(b: bool) -> Coll<'static> {
    vec![Item::Bool(b)]
}

/// Evaluate a lambda argument for each item, with `$this`/`$index` bound.
fn each<'i, 'a>(
    arg: &'i Node,
    input: &'i [Item<'a>],
    ctx: Ctx<'i, 'a>,
) -> impl Iterator<Item = Result<(&'i Item<'a>, Coll<'a>), FhirPathError>> + 'i {
    input.iter().enumerate().map(move |(i, item)| {
        let c = Ctx {
            root: ctx.root,
            this: Some(item),
            index: Some(i),
        };
        eval(arg, c, std::slice::from_ref(item)).map(|r| (item, r))
    })
}

pub(super) fn arg_val<'a>(
    args: &[Node],
    i: usize,
    ctx: Ctx<'_, 'a>,
    focus: &[Item<'a>],
) -> Result<Option<Item<'a>>, FhirPathError> {
    match args.get(i) {
        None => Ok(None),
        Some(a) => Ok(single(&eval(a, ctx, focus)?)?.map(Item::prim)),
    }
}

fn arg_str(
    args: &[Node],
    i: usize,
    ctx: Ctx<'_, '_>,
    focus: &[Item],
) -> Result<Option<String>, FhirPathError> {
    match arg_val(args, i, ctx, focus)? {
        None => Ok(None),
        Some(Item::Str(s)) => Ok(Some(s)),
        Some(_) => Err(err("expected a string argument")),
    }
}

fn arg_int(args: &[Node], i: usize, ctx: Ctx<'_, '_>, focus: &[Item]) -> Result<Option<i64>, FhirPathError> {
    match arg_val(args, i, ctx, focus)? {
        None => Ok(None),
        Some(Item::Int(n)) => Ok(Some(n)),
        Some(_) => Err(err("expected an integer argument")),
    }
}

/// The single string of the input, if any.
fn input_str(input: &[Item]) -> Result<Option<String>, FhirPathError> {
    match single(input)? {
        None => Ok(None),
        Some(i) => match i.as_str() {
            Some(s) => Ok(Some(s.to_string())),
            None => Err(err("expected a string")),
        },
    }
}

fn type_arg(args: &[Node]) -> Result<&str, FhirPathError> {
    match args.first() {
        Some(Node::Type(t)) => Ok(t),
        _ => Err(err("expected a type name")),
    }
}

pub(super) fn num(i: &Item) -> Option<f64> {
    match i.prim() {
        Item::Int(v) => Some(v as f64),
        Item::Dec(v) => Some(v),
        _ => None,
    }
}

/// Call function `name` on `input`; `focus` is what arguments are evaluated against.
pub fn call<'a>(
    name: &str,
    args: &[Node],
    input: Coll<'a>,
    ctx: Ctx<'_, 'a>,
    focus: &[Item<'a>],
) -> Result<Coll<'a>, FhirPathError> {
    let s1 = || input_str(&input);
    Ok(match name {
        "empty" => one(input.is_empty()),
        "exists" => match args.first() {
            None => one(!input.is_empty()),
            Some(a) => {
                let mut found = false;
                for r in each(a, &input, ctx) {
                    if to_bool(&r?.1)? == Some(true) {
                        found = true;
                        break;
                    }
                }
                one(found)
            }
        },
        "all" => {
            let mut ok = true;
            for r in each(
                args.first().ok_or_else(|| err("all needs criteria"))?,
                &input,
                ctx,
            ) {
                if to_bool(&r?.1)? != Some(true) {
                    ok = false;
                    break;
                }
            }
            one(ok)
        }
        "where" => {
            let mut out = Vec::new();
            for r in each(
                args.first().ok_or_else(|| err("where needs criteria"))?,
                &input,
                ctx,
            ) {
                let (item, res) = r?;
                if to_bool(&res)? == Some(true) {
                    out.push(item.clone());
                }
            }
            out
        }
        "select" => {
            let mut out = Vec::new();
            for r in each(
                args.first().ok_or_else(|| err("select needs a projection"))?,
                &input,
                ctx,
            ) {
                out.extend(r?.1);
            }
            out
        }
        "iif" => {
            let this = single(&input)?;
            let c = Ctx {
                root: ctx.root,
                this,
                index: ctx.index,
            };
            let f = this.map_or(focus, std::slice::from_ref);
            let cond = match args.first() {
                Some(a) => match single(&eval(a, c, f)?)?.map(Item::prim) {
                    None => None,
                    Some(Item::Bool(b)) => Some(b),
                    Some(_) => return Err(err("iif criterion must be boolean")),
                },
                None => None,
            };
            match args.get(if cond == Some(true) { 1 } else { 2 }) {
                Some(a) => eval(a, c, f)?,
                None => vec![],
            }
        }
        "trace" => input,
        "count" => vec![Item::Int(input.len() as i64)],
        "first" => input.into_iter().take(1).collect(),
        "last" => input.into_iter().last().into_iter().collect(),
        "tail" => input.into_iter().skip(1).collect(),
        "single" => single(&input)?.cloned().into_iter().collect(),
        "skip" | "take" => {
            let n = arg_int(args, 0, ctx, focus)?.unwrap_or(0);
            let n = usize::try_from(n).unwrap_or(0);
            if name == "skip" {
                input.into_iter().skip(n).collect()
            } else {
                input.into_iter().take(n).collect()
            }
        }
        "distinct" => union(input, vec![]),
        "isDistinct" => one(union(input.clone(), vec![]).len() == input.len()),
        "union" | "combine" | "intersect" | "exclude" | "subsetOf" | "supersetOf" => {
            let other = match args.first() {
                Some(a) => eval(a, ctx, focus)?,
                None => vec![],
            };
            let has = |c: &[Item], x: &Item| c.iter().any(|o| equals(o, x) == Some(true));
            match name {
                "union" => union(input, other),
                "combine" => input.into_iter().chain(other).collect(),
                "intersect" => union(input.into_iter().filter(|x| has(&other, x)).collect(), vec![]),
                "exclude" => input.into_iter().filter(|x| !has(&other, x)).collect(),
                "subsetOf" => one(input.iter().all(|x| has(&other, x))),
                _ => one(other.iter().all(|x| has(&input, x))),
            }
        }
        "allTrue" | "anyTrue" | "allFalse" | "anyFalse" => {
            let want = name.ends_with("True");
            if input.iter().any(|i| !matches!(i.prim(), Item::Bool(_))) {
                return Err(err(format!("{name} needs booleans")));
            }
            let hits = input.iter().filter(|i| i.prim() == Item::Bool(want)).count();
            one(if name.starts_with("all") {
                hits == input.len()
            } else {
                hits > 0
            })
        }
        "not" => match to_bool(&input)? {
            None => vec![],
            Some(b) => one(!b),
        },
        "ofType" => {
            let t = type_arg(args)?;
            input.into_iter().filter(|i| i.is_type(t)).collect()
        }
        "is" => match single(&input)? {
            None => vec![],
            Some(i) => one(i.is_type(type_arg(args)?)),
        },
        "as" => {
            let t = type_arg(args)?;
            input.into_iter().filter(|i| i.is_type(t)).collect()
        }
        "extension" => {
            let url = arg_str(args, 0, ctx, focus)?.unwrap_or_default();
            let mut exts = Vec::new();
            for i in &input {
                member(i, "extension", &mut exts);
            }
            exts.into_iter()
                .filter(|e| matches!(e, Item::Node(v, _) if v.get("url").and_then(Value::as_str) == Some(url.as_str())))
                .collect()
        }
        "hasValue" => {
            one(matches!(single(&input)?, Some(Item::Node(v, _)) if !v.is_object() && !v.is_array()))
        }
        "children" | "descendants" => {
            let mut out = Vec::new();
            let mut frontier = input;
            while !frontier.is_empty() {
                let mut next = Vec::new();
                for i in &frontier {
                    if let Item::Node(node, _) = i
                        && let Value::Object(o) = node.as_ref()
                    {
                        for k in o
                            .keys()
                            .filter(|k| !k.starts_with('_') && k.as_str() != "resourceType")
                        {
                            member(i, k, &mut next);
                        }
                    }
                }
                out.extend(next.iter().cloned());
                if name == "children" {
                    break;
                }
                frontier = next;
            }
            out
        }
        "startsWith" | "endsWith" | "contains" | "indexOf" => {
            let (Some(s), Some(a)) = (s1()?, arg_str(args, 0, ctx, focus)?) else {
                return Ok(vec![]);
            };
            match name {
                "startsWith" => one(s.starts_with(&a)),
                "endsWith" => one(s.ends_with(&a)),
                "contains" => one(s.contains(&a)),
                _ => vec![Item::Int(
                    s.find(&a).map_or(-1, |b| s[..b].chars().count() as i64),
                )],
            }
        }
        "lower" | "upper" | "length" | "toChars" => match s1()? {
            None => vec![],
            Some(s) => match name {
                "lower" => vec![Item::Str(s.to_lowercase())],
                "upper" => vec![Item::Str(s.to_uppercase())],
                "length" => vec![Item::Int(s.chars().count() as i64)],
                _ => s.chars().map(|c| Item::Str(c.to_string())).collect(),
            },
        },
        "substring" => {
            let Some(s) = s1()? else { return Ok(vec![]) };
            let Some(start) = arg_int(args, 0, ctx, focus)? else {
                return Ok(vec![]);
            };
            let len = arg_int(args, 1, ctx, focus)?;
            let n = s.chars().count() as i64;
            if start < 0 || start >= n {
                return Ok(vec![]);
            }
            let take = len.unwrap_or(n).max(0);
            let start = usize::try_from(start).unwrap_or(0);
            let take = usize::try_from(take).unwrap_or(0);
            vec![Item::Str(s.chars().skip(start).take(take).collect())]
        }
        "replace" => {
            let (Some(s), Some(a), Some(b)) = (
                s1()?,
                arg_str(args, 0, ctx, focus)?,
                arg_str(args, 1, ctx, focus)?,
            ) else {
                return Ok(vec![]);
            };
            if a.is_empty() {
                let mut out = b.clone();
                for c in s.chars() {
                    out.push(c);
                    out.push_str(&b);
                }
                vec![Item::Str(out)]
            } else {
                vec![Item::Str(s.replace(&a, &b))]
            }
        }
        "toString" | "convertsToString" | "toInteger" | "toDecimal" | "toBoolean" | "convertsToInteger"
        | "convertsToDecimal" | "convertsToBoolean" | "abs" | "ceiling" | "floor" | "truncate" | "sqrt"
        | "exp" | "ln" | "round" | "log" | "power" => super::convert::call(name, args, input, ctx, focus)?,
        "now" => vec![Item::DateTime(now_utc())],
        "today" => vec![Item::Date(now_utc().chars().take(10).collect())],
        "trim" => s1()?
            .map(|s| Item::Str(s.trim().to_string()))
            .into_iter()
            .collect(),
        "split" => {
            let (Some(s), Some(sep)) = (s1()?, arg_str(args, 0, ctx, focus)?) else {
                return Ok(vec![]);
            };
            if sep.is_empty() {
                s.chars().map(|c| Item::Str(c.to_string())).collect()
            } else {
                s.split(sep.as_str()).map(|p| Item::Str(p.to_string())).collect()
            }
        }
        "join" => {
            let sep = arg_str(args, 0, ctx, focus)?.unwrap_or_default();
            let parts: Option<Vec<&str>> = input.iter().map(Item::as_str).collect();
            let parts = parts.ok_or_else(|| err("join needs strings"))?;
            vec![Item::Str(parts.join(&sep))]
        }
        "toDate" | "toDateTime" | "toTime" | "convertsToDate" | "convertsToDateTime" | "convertsToTime" => {
            let Some(i) = single(&input)? else {
                return Ok(vec![]);
            };
            let target = name.trim_start_matches("convertsTo").trim_start_matches("to");
            let p = i.prim();
            let text = match &p {
                Item::Str(t) | Item::Date(t) | Item::DateTime(t) | Item::Time(t) => Some(t.clone()),
                _ => None,
            };
            let dt = text.and_then(|t| Dt::parse(&t, target == "Time").map(|d| (t, d)));
            let v = match (target, dt, &p) {
                ("Time", Some((t, _)), Item::Str(_) | Item::Time(_)) => Some(Item::Time(t)),
                ("Date", Some((t, _)), _) => {
                    Some(Item::Date(t.split('T').next().unwrap_or_default().to_string()))
                }
                ("DateTime", Some((t, _)), Item::Str(_) | Item::Date(_) | Item::DateTime(_)) => {
                    Some(Item::DateTime(t))
                }
                _ => None,
            };
            if name.starts_with("to") {
                v.into_iter().collect()
            } else {
                one(v.is_some())
            }
        }
        other => {
            return Err(FhirPathError::Unsupported(format!(
                "function '{other}' is not supported"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::Expr;
    use serde_json::{Value, json};

    fn ev(e: &str) -> Vec<Value> {
        let r = json!({"resourceType": "Patient",
            "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}, {"use": "usual", "given": ["Jim"]}],
            "telecom": [{"system": "phone", "value": "555"}, {"system": "email", "value": "a@b"}],
            "extension": [{"url": "http://x/race", "valueString": "r"}]});
        Expr::parse(e).unwrap().evaluate(&r).unwrap()
    }

    #[test]
    fn required_subset() {
        assert_eq!(ev("name.where(use = 'official').family"), vec![json!("Chalmers")]);
        assert_eq!(ev("telecom.where(system = 'phone').value"), vec![json!("555")]);
        assert_eq!(ev("name.first().given.last()"), vec![json!("James")]);
        assert_eq!(ev("name.exists(use = 'usual')"), vec![json!(true)]);
        assert_eq!(ev("extension('http://x/race').value"), vec![json!("r")]);
        assert_eq!(ev("extension.value.ofType(string)"), vec![json!("r")]);
        assert_eq!(ev("extension.value.ofType(Quantity).empty()"), vec![json!(true)]);
        assert_eq!(ev("name.family.lower().startsWith('cha')"), vec![json!(true)]);
        assert_eq!(ev("name.family.upper().contains('LM')"), vec![json!(true)]);
        assert_eq!(ev("name.given.count()"), vec![json!(3)]);
    }

    #[test]
    fn extras() {
        assert_eq!(ev("'abcdef'.substring(2, 2)"), vec![json!("cd")]);
        assert_eq!(ev("'héllo'.substring(10)"), Vec::<Value>::new());
        assert_eq!(ev("iif(true, 'a', 'b')"), vec![json!("a")]);
        assert_eq!(ev("'12'.toInteger() + 1"), vec![json!(13)]);
        assert_eq!(ev("name.select(given).skip(1).take(1)"), vec![json!("James")]);
        assert_eq!(ev("'aXbX'.replace('X', '-')"), vec![json!("a-b-")]);
        assert!(ev("descendants().count() > 10") == vec![json!(true)]);
    }
}
