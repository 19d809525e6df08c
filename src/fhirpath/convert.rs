//! Conversion and math functions (`toString`, `toInteger`, `convertsTo*`, `abs`, `round`,
//! `power`, ...), split out of `functions` to keep files small.
//!
//! It must not panic: float-to-integer casts saturate, non-finite results become empty,
//! and integer overflow is reported as an error.

use super::FhirPathError;
use super::ast::Node;
use super::eval::{Coll, Ctx, single};
use super::functions::{arg_val, err, num, one};
use super::value::Item;

/// Evaluate one of the conversion/math functions on `input`.
pub fn call<'a>(
    name: &str,
    args: &[Node],
    input: Coll<'a>,
    ctx: Ctx<'_, 'a>,
    focus: &[Item<'a>],
) -> Result<Coll<'a>, FhirPathError> {
    Ok(match name {
        "toString" | "convertsToString" => {
            let v = single(&input)?.and_then(Item::to_fp_string);
            if name == "toString" {
                v.map(Item::Str).into_iter().collect()
            } else if input.is_empty() {
                vec![]
            } else {
                one(v.is_some())
            }
        }
        "toInteger" | "toDecimal" | "toBoolean" | "convertsToInteger" | "convertsToDecimal"
        | "convertsToBoolean" => {
            let Some(i) = single(&input)? else {
                return Ok(vec![]);
            };
            let v = convert(
                &i.prim(),
                name.trim_start_matches("convertsTo").trim_start_matches("to"),
            );
            if name.starts_with("to") {
                v.into_iter().collect()
            } else {
                one(v.is_some())
            }
        }
        "abs" | "ceiling" | "floor" | "truncate" | "sqrt" | "exp" | "ln" | "round" | "log" | "power" => {
            let Some(i) = single(&input)? else {
                return Ok(vec![]);
            };
            let p = i.prim();
            if let (Item::Quantity(q, u), "abs") = (&p, name) {
                return Ok(vec![Item::Quantity(q.abs(), u.clone())]);
            }
            let x = num(&p).ok_or_else(|| err(format!("{name} needs a number")))?;
            let arg = arg_val(args, 0, ctx, focus)?.as_ref().and_then(num);
            let int = matches!(p, Item::Int(_));
            let r = match name {
                "abs" if int => {
                    return Ok(vec![Item::Int(if let Item::Int(v) = p {
                        v.checked_abs().ok_or_else(|| err("overflow"))?
                    } else {
                        0
                    })]);
                }
                "abs" => x.abs(),
                "ceiling" => return Ok(vec![Item::Int(x.ceil() as i64)]),
                "floor" => return Ok(vec![Item::Int(x.floor() as i64)]),
                "truncate" => return Ok(vec![Item::Int(x.trunc() as i64)]),
                "sqrt" => x.sqrt(),
                "exp" => x.exp(),
                "ln" => x.ln(),
                "log" => x.log(arg.unwrap_or(10.0)),
                "power" if int && arg.is_some_and(|a| a.fract() == 0.0 && a >= 0.0) => {
                    return Ok(vec![Item::Int(x.powf(arg.unwrap_or(1.0)) as i64)]);
                }
                "power" => x.powf(arg.unwrap_or(1.0)),
                _ => {
                    let f = 10f64.powi(arg.unwrap_or(0.0).clamp(0.0, 15.0) as i32);
                    (x * f).round() / f
                }
            };
            if r.is_finite() { vec![Item::Dec(r)] } else { vec![] }
        }
        other => {
            return Err(FhirPathError::Unsupported(format!(
                "function '{other}' is not supported"
            )));
        }
    })
}

fn convert<'a>(i: &Item<'a>, to: &str) -> Option<Item<'a>> {
    match (to, i) {
        ("Integer", Item::Int(v)) => Some(Item::Int(*v)),
        ("Integer", Item::Bool(b)) => Some(Item::Int(i64::from(*b))),
        ("Integer", Item::Str(s)) => s.parse().ok().map(Item::Int),
        ("Decimal", Item::Int(v)) => Some(Item::Dec(*v as f64)),
        ("Decimal", Item::Dec(v)) => Some(Item::Dec(*v)),
        ("Decimal", Item::Bool(b)) => Some(Item::Dec(if *b { 1.0 } else { 0.0 })),
        ("Decimal", Item::Str(s)) => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && !s.contains(['e', 'E', 'i', 'n']))
            .map(Item::Dec),
        ("Boolean", Item::Bool(b)) => Some(Item::Bool(*b)),
        ("Boolean", Item::Int(1)) => Some(Item::Bool(true)),
        ("Boolean", Item::Int(0)) => Some(Item::Bool(false)),
        ("Boolean", Item::Dec(d)) if *d == 1.0 || *d == 0.0 => Some(Item::Bool(*d == 1.0)),
        ("Boolean", Item::Str(s)) => match s.to_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(Item::Bool(true)),
            "false" | "f" | "no" | "n" | "0" | "0.0" => Some(Item::Bool(false)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Expr;
    use serde_json::{Value, json};

    fn ev(e: &str) -> Vec<Value> {
        Expr::parse(e).unwrap().evaluate(&json!({})).unwrap()
    }

    #[test]
    fn conversions_and_math() {
        assert_eq!(ev("'12'.toInteger()"), vec![json!(12)]);
        assert_eq!(ev("'x'.convertsToInteger()"), vec![json!(false)]);
        assert_eq!(ev("1.5.toString()"), vec![json!("1.5")]);
        assert_eq!(ev("'yes'.toBoolean()"), vec![json!(true)]);
        assert_eq!(ev("(-5).abs()"), vec![json!(5)]);
        assert_eq!(ev("2.71828.round(2)"), vec![json!(2.72)]);
        assert_eq!(ev("(-1).sqrt()"), Vec::<Value>::new());
        assert!(
            Expr::parse("(-9223372036854775807 - 1).abs()")
                .unwrap()
                .evaluate(&json!({}))
                .is_err()
        );
    }
}
