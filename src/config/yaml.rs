//! YAML documents with line numbers: every configuration and mapping file is read through here.
//!
//! A file is parsed once into a plain `serde_json::Value` (what the typed structs deserialize
//! from) and a [`LineMap`] from each key path (`listen`, `fields.names.0.family`) to the line it
//! stands on, so that every later problem — an unknown key, a wrong type, a bad cron expression —
//! can be reported as `file:line: field: problem`. Nothing here knows what the keys mean.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

/// One problem found in a configuration or mapping file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as the user named it (relative paths stay relative).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// Dotted key path inside the file (`connectors.0.listen`), empty for the whole file.
    pub field: String,
    /// What is wrong, as a sentence fragment a person can act on.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Lines of every key path of one document.
#[derive(Debug, Default, Clone)]
pub struct LineMap {
    lines: HashMap<String, u64>,
}

impl LineMap {
    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<u64> {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return Some(*line);
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return self.lines.get("").copied(),
            }
        }
    }
}

/// A parsed document: its value tree and where each key stands.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: String,
    pub value: Value,
    pub lines: LineMap,
}

impl Document {
    /// Parses YAML text. A syntax error becomes one [`Problem`] with its line.
    pub fn parse(file: &str, text: &str) -> Result<Document, Problem> {
        if text.trim().is_empty() {
            return Ok(Document {
                file: file.to_string(),
                value: Value::Object(Default::default()),
                lines: LineMap::default(),
            });
        }
        // YAML 1.1 would read `N`, `Y`, `no`, `off` as booleans and `01` as 1: in HL7 code
        // tables those are codes. Only `true`/`false` are booleans here; leading zeros stay text.
        let mut options = serde_saphyr::Options::default();
        options.strict_booleans = true;
        options.leading_zero_numbers_as_strings = true;
        let node: Node = serde_saphyr::from_str_with_options(text, options).map_err(|e| Problem {
            file: file.to_string(),
            line: e.location().map(|l| l.line()),
            field: String::new(),
            message: first_line(&e.without_snippet().to_string()),
        })?;
        let mut lines = LineMap::default();
        let value = node.into_value(text, String::new(), &mut lines);
        Ok(Document {
            file: file.to_string(),
            value,
            lines,
        })
    }

    /// A problem at `field` (a dotted key path), with the line looked up.
    pub fn problem(&self, field: &str, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.clone(),
            line: self.lines.line_of(field),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Deserializes the document into `T`, collecting every unknown key as a problem and the
    /// first type error (serde stops there) with its field path and line. The value comes back
    /// whenever it could be built, so that later checks can still add their problems.
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> (Option<T>, Vec<Problem>) {
        deserialize_value(self, &self.value, "")
    }
}

/// Deserializes a sub-tree of `doc` found at `prefix` (dotted path, empty for the root).
///
/// Unknown keys are found with `serde_ignored` rather than `deny_unknown_fields`, so that all
/// of them are reported at once, not only the first.
pub fn deserialize_value<T: serde::de::DeserializeOwned>(
    doc: &Document,
    value: &Value,
    prefix: &str,
) -> (Option<T>, Vec<Problem>) {
    let mut unknown = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| {
        unknown.push(join(prefix, &ignored_path(&path)));
    };
    let ignored = serde_ignored::Deserializer::new(value, &mut on_ignored);
    let result: Result<T, _> = serde_path_to_error::deserialize(ignored);
    let mut problems: Vec<Problem> = unknown
        .iter()
        .map(|field| doc.problem(field, "unknown key"))
        .collect();
    match result {
        Ok(v) => (Some(v), problems),
        Err(e) => {
            let field = join(prefix, &serde_path(e.path()));
            problems.push(doc.problem(&field, clean_serde_message(&e.inner().to_string())));
            (None, problems)
        }
    }
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}.{path}"),
    }
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => join(&ignored_path(parent), &index.to_string()),
        P::Map { parent, key } => join(&ignored_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

fn serde_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment as S;
    let mut out = String::new();
    for seg in path.iter() {
        let part = match seg {
            S::Seq { index } => index.to_string(),
            S::Map { key } => key.clone(),
            S::Enum { variant } => variant.clone(),
            S::Unknown => continue,
        };
        out = join(&out, &part);
    }
    out
}

/// serde's messages say "at line 0 column 0" for values that came from a tree; drop that.
fn clean_serde_message(msg: &str) -> String {
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    msg.replace("unknown field", "unknown key")
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

/// A YAML node with the line it stands on, used only while parsing.
struct Node(Spanned<Inner>);

enum Inner {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(String, u64, Node)>),
}

impl Node {
    fn into_value(self, text: &str, path: String, lines: &mut LineMap) -> Value {
        lines
            .lines
            .entry(path.clone())
            .or_insert(self.0.referenced.line());
        let span = self.0.referenced.span();
        match self.0.value {
            // A plain scalar with a dot that YAML reads as a number but that does not print back
            // the same (`.3`, `2.10`) is kept as written: mapping paths and codes are text.
            Inner::Scalar(Value::Number(n)) => {
                let raw = span
                    .byte_offset()
                    .zip(span.byte_len())
                    .and_then(|(o, l)| text.get(o as usize..(o + l) as usize))
                    .map(str::trim);
                match raw {
                    Some(r) if r.contains('.') && r != n.to_string() => Value::String(r.to_string()),
                    _ => Value::Number(n),
                }
            }
            Inner::Scalar(v) => v,
            Inner::Seq(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| n.into_value(text, join(&path, &i.to_string()), lines))
                    .collect(),
            ),
            Inner::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, key_line, n) in entries {
                    let child = join(&path, &k);
                    // The key's own line is where a problem with it should point.
                    lines.lines.insert(child.clone(), key_line);
                    let v = n.into_value(text, child, lines);
                    map.insert(k, v);
                }
                Value::Object(map)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Spanned::<Inner>::deserialize(d).map(Node)
    }
}

impl<'de> Deserialize<'de> for Inner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InnerVisitor)
    }
}

struct InnerVisitor;

impl<'de> Visitor<'de> for InnerVisitor {
    type Value = Inner;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Inner, E> {
        Ok(Inner::Scalar(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Inner, E> {
        Ok(Inner::Scalar(Value::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Inner, E> {
        Ok(Inner::Scalar(Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Inner, E> {
        Ok(Inner::Scalar(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Inner, E> {
        Ok(Inner::Scalar(Value::String(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Inner, E> {
        Ok(Inner::Scalar(Value::String(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Inner, E> {
        Ok(Inner::Scalar(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Inner, E> {
        Ok(Inner::Scalar(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Inner, D::Error> {
        Inner::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inner, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Inner::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Inner, A::Error> {
        let mut entries: Vec<(String, u64, Node)> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let node = map.next_value::<Node>()?;
            let name = key.value.0;
            if entries.iter().any(|(k, _, _)| *k == name) {
                return Err(de::Error::custom(format!("duplicate key `{name}`")));
            }
            entries.push((name, key.referenced.line(), node));
        }
        Ok(Inner::Map(entries))
    }
}

/// A mapping key: any scalar, kept as text (`1: male` in a code table is the key "1").
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("null".into()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Conf {
        listen: String,
        #[serde(default)]
        nested: Option<Nested>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        port: u16,
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_line() {
        let doc = Document::parse("c.yaml", "listen: x\nlisen: y\nnested:\n  port: 1\n  prot: 2\n").unwrap();
        let problems = doc.deserialize::<Conf>().1;
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "c.yaml:2: lisen: unknown key",
                "c.yaml:5: nested.prot: unknown key"
            ]
        );
    }

    #[test]
    fn a_type_error_names_the_field_and_line() {
        let doc = Document::parse("c.yaml", "listen: x\nnested:\n  port: not-a-number\n").unwrap();
        let (conf, problems) = doc.deserialize::<Conf>();
        assert!(conf.is_none());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(3));
        assert_eq!(problems[0].field, "nested.port");
    }

    #[test]
    fn a_syntax_error_has_a_line() {
        let err = Document::parse("c.yaml", "a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line.is_some(), "{err}");
        assert!(err.to_string().starts_with("c.yaml:"), "{err}");
    }

    #[test]
    fn numbers_that_do_not_print_back_stay_text() {
        let doc = Document::parse("m.yaml", "a: .3\nb: .10\nc: 0903\nd: 42\ne: 1.5\nf: 4_194_304\n").unwrap();
        assert_eq!(doc.value["a"], ".3");
        assert_eq!(doc.value["b"], ".10");
        assert_eq!(doc.value["c"], "0903");
        assert_eq!(doc.value["d"], 42);
        assert_eq!(doc.value["e"], 1.5);
        assert_eq!(doc.value["f"], 4194304);
    }

    #[test]
    fn hl7_codes_are_not_booleans_or_numbers() {
        let doc = Document::parse("m.yaml", "t:\n  N: nickname\n  Y: yes\n  01: a\nv: N\nw: true\n").unwrap();
        assert_eq!(doc.value["t"]["N"], "nickname");
        assert_eq!(doc.value["t"]["Y"], "yes");
        assert_eq!(doc.value["t"]["01"], "a");
        assert_eq!(doc.value["v"], "N");
        assert_eq!(doc.value["w"], true);
    }

    #[test]
    fn a_block_key_points_at_its_own_line() {
        let doc = Document::parse("m.yaml", "a: 1\nperson:\n  names:\n    x: 1\n").unwrap();
        assert_eq!(doc.lines.line_of("person"), Some(2));
        assert_eq!(doc.lines.line_of("person.names"), Some(3));
        assert_eq!(doc.lines.line_of("person.names.x"), Some(4));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = Document::parse("c.yaml", "a: 1\na: 2\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{err}");
    }
}
