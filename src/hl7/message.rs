//! The parsed shape of ONE HL7 v2 message: delimiters, segments, fields.
//!
//! This room turns already-decoded text (see `charset`) into a [`Message`].
//! Reading values out of it (MSH accessors, `get` by [`Path`](super::Path))
//! lives next door in `access`. It must not: guess at byte encodings,
//! split files into several messages (that is `batch`), validate required
//! fields (callers get `Option`s and decide), or ever drop a segment
//! silently: every non-blank line becomes a segment or the parse fails with
//! a line-numbered [`ParseError`]. Errors never carry more than the first
//! three characters of an offending line, because lines hold patient data.

use std::fmt;

use thiserror::Error;

/// The delimiters of a message: MSH-1 and the characters of MSH-2.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delimiters {
    pub field: char,
    pub component: char,
    /// When MSH-2 declares only a component separator, this is set to the
    /// field separator, which can never occur inside a field, so repetitions
    /// are effectively not split.
    pub repetition: char,
    pub escape: Option<char>,
    pub subcomponent: Option<char>,
    /// HL7 v2.7 truncation character (the 5th character of MSH-2).
    pub truncation: Option<char>,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: '|',
            component: '^',
            repetition: '~',
            escape: Some('\\'),
            subcomponent: Some('&'),
            truncation: None,
        }
    }
}

impl Delimiters {
    /// Builds delimiters from the field separator (MSH-1) and the encoding
    /// characters (MSH-2, 1 to 5 characters, in the order component,
    /// repetition, escape, subcomponent, truncation). All must be distinct,
    /// printable and not whitespace; the field separator must also not be a
    /// letter or digit. Letters are tolerated in MSH-2 (odd senders use them).
    pub fn from_msh(field: char, encoding_chars: &str) -> Result<Delimiters, ParseError> {
        let bad = |c: char| c.is_whitespace() || c.is_control();
        if bad(field) || field.is_alphanumeric() {
            return Err(ParseError::BadEncodingCharacters);
        }
        let chars: Vec<char> = encoding_chars.chars().collect();
        if chars.is_empty() || chars.len() > 5 {
            return Err(ParseError::BadEncodingCharacters);
        }
        for (i, &c) in chars.iter().enumerate() {
            if bad(c) || c == field || chars[..i].contains(&c) {
                return Err(ParseError::BadEncodingCharacters);
            }
        }
        Ok(Delimiters {
            field,
            component: chars[0],
            repetition: chars.get(1).copied().unwrap_or(field),
            escape: chars.get(2).copied(),
            subcomponent: chars.get(3).copied(),
            truncation: chars.get(4).copied(),
        })
    }

    /// The MSH-2 text these delimiters stand for (e.g. `^~\&`).
    pub fn encoding_chars(&self) -> String {
        let mut s = String::new();
        s.push(self.component);
        if self.repetition == self.field {
            return s;
        }
        s.push(self.repetition);
        for c in [self.escape, self.subcomponent, self.truncation] {
            match c {
                Some(c) => s.push(c),
                None => break,
            }
        }
        s
    }
}

/// Why a text could not be parsed as one message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message does not start with an MSH segment")]
    NoMsh,
    #[error(
        "MSH: bad field separator or encoding characters (MSH-1/MSH-2 must be 1 to 5 distinct, \
         printable, non-space characters after the field separator)"
    )]
    BadEncodingCharacters,
    #[error("line {line}: {reason}")]
    BadSegment { line: usize, reason: String },
    #[error("line {line}: a second MSH: this holds more than one message")]
    SecondMsh { line: usize },
}

impl ParseError {
    /// The 1-based line number the error is about, when it is about one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ParseError::BadSegment { line, .. } | ParseError::SecondMsh { line } => Some(*line),
            _ => None,
        }
    }
}

/// MSH-9: message code, trigger event and message structure.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageType {
    pub code: String,
    pub trigger: String,
    pub structure: String,
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.trigger.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{}^{}", self.code, self.trigger)
        }
    }
}

/// One segment. Fields are kept raw (escape sequences not resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    /// `fields[0]` is field 1 as humans count it. For MSH that is the field
    /// separator itself and `fields[1]` the encoding characters.
    fields: Vec<String>,
    line: usize,
}

impl Segment {
    /// Raw field `n` (1-based, human numbering: `MSH-9` is `field(9)` of
    /// MSH), or None when the segment has fewer fields or `n` is 0.
    pub fn field(&self, n: usize) -> Option<&str> {
        self.fields.get(n.checked_sub(1)?).map(String::as_str)
    }

    /// Number of fields present (the highest field number).
    pub fn field_count(&self) -> usize {
        self.fields.len()
    }

    /// The 1-based line this segment came from in the parsed text.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The segment as HL7 text again (no terminator).
    pub fn to_hl7(&self, d: &Delimiters) -> String {
        let mut out = self.name.clone();
        let mut sep = String::new();
        sep.push(d.field);
        if self.name == "MSH" {
            // fields[0] is the separator itself, fields[1] MSH-2.
            out.push_str(&sep);
            out.push_str(&self.fields.get(1..).unwrap_or_default().join(&sep));
        } else if !self.fields.is_empty() {
            out.push(d.field);
            out.push_str(&self.fields.join(&sep));
        }
        out
    }
}

/// One parsed HL7 v2 message (owned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    delimiters: Delimiters,
    segments: Vec<Segment>,
}

/// Splits text into `(1-based line number, line)` at CR, LF or CRLF.
pub(crate) fn split_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = Some(text);
    let mut line = 0usize;
    std::iter::from_fn(move || {
        let r = rest?;
        line += 1;
        match r.find(['\r', '\n']) {
            Some(i) => {
                let skip = if r[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&r[i + skip..]);
                Some((line, &r[..i]))
            }
            None => {
                rest = None;
                Some((line, r))
            }
        }
    })
}

fn is_segment_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 3
        && b[0].is_ascii_uppercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn bad_segment(line: usize, line_text: &str, d: &Delimiters) -> ParseError {
    let head = line_text.get(..3).filter(|h| is_segment_name(h));
    let reason = match head {
        Some(name) => format!(
            "segment {name} is not followed by '{}' or the end of the line",
            d.field
        ),
        None => format!(
            "not an HL7 segment: expected a 3-character segment name followed by '{}'",
            d.field
        ),
    };
    ParseError::BadSegment { line, reason }
}

fn parse_msh(line: &str, line_no: usize) -> Result<(Delimiters, Segment), ParseError> {
    let after = line.get(3..).ok_or(ParseError::BadEncodingCharacters)?;
    let field = after.chars().next().ok_or(ParseError::BadEncodingCharacters)?;
    let rest = &after[field.len_utf8()..];
    let (enc, tail) = match rest.find(field) {
        Some(i) => (&rest[..i], Some(&rest[i + field.len_utf8()..])),
        None => (rest, None),
    };
    let d = Delimiters::from_msh(field, enc)?;
    let mut fields = vec![field.to_string(), enc.to_string()];
    if let Some(tail) = tail {
        fields.extend(tail.split(field).map(str::to_string));
    }
    let seg = Segment {
        name: "MSH".to_string(),
        fields,
        line: line_no,
    };
    Ok((d, seg))
}

impl Message {
    /// Parses one message from decoded text. See the module docs for the
    /// rules; every non-blank line becomes exactly one segment.
    pub fn parse(text: &str) -> Result<Message, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut delims: Option<Delimiters> = None;
        let mut segments = Vec::new();
        for (line_no, line) in split_lines(text) {
            if line.trim().is_empty() {
                continue;
            }
            let Some(d) = &delims else {
                let first = line.trim_start();
                if !first.starts_with("MSH") {
                    return Err(ParseError::NoMsh);
                }
                let (d, seg) = parse_msh(first, line_no)?;
                delims = Some(d);
                segments.push(seg);
                continue;
            };
            if line.starts_with("MSH") {
                return Err(ParseError::SecondMsh { line: line_no });
            }
            let name = match line.get(..3) {
                Some(n) if is_segment_name(n) => n,
                _ => return Err(bad_segment(line_no, line, d)),
            };
            let rest = &line[3..];
            let fields = if rest.is_empty() {
                Vec::new()
            } else if let Some(r) = rest.strip_prefix(d.field) {
                r.split(d.field).map(str::to_string).collect()
            } else {
                return Err(bad_segment(line_no, line, d));
            };
            segments.push(Segment {
                name: name.to_string(),
                fields,
                line: line_no,
            });
        }
        match delims {
            Some(delimiters) => Ok(Message { delimiters, segments }),
            None => Err(ParseError::Empty),
        }
    }

    pub fn delimiters(&self) -> &Delimiters {
        &self.delimiters
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The message as HL7 text, segments joined by '\r' (trailing '\r').
    pub fn to_hl7(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push_str(&s.to_hl7(&self.delimiters));
            out.push('\r');
        }
        out
    }

    /// Segments with this name with their 0-based occurrence index.
    pub fn segments_named<'a>(&'a self, name: &str) -> impl Iterator<Item = (usize, &'a Segment)> {
        self.segments.iter().filter(move |s| s.name == name).enumerate()
    }
}

#[cfg(test)]
mod tests {
    use super::super::path::Path;
    use super::*;

    fn p(s: &str) -> Path {
        match Path::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("bad test path {s}: {e}"),
        }
    }

    fn parse(s: &str) -> Message {
        match Message::parse(s) {
            Ok(m) => m,
            Err(e) => panic!("test message should parse: {e}"),
        }
    }

    #[test]
    fn line_endings_blank_lines_and_bom() {
        let text = "\u{feff}\r\n  MSH|^~\\&|A\r\n\r\nPID|1\nPV1\r\r\nNTE|x\n\n";
        let m = parse(text);
        let names: Vec<_> = m.segments().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["MSH", "PID", "PV1", "NTE"]);
        assert_eq!(m.segments()[2].field_count(), 0);
        assert_eq!(m.to_hl7(), "MSH|^~\\&|A\rPID|1\rPV1\rNTE|x\r");
    }

    #[test]
    fn custom_and_short_delimiters() {
        let m = parse("MSH$%~\\&$GHH LAB^X$ELAB\rPID$$$555$$EVE%E\r");
        assert_eq!(m.delimiters().field, '$');
        assert_eq!(m.get(&p("PID-5.2")).as_deref(), Some("E"));
        assert_eq!(m.get(&p("MSH-3")).as_deref(), Some("GHH LAB^X"));
        let m = parse("MSH|^~\\&#|A\r");
        assert_eq!(m.delimiters().truncation, Some('#'));
        assert_eq!(m.delimiters().encoding_chars(), "^~\\&#");
        let m = parse("MSH|^|A~B^C\r");
        assert_eq!(m.delimiters().repetition, '|');
        assert_eq!(m.delimiters().encoding_chars(), "^");
        assert_eq!(m.get(&p("MSH-3.2")).as_deref(), Some("C"));
    }

    #[test]
    fn errors() {
        assert_eq!(Message::parse(""), Err(ParseError::Empty));
        assert_eq!(Message::parse(" \r\n\n"), Err(ParseError::Empty));
        assert_eq!(Message::parse("PID|1\r"), Err(ParseError::NoMsh));
        for bad in ["MSH", "MSH|", "MSH||A", "MSH|^^\\&|", "MSHA^~", "MSH|^ \\&|"] {
            assert_eq!(
                Message::parse(bad),
                Err(ParseError::BadEncodingCharacters),
                "{bad}"
            );
        }
        let e = Message::parse("MSH|^~\\&|A\rPID|1\r\nEVN|x\rSmith, John was here\r");
        let e = e.err();
        assert_eq!(e.as_ref().and_then(ParseError::line), Some(4));
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg,
            "line 4: not an HL7 segment: expected a 3-character segment name followed by '|'"
        );
        assert!(!msg.contains("Smi"));
        let e = Message::parse("MSH|^~\\&|A\rPID^1\r").err();
        assert_eq!(e.as_ref().and_then(ParseError::line), Some(2));
        let e = Message::parse("MSH|^~\\&|A\rpid|1\r").err();
        assert!(matches!(e, Some(ParseError::BadSegment { line: 2, .. })));
        let e = Message::parse("MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\r").err();
        assert_eq!(e, Some(ParseError::SecondMsh { line: 3 }));
        // Multi-byte first characters must not panic.
        assert!(Message::parse("MSH|^~\\&\réé|x\r").is_err());
        assert!(Message::parse("MSH€^~\\&").is_ok());
    }
}
