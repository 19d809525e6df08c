//! Reading values out of a parsed [`Message`]: the MSH header accessors
//! and everything addressed by a [`Path`] (`get`, `get_all`, `field_refs`).
//!
//! This room only reads: it must not parse text (that is `message`), change
//! a message, or judge whether required values are present (callers get
//! `Option`s). Values come back decoded (escape sequences resolved).

use super::escape::unescape;
use super::message::{Message, MessageType, Segment};
use super::path::{FieldRef, Path, nth_part};

impl Message {
    fn msh(&self) -> Option<&Segment> {
        self.segments().first()
    }

    fn msh_get(&self, field: usize, component: Option<usize>) -> Option<String> {
        let p = Path {
            segment: "MSH".to_string(),
            segment_index: None,
            field,
            repetition: None,
            component,
            subcomponent: None,
        };
        self.get_in_segment(self.msh()?, &p)
    }

    fn msh_raw(&self, field: usize) -> String {
        self.msh()
            .and_then(|s| s.field(field))
            .unwrap_or_default()
            .to_string()
    }

    /// MSH-10, decoded and trimmed; None if empty. The whole field is
    /// decoded (not just its first component): a control id is an opaque
    /// key, even when a sender put a component separator in it.
    pub fn control_id(&self) -> Option<String> {
        let raw = self.msh()?.field(10)?;
        trimmed(Some(unescape(raw, self.delimiters())))
    }

    /// MSH-9.1/.2/.3; None when MSH-9.1 is empty.
    pub fn message_type(&self) -> Option<MessageType> {
        let code = self.msh_get(9, Some(1))?.trim().to_string();
        if code.is_empty() {
            return None;
        }
        let part = |c| {
            self.msh_get(9, Some(c))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Some(MessageType {
            code,
            trigger: part(2),
            structure: part(3),
        })
    }

    /// MSH-12.1 (version id), trimmed.
    pub fn version(&self) -> Option<String> {
        trimmed(self.msh_get(12, Some(1)))
    }

    /// MSH-18, first repetition, decoded and trimmed.
    pub fn charset_field(&self) -> Option<String> {
        let msh = self.msh()?;
        let p = Path {
            segment: "MSH".into(),
            segment_index: None,
            field: 18,
            repetition: Some(1),
            component: None,
            subcomponent: None,
        };
        let r = self.field_refs_in_segment(msh, &p);
        trimmed(r.first().map(|f| unescape(f.raw(), self.delimiters())))
    }

    /// MSH-11.1 (processing id), trimmed.
    pub fn processing_id(&self) -> Option<String> {
        trimmed(self.msh_get(11, Some(1)))
    }

    /// MSH-3 raw (components kept), empty if absent.
    pub fn sending_application(&self) -> String {
        self.msh_raw(3)
    }

    /// MSH-4 raw, empty if absent.
    pub fn sending_facility(&self) -> String {
        self.msh_raw(4)
    }

    /// MSH-5 raw, empty if absent.
    pub fn receiving_application(&self) -> String {
        self.msh_raw(5)
    }

    /// MSH-6 raw, empty if absent.
    pub fn receiving_facility(&self) -> String {
        self.msh_raw(6)
    }

    /// The decoded value at `path`, None if absent or empty. A path that
    /// stops at a field or component with deeper parts yields the FIRST
    /// leaf: `PID-5` on `Smith^John` is "Smith", `PID-5.1` on `Smith&Jr^John`
    /// is "Smith". Without a repetition index the first repetition is read;
    /// without a segment index the first segment with that name.
    pub fn get(&self, path: &Path) -> Option<String> {
        let idx = path.segment_index.unwrap_or(1).checked_sub(1)?;
        let (_, seg) = self.segments_named(&path.segment).nth(idx)?;
        self.get_in_segment(seg, path)
    }

    /// Like [`Message::get`] for every repetition (when the path has no
    /// repetition index) of every matching segment (when the path has no
    /// segment index), in message order. Empty values are skipped.
    pub fn get_all(&self, path: &Path) -> Vec<String> {
        self.field_refs(path)
            .iter()
            .filter_map(|f| f.select(path.component, path.subcomponent))
            .collect()
    }

    /// One [`FieldRef`] per non-empty repetition of the field named by the
    /// path (only the one repetition if the path names it), over every
    /// matching segment in message order when the path has no segment
    /// index. Component and subcomponent of the path are ignored.
    pub fn field_refs(&self, path: &Path) -> Vec<FieldRef<'_>> {
        let mut out = Vec::new();
        for (i, seg) in self.segments_named(&path.segment) {
            if path.segment_index.is_some_and(|want| want != i + 1) {
                continue;
            }
            out.extend(self.field_refs_in_segment(seg, path));
        }
        out
    }

    /// [`Message::get`] against a given segment (the path's segment name
    /// and index are ignored).
    pub fn get_in_segment(&self, segment: &Segment, path: &Path) -> Option<String> {
        let raw = segment.field(path.field)?;
        let d = self.delimiters();
        let rep = path.repetition.unwrap_or(1);
        let field = if segment.name == "MSH" && path.field <= 2 {
            // MSH-1/MSH-2 hold the delimiters themselves: never split.
            (!raw.is_empty() && rep == 1).then(|| FieldRef::new(raw, d, 1, true))?
        } else {
            let r = nth_part(raw, d.repetition, rep).filter(|r| !r.is_empty())?;
            FieldRef::new(r, d, rep, false)
        };
        field.select(path.component, path.subcomponent)
    }

    /// [`Message::field_refs`] against a given segment (the path's segment
    /// name and index are ignored).
    pub fn field_refs_in_segment<'a>(&'a self, segment: &'a Segment, path: &Path) -> Vec<FieldRef<'a>> {
        let Some(raw) = segment.field(path.field) else {
            return Vec::new();
        };
        let d = self.delimiters();
        if segment.name == "MSH" && path.field <= 2 {
            // MSH-1/MSH-2 hold the delimiters themselves: never split.
            if raw.is_empty() || path.repetition.is_some_and(|r| r != 1) {
                return Vec::new();
            }
            return vec![FieldRef::new(raw, d, 1, true)];
        }
        raw.split(d.repetition)
            .enumerate()
            .filter(|(i, r)| !r.is_empty() && path.repetition.is_none_or(|want| want == i + 1))
            .map(|(i, r)| FieldRef::new(r, d, i + 1, false))
            .collect()
    }
}

fn trimmed(v: Option<String>) -> Option<String> {
    let v = v?;
    let t = v.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::message::Delimiters;
    use super::*;

    const ADT: &str = "MSH|^~\\&|EPIC^1.2^ISO|HOSP|CAREHUB|CLINIC|20240101120000||ADT^A01^ADT_A01|MSG0001|P|2.5.1|||AL|NE||UNICODE UTF-8\r\
        EVN|A01|20240101120000\r\
        PID|1||123^^^HOSP^MR~456^^^NAT^SS||Smith&Jr^John^Q||19800101|M\r\
        OBX|1|ST|GLU||98|mg/dL\r\
        OBX|2|FT|NOTE||line one\\.br\\line two \\T\\ more\r\
        ZPI|custom\r";

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
    fn parses_header_accessors() {
        let m = parse(ADT);
        assert_eq!(m.segment_count(), 6);
        assert_eq!(m.delimiters(), &Delimiters::default());
        assert_eq!(m.control_id().as_deref(), Some("MSG0001"));
        let t = m.message_type();
        assert_eq!(t.as_ref().map(|t| t.to_string()).as_deref(), Some("ADT^A01"));
        assert_eq!(t.map(|t| t.structure).as_deref(), Some("ADT_A01"));
        assert_eq!(m.version().as_deref(), Some("2.5.1"));
        assert_eq!(m.charset_field().as_deref(), Some("UNICODE UTF-8"));
        assert_eq!(m.processing_id().as_deref(), Some("P"));
        assert_eq!(m.sending_application(), "EPIC^1.2^ISO");
        assert_eq!(m.sending_facility(), "HOSP");
        assert_eq!(m.receiving_application(), "CAREHUB");
        assert_eq!(m.receiving_facility(), "CLINIC");
    }

    #[test]
    fn path_access() {
        let m = parse(ADT);
        assert_eq!(m.get(&p("MSH-1")).as_deref(), Some("|"));
        assert_eq!(m.get(&p("MSH-2")).as_deref(), Some("^~\\&"));
        assert_eq!(m.get(&p("MSH-9.2")).as_deref(), Some("A01"));
        assert_eq!(m.get(&p("PID-5")).as_deref(), Some("Smith"));
        assert_eq!(m.get(&p("PID-5.1.2")).as_deref(), Some("Jr"));
        assert_eq!(m.get(&p("PID-5.2")).as_deref(), Some("John"));
        assert_eq!(m.get(&p("PID-3[2].4")).as_deref(), Some("NAT"));
        assert_eq!(m.get(&p("PID-3[3]")), None);
        assert_eq!(m.get(&p("PID-2")), None);
        assert_eq!(m.get(&p("PID-99")), None);
        assert_eq!(
            m.get(&p("OBX[2]-5")).as_deref(),
            Some("line one\nline two & more")
        );
        assert_eq!(m.get(&p("OBX[3]-5")), None);
        assert_eq!(m.get(&p("ZPI-1")).as_deref(), Some("custom"));
        assert_eq!(m.get_all(&p("PID-3.4")), vec!["HOSP", "NAT"]);
        assert_eq!(m.get_all(&p("OBX-1")), vec!["1", "2"]);
        assert_eq!(m.get_all(&p("OBX[2]-1")), vec!["2"]);
    }

    #[test]
    fn field_refs_and_segments() {
        let m = parse(ADT);
        let refs = m.field_refs(&p("PID-3"));
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[1].component(1, None).as_deref(), Some("456"));
        assert_eq!(refs[1].component(5, None).as_deref(), Some("SS"));
        assert_eq!(refs[0].raw(), "123^^^HOSP^MR");
        assert_eq!(refs[0].value().as_deref(), Some("123"));
        let obx: Vec<_> = m.segments_named("OBX").collect();
        assert_eq!(obx.len(), 2);
        assert_eq!(obx[1].0, 1);
        assert_eq!(m.get_in_segment(obx[1].1, &p("OBX-2")).as_deref(), Some("FT"));
        assert_eq!(m.field_refs_in_segment(obx[0].1, &p("OBX-5")).len(), 1);
        assert_eq!(m.field_refs(&p("OBX-3")).len(), 2);
        assert_eq!(obx[0].1.line(), 4);
    }

    #[test]
    fn missing_header_fields_are_none() {
        let m = parse("MSH|^~\\&\r");
        assert_eq!(m.control_id(), None);
        assert_eq!(m.message_type(), None);
        assert_eq!(m.version(), None);
        assert_eq!(m.charset_field(), None);
        assert_eq!(m.sending_application(), "");
        let m = parse("MSH|^~\\&||||||| ADT |  |\r");
        assert_eq!(m.control_id(), None);
        assert_eq!(m.message_type().map(|t| t.to_string()).as_deref(), Some("ADT"));
    }
}
