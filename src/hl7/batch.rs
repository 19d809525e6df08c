//! Splitting a dropped file into message texts: one message, messages
//! back to back, or an HL7 batch (FHS/BHS ... BTS/FTS).
//!
//! This room normalises line endings, strips a UTF-8 BOM and stray MLLP
//! bytes, checks the batch envelope (trailers present, declared counts
//! right) and hands back each message as text (segments joined by '\r',
//! trailing '\r'). It must not parse segments beyond their first three
//! characters (that is `message`), and it must not drop anything silently:
//! text outside a message is an error, never skipped.

use thiserror::Error;

use super::message::split_lines;

/// Why a file is not a usable message file. Never holds message text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("the file holds no HL7 message (no MSH segment)")]
    NoMessages,
    #[error("the batch is not closed: {0} is missing")]
    MissingTrailer(&'static str),
    #[error("the batch trailer declares {declared} but {found} were found")]
    CountMismatch { declared: usize, found: usize },
    #[error("line {line}: text before the first message that is not FHS or BHS")]
    TextBeforeFirstMessage { line: usize },
    #[error("line {line}: text between messages that is not part of a message")]
    TextOutsideMessage { line: usize },
    #[error("line {line}: {segment} inside an open batch or file, or after messages")]
    NestedHeader { line: usize, segment: &'static str },
    #[error("line {line}: the count in {segment}-1 is not a number")]
    BadCount { line: usize, segment: &'static str },
}

/// Field 1 of an FHS/BHS/BTS/FTS line, split on the separator after the
/// name (the 4th character). None when absent or blank.
fn count_field(line: &str, lineno: usize, segment: &'static str) -> Result<Option<usize>, BatchError> {
    let Some(sep) = line.get(3..).and_then(|r| r.chars().next()) else {
        return Ok(None);
    };
    let v = line[3..].split(sep).nth(1).unwrap_or("").trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| BatchError::BadCount {
        line: lineno,
        segment,
    })
}

#[derive(Default)]
struct State<'a> {
    out: Vec<String>,
    current: Vec<&'a str>,
    /// An explicit FHS is open.
    file_open: bool,
    /// An explicit BHS is open.
    batch_open: bool,
    /// Messages since the last batch boundary (start, FHS, BHS, BTS).
    in_batch: usize,
    /// Batches finished since the start or the last FHS.
    batches: usize,
    seen_message: bool,
}

impl State<'_> {
    fn flush(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let mut msg = self.current.join("\r");
        msg.push('\r');
        self.out.push(msg);
        self.current.clear();
    }
}

fn check(declared: Option<usize>, found: usize) -> Result<(), BatchError> {
    match declared {
        Some(declared) if declared != found => Err(BatchError::CountMismatch { declared, found }),
        _ => Ok(()),
    }
}

/// Splits a file's decoded text into message texts (see the module docs).
///
/// Envelope rules: a BHS needs its BTS and an FHS its FTS
/// ([`BatchError::MissingTrailer`]); headers cannot nest. A trailer whose
/// header is missing (`MSH.. BTS|1`, `FHS MSH.. FTS|1`) closes an implicit
/// batch or file, as python-hl7 accepts; its count is still checked (an
/// FTS counts the messages outside any BHS as one implicit batch).
pub fn split_file(text: &str) -> Result<Vec<String>, BatchError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut st = State::default();
    for (lineno, full_line) in split_lines(text) {
        // Stray MLLP bytes end a line just like CR does.
        for line in full_line.split(['\u{b}', '\u{1c}']) {
            let line = line.strip_prefix('\u{feff}').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let head = line.get(..3).unwrap_or("");
            match head {
                "MSH" => {
                    st.flush();
                    st.current.push(line);
                    st.seen_message = true;
                    st.in_batch += 1;
                }
                "FHS" => {
                    st.flush();
                    if st.file_open || st.batch_open || st.seen_message {
                        return Err(BatchError::NestedHeader {
                            line: lineno,
                            segment: "FHS",
                        });
                    }
                    st.file_open = true;
                    st.batches = 0;
                    st.in_batch = 0;
                }
                "BHS" => {
                    st.flush();
                    if st.batch_open {
                        return Err(BatchError::NestedHeader {
                            line: lineno,
                            segment: "BHS",
                        });
                    }
                    if st.in_batch > 0 {
                        st.batches += 1;
                    }
                    st.batch_open = true;
                    st.in_batch = 0;
                }
                "BTS" => {
                    st.flush();
                    check(count_field(line, lineno, "BTS")?, st.in_batch)?;
                    st.batch_open = false;
                    st.batches += 1;
                    st.in_batch = 0;
                }
                "FTS" => {
                    st.flush();
                    if st.batch_open {
                        return Err(BatchError::MissingTrailer("BTS"));
                    }
                    let found = st.batches + usize::from(st.in_batch > 0);
                    check(count_field(line, lineno, "FTS")?, found)?;
                    st.file_open = false;
                    st.batches = 0;
                    st.in_batch = 0;
                }
                _ if st.current.is_empty() => {
                    return Err(if st.seen_message {
                        BatchError::TextOutsideMessage { line: lineno }
                    } else {
                        BatchError::TextBeforeFirstMessage { line: lineno }
                    });
                }
                _ => st.current.push(line),
            }
        }
    }
    st.flush();
    if st.batch_open {
        return Err(BatchError::MissingTrailer("BTS"));
    }
    if st.file_open {
        return Err(BatchError::MissingTrailer("FTS"));
    }
    if st.out.is_empty() {
        return Err(BatchError::NoMessages);
    }
    Ok(st.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<String> {
        split_file(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn single_and_back_to_back() {
        assert_eq!(ok("MSH|^~\\&|A\nPID|1\n"), ["MSH|^~\\&|A\rPID|1\r"]);
        assert_eq!(
            ok("\u{feff}MSH|^~\\&|A\r\nPID|1\r\n\r\nMSH|^~\\&|B\rPID|2"),
            ["MSH|^~\\&|A\rPID|1\r", "MSH|^~\\&|B\rPID|2\r"]
        );
    }

    #[test]
    fn mllp_bytes_left_in_file() {
        let text = "\u{b}MSH|^~\\&|A\rPID|1\r\u{1c}\r\u{b}MSH|^~\\&|B\rPID|2\u{1c}\u{b}MSH|^~\\&|C\u{1c}\r";
        assert_eq!(
            ok(text),
            ["MSH|^~\\&|A\rPID|1\r", "MSH|^~\\&|B\rPID|2\r", "MSH|^~\\&|C\r"]
        );
    }

    #[test]
    fn full_batch() {
        let text = "FHS|^~\\&|LAB\rBHS|^~\\&|LAB\rMSH|^~\\&|1\rPID|1\rMSH|^~\\&|2\rBTS|2\rBHS|^~\\&\rMSH|^~\\&|3\rBTS|1\rFTS|2\r";
        assert_eq!(
            ok(text),
            ["MSH|^~\\&|1\rPID|1\r", "MSH|^~\\&|2\r", "MSH|^~\\&|3\r"]
        );
        // Blank counts are not checked; FHS without BHS is fine.
        assert_eq!(ok("FHS|^~\\&\rMSH|^~\\&|1\rFTS|\r").len(), 1);
        // Trailers without headers close implicit batches / files.
        assert_eq!(ok("MSH|^~\\&|1\rMSH|^~\\&|2\rBTS|2\r").len(), 2);
        assert_eq!(ok("FHS\rMSH|^~\\&|1\rMSH|^~\\&|2\rFTS|1\r").len(), 2);
        assert_eq!(ok("FHS\rMSH|^~\\&|1\rBTS|1\rFTS|1\r").len(), 1);
        assert_eq!(ok("BHS\rMSH|^~\\&|1\rBTS|1\rFTS|1\r").len(), 1);
        assert_eq!(ok("FHS\rMSH|^~\\&|1\rBHS\rMSH|^~\\&|2\rBTS|1\rFTS|2\r").len(), 2);
        assert_eq!(ok("BHS|^~\\&\nMSH|^~\\&|1\nBTS\n").len(), 1);
    }

    #[test]
    fn batch_errors() {
        let cases: [(&str, BatchError); 13] = [
            ("", BatchError::NoMessages),
            ("\r\n\r\n", BatchError::NoMessages),
            ("FHS|^~\\&\rFTS|0\r", BatchError::NoMessages),
            (
                "FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&\rBTS|1\r",
                BatchError::MissingTrailer("FTS"),
            ),
            ("BHS|^~\\&\rMSH|^~\\&\r", BatchError::MissingTrailer("BTS")),
            (
                "FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&\rFTS|1\r",
                BatchError::MissingTrailer("BTS"),
            ),
            (
                "BHS|^~\\&\rMSH|^~\\&\rMSH|^~\\&\rBTS|3\r",
                BatchError::CountMismatch {
                    declared: 3,
                    found: 2,
                },
            ),
            (
                "FHS|^~\\&\rBHS\rMSH|^~\\&\rBTS|1\rFTS|2\r",
                BatchError::CountMismatch {
                    declared: 2,
                    found: 1,
                },
            ),
            (
                "Dear lab,\rMSH|^~\\&\r",
                BatchError::TextBeforeFirstMessage { line: 1 },
            ),
            (
                "MSH|^~\\&\rBTS|2\r",
                BatchError::CountMismatch {
                    declared: 2,
                    found: 1,
                },
            ),
            (
                "FHS\rMSH|^~\\&\rMSH|^~\\&\rFTS|2\r",
                BatchError::CountMismatch {
                    declared: 2,
                    found: 1,
                },
            ),
            (
                "BHS\rMSH|^~\\&\rFHS\r",
                BatchError::NestedHeader {
                    line: 3,
                    segment: "FHS",
                },
            ),
            (
                "BHS\rMSH|^~\\&\rBTS|x\r",
                BatchError::BadCount {
                    line: 3,
                    segment: "BTS",
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(split_file(text), Err(want), "{text:?}");
        }
        assert_eq!(
            split_file("BHS\rMSH|^~\\&\rBTS|1\rstray\rMSH|^~\\&\r"),
            Err(BatchError::TextOutsideMessage { line: 4 })
        );
        assert_eq!(
            split_file("BHS\rBHS\r"),
            Err(BatchError::NestedHeader {
                line: 2,
                segment: "BHS"
            })
        );
        let e = split_file("Smith John 1980\rMSH|^~\\&\r")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| !e.contains("Smith")));
    }

    #[test]
    fn bad_lines_inside_a_message_are_kept_for_the_parser() {
        // split_file does not judge segments: Message::parse reports them.
        assert_eq!(ok("MSH|^~\\&\rnot a segment\r"), ["MSH|^~\\&\rnot a segment\r"]);
        assert_eq!(ok("MSH|^~\\&\ré\r").len(), 1);
    }
}
