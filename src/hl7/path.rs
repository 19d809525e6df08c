//! Terser-style paths into a message (`PID-3[2].4.1`, `OBX[2]-5`) and
//! [`FieldRef`], a handle on one field repetition for relative access.
//!
//! This room only parses and prints paths and picks raw parts out of one
//! repetition. It must not walk segments (that is `message`) and must not
//! know any segment's meaning: `ZPI-1` is as valid as `PID-3`.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use super::escape::unescape;
use super::message::Delimiters;

/// A location in a message. Indexes are 1-based; `None` means "not given".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    pub segment: String,
    pub segment_index: Option<usize>,
    pub field: usize,
    pub repetition: Option<usize>,
    pub component: Option<usize>,
    pub subcomponent: Option<usize>,
}

/// A component path relative to a field repetition: `.C` or `.C.S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelPath {
    pub component: usize,
    pub subcomponent: Option<usize>,
}

/// Why a path text is not a valid path. `Display` is the reason only
/// (callers name the path themselves); `path` keeps the text (paths come
/// from configuration, never from messages).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
}

fn err(path: &str, reason: &'static str) -> PathError {
    PathError {
        path: path.to_string(),
        reason,
    }
}

/// Reads a 1-based number at the start of `s`; returns it and the rest.
fn number<'a>(full: &str, s: &'a str, what: &'static str) -> Result<(usize, &'a str), PathError> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return Err(err(full, what));
    }
    let n: usize = s[..end].parse().map_err(|_| err(full, "number is too large"))?;
    if n == 0 {
        return Err(err(full, "indexes and field numbers must be 1 or more"));
    }
    Ok((n, &s[end..]))
}

/// Reads an optional `[n]` at the start of `s`.
fn index<'a>(full: &str, s: &'a str) -> Result<(Option<usize>, &'a str), PathError> {
    let Some(inner) = s.strip_prefix('[') else {
        return Ok((None, s));
    };
    let (n, rest) = number(full, inner, "expected a number inside [ ]")?;
    let rest = rest
        .strip_prefix(']')
        .ok_or_else(|| err(full, "expected ']' after the index"))?;
    Ok((Some(n), rest))
}

/// Reads `.C` or `.C.S`; the text must end after it.
fn components(full: &str, s: &str) -> Result<(Option<usize>, Option<usize>), PathError> {
    if s.is_empty() {
        return Ok((None, None));
    }
    let s = s.strip_prefix('.').ok_or_else(|| {
        err(
            full,
            "expected '.' and a component number after the field, like PID-5.1",
        )
    })?;
    let (c, rest) = number(full, s, "component number must be a number of 1 or more")?;
    if rest.is_empty() {
        return Ok((Some(c), None));
    }
    let rest = rest
        .strip_prefix('.')
        .ok_or_else(|| err(full, "expected '.' and a subcomponent number, like PID-3.4.1"))?;
    let (sc, rest) = number(full, rest, "subcomponent number must be a number of 1 or more")?;
    if !rest.is_empty() {
        return Err(err(full, "unexpected text after the subcomponent number"));
    }
    Ok((Some(c), Some(sc)))
}

impl Path {
    /// Parses `SEG[i]-F[r].C.S` (all but `SEG-F` optional).
    pub fn parse(s: &str) -> Result<Path, PathError> {
        let t = s.trim();
        let name_ok = t.len() >= 3
            && t.is_char_boundary(3)
            && t.as_bytes()[0].is_ascii_uppercase()
            && t.as_bytes()[1..3]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !name_ok {
            return Err(err(s, "expected a segment name of 3 characters, like PID"));
        }
        let (segment, rest) = t.split_at(3);
        let (segment_index, rest) = index(s, rest)?;
        let rest = rest.strip_prefix('-').ok_or_else(|| {
            err(
                s,
                "expected '-' and a field number after the segment name, like PID-3",
            )
        })?;
        let (field, rest) = number(s, rest, "field number must be 1 or more")?;
        let (repetition, rest) = index(s, rest)?;
        let (component, subcomponent) = components(s, rest)?;
        Ok(Path {
            segment: segment.to_string(),
            segment_index,
            field,
            repetition,
            component,
            subcomponent,
        })
    }

    /// Parses a relative path `.C` or `.C.S` (the leading dot is optional).
    pub fn parse_relative(s: &str) -> Result<RelPath, PathError> {
        let t = s.trim();
        let owned;
        let t = if t.starts_with('.') {
            t
        } else {
            owned = format!(".{t}");
            owned.as_str()
        };
        match components(s, t)? {
            (Some(component), subcomponent) => Ok(RelPath {
                component,
                subcomponent,
            }),
            (None, _) => Err(err(s, "expected a component number, like .1 or .4.1")),
        }
    }
}

impl FromStr for Path {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Path, PathError> {
        Path::parse(s)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segment)?;
        if let Some(i) = self.segment_index {
            write!(f, "[{i}]")?;
        }
        write!(f, "-{}", self.field)?;
        if let Some(r) = self.repetition {
            write!(f, "[{r}]")?;
        }
        if let Some(c) = self.component {
            write!(f, ".{c}")?;
            if let Some(s) = self.subcomponent {
                write!(f, ".{s}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ".{}", self.component)?;
        if let Some(s) = self.subcomponent {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// The `n`-th (1-based) part of `s` split on `sep`.
pub(crate) fn nth_part(s: &str, sep: char, n: usize) -> Option<&str> {
    let mut skip = n.checked_sub(1)?;
    if !sep.is_ascii() {
        return s.split(sep).nth(skip);
    }
    // An ASCII delimiter is one byte that never occurs inside a multi-byte character, so the
    // text can be cut at its byte positions: a plain byte scan, the hot loop of every read.
    let sep = sep as u8;
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b == sep {
            if skip == 0 {
                return Some(&s[start..i]);
            }
            skip -= 1;
            start = i + 1;
        }
    }
    (skip == 0).then(|| &s[start..])
}

/// One field repetition of a message, for reading its components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef<'a> {
    raw: &'a str,
    delims: &'a Delimiters,
    repetition: usize,
    /// MSH-1 / MSH-2: the delimiters themselves, never split or unescaped.
    literal: bool,
}

impl<'a> FieldRef<'a> {
    pub(crate) fn new(raw: &'a str, delims: &'a Delimiters, repetition: usize, literal: bool) -> Self {
        FieldRef {
            raw,
            delims,
            repetition,
            literal,
        }
    }

    /// The raw (still escaped) text of this repetition.
    pub fn raw(&self) -> &str {
        self.raw
    }

    /// Which repetition of the field this is (1-based).
    pub fn repetition(&self) -> usize {
        self.repetition
    }

    /// Component `comp` (1-based), subcomponent `sub` if given, decoded;
    /// None if absent or empty. Without `sub`, the first subcomponent.
    pub fn component(&self, comp: usize, sub: Option<usize>) -> Option<String> {
        self.select(Some(comp), sub)
    }

    /// Component by a relative path.
    pub fn at(&self, rel: &RelPath) -> Option<String> {
        self.select(Some(rel.component), rel.subcomponent)
    }

    /// The whole repetition with first-leaf semantics: `Smith^John` gives
    /// "Smith" (decoded; None if empty).
    pub fn value(&self) -> Option<String> {
        self.select(None, None)
    }

    /// The raw leaf picked by component/subcomponent (first leaf when not
    /// given), not yet decoded.
    pub(crate) fn select_raw(&self, comp: Option<usize>, sub: Option<usize>) -> Option<&'a str> {
        if self.literal {
            return (comp.unwrap_or(1) == 1 && sub.unwrap_or(1) == 1).then_some(self.raw);
        }
        let d = self.delims;
        let c = nth_part(self.raw, d.component, comp.unwrap_or(1))?;
        match d.subcomponent {
            Some(sc) => nth_part(c, sc, sub.unwrap_or(1)),
            None => (sub.unwrap_or(1) == 1).then_some(c),
        }
    }

    /// Decoded leaf; None if absent or empty.
    pub(crate) fn select(&self, comp: Option<usize>, sub: Option<usize>) -> Option<String> {
        let raw = self.select_raw(comp, sub)?;
        if raw.is_empty() {
            return None;
        }
        if self.literal {
            return Some(raw.to_string());
        }
        let v = unescape(raw, self.delims);
        (!v.is_empty()).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Path {
        match Path::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parses_and_round_trips() {
        for s in [
            "PID-3",
            "PID-3.1",
            "PID-3.4.1",
            "PID-3[2].1",
            "OBX[2]-5",
            "MSH-9.2",
            "ZPI-1",
            "OBX[10]-5[3].2.1",
            "PV1-3",
        ] {
            assert_eq!(ok(s).to_string(), s);
            assert_eq!(s.parse::<Path>().ok(), Some(ok(s)));
        }
        let p = ok(" OBX[2]-5[3].4.1 ");
        assert_eq!(p.segment, "OBX");
        assert_eq!(p.segment_index, Some(2));
        assert_eq!(p.field, 5);
        assert_eq!(p.repetition, Some(3));
        assert_eq!(p.component, Some(4));
        assert_eq!(p.subcomponent, Some(1));
    }

    #[test]
    fn rejects_bad_paths_with_reasons() {
        let cases = [
            ("", "segment name of 3 characters"),
            ("PI-3", "segment name of 3 characters"),
            ("pid-3", "segment name of 3 characters"),
            ("1ID-3", "segment name of 3 characters"),
            ("PID", "expected '-'"),
            ("PID3", "expected '-'"),
            ("PID-0", "1 or more"),
            ("PID-", "field number must be 1 or more"),
            ("PID-x", "field number must be 1 or more"),
            ("PID[0]-1", "1 or more"),
            ("PID[1-1", "expected ']'"),
            ("PID-3.", "component number"),
            ("PID-3.1.", "subcomponent number"),
            ("PID-3.1.1.1", "unexpected text"),
            ("PID-3x", "expected '.'"),
            ("PID-99999999999999999999999", "too large"),
            ("PÏD-3", "segment name"),
            ("ÉÉ-3", "segment name"),
        ];
        for (s, want) in cases {
            match Path::parse(s) {
                Ok(p) => panic!("{s} parsed as {p}"),
                Err(e) => assert!(e.to_string().contains(want), "{s}: {e}"),
            }
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            Path::parse_relative(".1"),
            Ok(RelPath {
                component: 1,
                subcomponent: None
            })
        );
        assert_eq!(
            Path::parse_relative(".4.1").map(|r| r.to_string()).ok(),
            Some(".4.1".to_string())
        );
        assert_eq!(Path::parse_relative("4").map(|r| r.component), Ok(4));
        for bad in ["", ".", ".0", ".a", ".1.", ".1.2.3", "PID-1"] {
            assert!(Path::parse_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_ref_selection() {
        let d = Delimiters::default();
        let f = FieldRef::new("A&a2^B^^D\\T\\E", &d, 1, false);
        assert_eq!(f.value().as_deref(), Some("A"));
        assert_eq!(f.component(1, Some(2)).as_deref(), Some("a2"));
        assert_eq!(f.component(2, None).as_deref(), Some("B"));
        assert_eq!(f.component(3, None), None);
        assert_eq!(f.component(4, None).as_deref(), Some("D&E"));
        assert_eq!(f.component(9, None), None);
        assert_eq!(f.component(0, None), None);
        assert_eq!(f.component(1, Some(0)), None);
        assert_eq!(
            f.at(&RelPath {
                component: 2,
                subcomponent: None
            })
            .as_deref(),
            Some("B")
        );
        assert_eq!(f.raw(), "A&a2^B^^D\\T\\E");
        let lit = FieldRef::new("^~\\&", &d, 1, true);
        assert_eq!(lit.value().as_deref(), Some("^~\\&"));
        assert_eq!(lit.component(2, None), None);
        let no_sub = Delimiters {
            subcomponent: None,
            ..Delimiters::default()
        };
        let f = FieldRef::new("A&B^C", &no_sub, 1, false);
        assert_eq!(f.value().as_deref(), Some("A&B"));
        assert_eq!(f.component(1, Some(2)), None);
    }
}
