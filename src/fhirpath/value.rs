//! Runtime values of the evaluator: literals and JSON nodes that remember their FHIR type,
//! plus type tests, equality, equivalence, ordering and conversion back to JSON.
//!
//! It must not parse expressions nor panic: every comparison of incompatible values is
//! reported as `None`/error, never by unwrapping.

use super::FhirPathError;
use super::datetime::Dt;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// One item of a FHIRPath collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a> {
    Bool(bool),
    Int(i64),
    Dec(f64),
    Str(String),
    Date(String),
    DateTime(String),
    /// Time without the leading `T`.
    Time(String),
    /// Value and unit (UCUM code or calendar keyword).
    Quantity(f64, String),
    /// JSON taken from the input, with the FHIR type name when known (choice suffix, resourceType).
    /// Borrowed from the evaluated resource: a path step copies nothing.
    Node(Cow<'a, Value>, Option<String>),
}

const FHIR_PRIMITIVES: [&str; 20] = [
    "boolean",
    "integer",
    "string",
    "decimal",
    "uri",
    "url",
    "canonical",
    "base64Binary",
    "instant",
    "date",
    "dateTime",
    "time",
    "code",
    "oid",
    "id",
    "markdown",
    "unsignedInt",
    "positiveInt",
    "uuid",
    "integer64",
];

const QUANTITY_KINDS: [&str; 7] = [
    "Quantity",
    "Age",
    "Duration",
    "Distance",
    "Count",
    "SimpleQuantity",
    "MoneyQuantity",
];

impl<'a> Item<'a> {
    /// Wrap input JSON, deriving the type from `resourceType` when no hint is given.
    pub fn node(v: Cow<'a, Value>, hint: Option<String>) -> Item<'a> {
        let hint = hint.or_else(|| v.get("resourceType").and_then(Value::as_str).map(str::to_string));
        Item::Node(v, hint)
    }

    /// Type hint for a choice-element suffix (`Quantity`, `String` -> `string`).
    pub fn choice_type(suffix: &str) -> String {
        let mut c = suffix.chars();
        let lowered: String = c
            .next()
            .map(|f| f.to_lowercase().chain(c).collect())
            .unwrap_or_default();
        if FHIR_PRIMITIVES.contains(&lowered.as_str()) {
            lowered
        } else {
            suffix.to_string()
        }
    }

    /// Convert JSON primitives and quantity objects to literal form; others stay nodes.
    pub fn prim(&self) -> Item<'a> {
        let Item::Node(v, hint) = self else {
            return self.clone();
        };
        match v.as_ref() {
            Value::Bool(b) => Item::Bool(*b),
            Value::String(s) => Item::Str(s.clone()),
            Value::Number(n) => match n.as_i64() {
                Some(i) if hint.as_deref() != Some("decimal") => Item::Int(i),
                _ => n.as_f64().map_or(self.clone(), Item::Dec),
            },
            Value::Object(o) => {
                let quantity_like = hint
                    .as_deref()
                    .map_or(o.contains_key("unit") || o.contains_key("code"), |h| {
                        QUANTITY_KINDS.contains(&h)
                    });
                match o.get("value").and_then(Value::as_f64) {
                    Some(val) if quantity_like => {
                        let unit = o
                            .get("code")
                            .or_else(|| o.get("unit"))
                            .and_then(Value::as_str)
                            .unwrap_or("1");
                        Item::Quantity(val, unit.to_string())
                    }
                    _ => self.clone(),
                }
            }
            _ => self.clone(),
        }
    }

    /// The FHIR or System type name of this item, when known.
    pub fn type_name(&self) -> Option<String> {
        let n = match self {
            Item::Bool(_) => "Boolean",
            Item::Int(_) => "Integer",
            Item::Dec(_) => "Decimal",
            Item::Str(_) => "String",
            Item::Date(_) => "Date",
            Item::DateTime(_) => "DateTime",
            Item::Time(_) => "Time",
            Item::Quantity(..) => "Quantity",
            Item::Node(v, hint) => {
                if let Some(h) = hint {
                    return Some(h.clone());
                }
                match v.as_ref() {
                    Value::String(_) => "string",
                    Value::Bool(_) => "boolean",
                    Value::Number(n) if n.is_i64() => "integer",
                    Value::Number(_) => "decimal",
                    _ => return None,
                }
            }
        };
        Some(n.to_string())
    }

    /// `is(T)` semantics; `t` may be qualified with `FHIR.` or `System.`.
    pub fn is_type(&self, t: &str) -> bool {
        let (ns, bare) = match t.split_once('.') {
            Some((ns, b)) => (Some(ns), b),
            None => (None, t),
        };
        let Some(actual) = self.type_name() else {
            return false;
        };
        let is_node = matches!(self, Item::Node(..));
        if is_node && ns == Some("System") || !is_node && ns == Some("FHIR") {
            return false;
        }
        if actual == bare {
            return true;
        }
        let lower_eq = actual.eq_ignore_ascii_case(bare)
            && (FHIR_PRIMITIVES.iter().any(|p| p.eq_ignore_ascii_case(bare))
                || matches!(bare, "String" | "Boolean" | "Integer" | "Decimal"));
        lower_eq
            || (bare == "Quantity" && QUANTITY_KINDS.contains(&actual.as_str()))
            || (matches!(bare, "Resource" | "DomainResource")
                && matches!(self, Item::Node(v, _) if v.get("resourceType").is_some()))
    }

    /// String content for string functions (strings only, nodes included).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Item::Str(s) => Some(s),
            Item::Node(v, _) => v.as_str(),
            _ => None,
        }
    }

    /// `toString()` conversion.
    pub fn to_fp_string(&self) -> Option<String> {
        match self.prim() {
            Item::Bool(b) => Some(b.to_string()),
            Item::Int(i) => Some(i.to_string()),
            Item::Dec(d) => Some(fmt_dec(d)),
            Item::Str(s) | Item::Date(s) | Item::DateTime(s) => Some(s),
            Item::Time(s) => Some(s),
            Item::Quantity(v, u) => {
                let n = if v.fract() == 0.0 && v.abs() < 1e15 {
                    format!("{v}")
                } else {
                    fmt_dec(v)
                };
                if super::parser::CALENDAR.contains(&u.as_str()) {
                    Some(format!("{n} {u}"))
                } else {
                    Some(format!("{n} '{u}'"))
                }
            }
            Item::Node(..) => None,
        }
    }

    /// Convert to output JSON.
    pub fn to_json(&self) -> Result<Value, FhirPathError> {
        let num = |d: f64| {
            Number::from_f64(d)
                .map(Value::Number)
                .ok_or_else(|| FhirPathError::Eval("non-finite decimal".into()))
        };
        Ok(match self {
            Item::Bool(b) => Value::Bool(*b),
            Item::Int(i) => Value::from(*i),
            Item::Dec(d) => num(*d)?,
            Item::Str(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => Value::String(s.clone()),
            Item::Quantity(v, u) => {
                let mut m = Map::new();
                m.insert("value".into(), num(*v)?);
                m.insert("unit".into(), Value::String(u.clone()));
                Value::Object(m)
            }
            Item::Node(v, _) => v.as_ref().clone(),
        })
    }
}

/// Format a decimal without a trailing `.0` noise beyond what is needed.
pub fn fmt_dec(d: f64) -> String {
    let s = format!("{d}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

fn unit_norm(u: &str) -> &str {
    match u {
        "years" | "year" => "year",
        "months" | "month" => "month",
        "weeks" | "week" | "wk" => "week",
        "days" | "day" | "d" => "day",
        "hours" | "hour" | "h" => "hour",
        "minutes" | "minute" | "min" => "minute",
        "seconds" | "second" | "s" => "second",
        "milliseconds" | "millisecond" | "ms" => "millisecond",
        other => other,
    }
}

/// `=` on single items: `None` means "empty" (incomparable precision or types).
pub fn equals(a: &Item, b: &Item) -> Option<bool> {
    let (a, b) = (a.prim(), b.prim());
    Some(match (&a, &b) {
        (Item::Int(x), Item::Int(y)) => x == y,
        (Item::Int(_) | Item::Dec(_), Item::Int(_) | Item::Dec(_)) => close(num(&a)?, num(&b)?),
        (Item::Quantity(x, u), Item::Quantity(y, w)) => {
            let ((x, u), (y, w)) = (canon(*x, u), canon(*y, w));
            u == w && close(x, y)
        }
        (Item::Date(_) | Item::DateTime(_) | Item::Time(_), _)
        | (_, Item::Date(_) | Item::DateTime(_) | Item::Time(_))
            if as_dt(&a, &b).is_some() =>
        {
            let (x, y) = as_dt(&a, &b)?;
            x.compare(&y)? == Ordering::Equal
        }
        (Item::Node(x, _), Item::Node(y, _)) => x == y,
        _ => match (text(&a), text(&b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    })
}

/// Decimal equality tolerant of binary floating-point noise (`1.8 - 1.2 = 0.6`).
fn close(x: f64, y: f64) -> bool {
    (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1.0)
}

/// Both sides as date/times, when at least one is a date/time literal and the other parses.
fn as_dt(a: &Item, b: &Item) -> Option<(Dt, Dt)> {
    let time = matches!(a, Item::Time(_)) || matches!(b, Item::Time(_));
    let p = |i: &Item| match i {
        Item::Date(s) | Item::DateTime(s) | Item::Str(s) => Dt::parse(s, time),
        Item::Time(s) => Dt::parse(s, true),
        _ => None,
    };
    Some((p(a)?, p(b)?))
}

/// Convert a quantity to a canonical unit for comparison (small UCUM/calendar table).
fn canon(v: f64, u: &str) -> (f64, &str) {
    match unit_norm(u) {
        "mg" => (v / 1000.0, "g"),
        "kg" => (v * 1000.0, "g"),
        "cm" => (v / 100.0, "m"),
        "mm" => (v / 1000.0, "m"),
        "km" => (v * 1000.0, "m"),
        "week" => (v * 7.0, "day"),
        "hour" => (v * 3600.0, "second"),
        "minute" => (v * 60.0, "second"),
        "millisecond" => (v / 1000.0, "second"),
        n => (v, n),
    }
}

fn num(i: &Item) -> Option<f64> {
    match i {
        Item::Int(x) => Some(*x as f64),
        Item::Dec(x) => Some(*x),
        _ => None,
    }
}

fn text<'i>(i: &'i Item) -> Option<&'i str> {
    match i {
        Item::Str(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => Some(s),
        _ => None,
    }
}

/// `~` on single items (always a boolean).
pub fn equivalent(a: &Item, b: &Item) -> bool {
    let (a, b) = (a.prim(), b.prim());
    match (&a, &b) {
        (Item::Str(x), Item::Str(y)) => {
            let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
            norm(x) == norm(y)
        }
        (Item::Int(_) | Item::Dec(_), Item::Int(_) | Item::Dec(_)) => match (num(&a), num(&b)) {
            (Some(x), Some(y)) => {
                let digits = |i: &Item| match i {
                    Item::Dec(d) => fmt_dec(*d).split('.').nth(1).map_or(0, str::len),
                    _ => 0,
                };
                let p = digits(&a).min(digits(&b)).min(8) as i32;
                let f = 10f64.powi(p);
                (x * f).round() == (y * f).round()
            }
            _ => false,
        },
        (Item::Quantity(x, u), Item::Quantity(y, w)) => {
            let ((x, u), (y, w)) = (canon(*x, u), canon(*y, w));
            u == w && (x - y).abs() <= 0.01 * x.abs().max(y.abs())
        }
        _ => equals(&a, &b).unwrap_or(false),
    }
}

/// Ordering for `< > <= >=`: `Ok(None)` = empty result, `Err` = incomparable types.
pub fn compare(a: &Item, b: &Item) -> Result<Option<Ordering>, FhirPathError> {
    let (a, b) = (a.prim(), b.prim());
    match (&a, &b) {
        (Item::Int(x), Item::Int(y)) => Ok(Some(x.cmp(y))),
        (Item::Int(_) | Item::Dec(_), Item::Int(_) | Item::Dec(_)) => {
            Ok(num(&a).zip(num(&b)).and_then(|(x, y)| x.partial_cmp(&y)))
        }
        (Item::Quantity(x, u), Item::Quantity(y, w)) if canon(*x, u).1 == canon(*y, w).1 => {
            Ok(canon(*x, u).0.partial_cmp(&canon(*y, w).0))
        }
        (Item::Date(_) | Item::DateTime(_) | Item::Time(_), _)
        | (_, Item::Date(_) | Item::DateTime(_) | Item::Time(_))
            if as_dt(&a, &b).is_some() =>
        {
            Ok(as_dt(&a, &b).and_then(|(x, y)| x.compare(&y)))
        }
        (Item::Str(x), Item::Str(y))
        | (Item::Str(x), Item::Date(y) | Item::DateTime(y) | Item::Time(y))
        | (Item::Date(x) | Item::DateTime(x) | Item::Time(x), Item::Str(y))
        | (Item::Time(x), Item::Time(y)) => Ok(Some(x.cmp(y))),
        _ => Err(FhirPathError::Eval(format!(
            "cannot compare {} with {}",
            a.type_name().unwrap_or_default(),
            b.type_name().unwrap_or_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prim_and_types() {
        let q = Item::node(
            Cow::Owned(json!({"value": 185, "code": "[lb_av]"})),
            Some("Quantity".into()),
        );
        assert_eq!(q.prim(), Item::Quantity(185.0, "[lb_av]".into()));
        assert!(q.is_type("Quantity") && q.is_type("FHIR.Quantity"));
        let s = Item::node(Cow::Owned(json!("x")), None);
        assert!(s.is_type("string") && !s.is_type("Quantity"));
        assert!(Item::Str("x".into()).is_type("System.String"));
        assert!(Item::node(Cow::Owned(json!({"resourceType": "Patient"})), None).is_type("Patient"));
        assert_eq!(Item::choice_type("String"), "string");
        assert_eq!(Item::choice_type("Quantity"), "Quantity");
    }

    #[test]
    fn equality_rules() {
        assert_eq!(equals(&Item::Int(1), &Item::Dec(1.0)), Some(true));
        let d = Item::Date("2014-01-01".into());
        assert_eq!(
            equals(&Item::node(Cow::Owned(json!("2014-01-01")), None), &d),
            Some(true)
        );
        assert_eq!(equals(&Item::Date("2014".into()), &d), None);
        assert!(equivalent(&Item::Str("A  b".into()), &Item::Str("a B".into())));
        assert_eq!(
            compare(&Item::Int(1), &Item::Dec(1.5)).ok(),
            Some(Some(Ordering::Less))
        );
        assert!(compare(&Item::Int(1), &Item::Str("a".into())).is_err());
    }

    #[test]
    fn json_output() {
        assert_eq!(Item::Dec(f64::NAN).to_json().ok(), None);
        assert_eq!(
            Item::Quantity(4.0, "g".into()).to_json().ok(),
            Some(json!({"value": 4.0, "unit": "g"}))
        );
    }
}
