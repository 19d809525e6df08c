//! MLLP framing: `0x0B payload 0x1C 0x0D`, as a push decoder plus an
//! encoder. No I/O happens here.
//!
//! This room turns a byte stream into frame payloads and back. It must not
//! read sockets, decode charsets or look inside payloads, and it must keep
//! "need more bytes" (`Ok(None)`) apart from "invalid" (`Err`). Scanning is
//! incremental: bytes already looked at are not scanned again, so a large
//! frame arriving in small reads costs O(n).
//!
//! Leniency: FS not followed by CR still ends the frame (the byte after FS
//! then starts the next data); a VT inside an unfinished frame abandons it
//! and starts a new one (its bytes are counted in [`MllpDecoder::skipped_bytes`]).

use thiserror::Error;

const VT: u8 = 0x0b;
const FS: u8 = 0x1c;
const CR: u8 = 0x0d;

/// A framing problem. The decoder stays usable after it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// `head` holds the frame's first bytes (at most [`HEAD_BYTES`]): enough to read its MSH
    /// for the reject and to keep a trace of it.
    #[error("MLLP frame larger than the {limit}-byte limit: discarded up to the next frame start")]
    TooLarge { limit: usize, head: Vec<u8> },
}

/// Bytes of an oversize frame kept in [`FrameError::TooLarge`].
pub const HEAD_BYTES: usize = 4096;

/// Incremental MLLP frame decoder.
#[derive(Debug, Clone)]
pub struct MllpDecoder {
    buf: Vec<u8>,
    max_frame_bytes: usize,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    /// Start of the current frame's payload while inside a frame.
    frame_start: Option<usize>,
    /// How far the current frame has been scanned for FS/VT.
    scanned: usize,
    /// A frame ended with FS as the last buffered byte: a CR next is its.
    pending_cr: bool,
    skipped: u64,
}

impl MllpDecoder {
    /// A decoder that rejects payloads longer than `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        MllpDecoder {
            buf: Vec::new(),
            max_frame_bytes,
            pos: 0,
            frame_start: None,
            scanned: 0,
            pending_cr: false,
            skipped: 0,
        }
    }

    /// Adds bytes read from the connection.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            if let Some(fs) = self.frame_start.as_mut() {
                *fs -= self.pos;
            }
            self.scanned = self.scanned.saturating_sub(self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes dropped so far: anything before a VT, abandoned or oversize
    /// frames. Framing bytes of delivered frames are not counted.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// True while a frame has started (VT seen) and not finished.
    pub fn has_partial(&self) -> bool {
        self.frame_start.is_some()
    }

    fn skip(&mut self, n: usize) {
        self.skipped = self.skipped.saturating_add(n as u64);
    }

    /// The next complete payload, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            let len = self.buf.len();
            if self.pending_cr && self.pos < len {
                if self.buf[self.pos] == CR {
                    self.pos += 1;
                }
                self.pending_cr = false;
            }
            let Some(start) = self.frame_start else {
                match self.buf[self.pos..].iter().position(|&b| b == VT) {
                    None => {
                        self.skip(len - self.pos);
                        self.pos = len;
                        return Ok(None);
                    }
                    Some(i) => {
                        self.skip(i);
                        self.pos += i + 1;
                        self.frame_start = Some(self.pos);
                        self.scanned = self.pos;
                        continue;
                    }
                }
            };
            let found = self.buf[self.scanned..].iter().position(|&b| b == FS || b == VT);
            let Some(i) = found else {
                self.scanned = len;
                if len - start > self.max_frame_bytes {
                    let head = self.buf[start..len.min(start + HEAD_BYTES)].to_vec();
                    self.skip(len - start + 1);
                    self.frame_start = None;
                    self.pos = len;
                    return Err(FrameError::TooLarge {
                        limit: self.max_frame_bytes,
                        head,
                    });
                }
                return Ok(None);
            };
            let at = self.scanned + i;
            if self.buf[at] == VT {
                // A new frame starts before the old one ended: drop the old.
                self.skip(at - start + 1);
                self.pos = at + 1;
                self.frame_start = Some(self.pos);
                self.scanned = self.pos;
                continue;
            }
            self.frame_start = None;
            self.pos = at + 1;
            match self.buf.get(at + 1) {
                Some(&CR) => self.pos += 1,
                Some(_) => {}
                None => self.pending_cr = true,
            }
            if at - start > self.max_frame_bytes {
                self.skip(at - start + 1);
                return Err(FrameError::TooLarge {
                    limit: self.max_frame_bytes,
                    head: self.buf[start..at.min(start + HEAD_BYTES)].to_vec(),
                });
            }
            return Ok(Some(self.buf[start..at].to_vec()));
        }
    }
}

/// Wraps a payload in VT ... FS CR.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    out.push(VT);
    out.extend_from_slice(payload);
    out.push(FS);
    out.push(CR);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(d: &mut MllpDecoder) -> Option<Vec<u8>> {
        match d.next_frame() {
            Ok(v) => v,
            Err(e) => panic!("unexpected {e}"),
        }
    }

    fn drain(d: &mut MllpDecoder) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| next(d)).collect()
    }

    #[test]
    fn byte_by_byte() {
        let mut d = MllpDecoder::new(1024);
        let mut stream = encode_frame(b"MSH|first\r");
        stream.extend(encode_frame(b"MSH|second\r"));
        let mut got = Vec::new();
        for b in &stream {
            d.extend(std::slice::from_ref(b));
            got.extend(drain(&mut d));
        }
        assert_eq!(got, [b"MSH|first\r".to_vec(), b"MSH|second\r".to_vec()]);
        assert_eq!(d.skipped_bytes(), 0);
        assert!(!d.has_partial());
    }

    #[test]
    fn two_frames_in_one_read_and_empty_frame() {
        let mut d = MllpDecoder::new(1024);
        let mut stream = encode_frame(b"A");
        stream.extend(encode_frame(b""));
        stream.extend(encode_frame(b"B"));
        d.extend(&stream);
        assert_eq!(drain(&mut d), [b"A".to_vec(), vec![], b"B".to_vec()]);
        assert_eq!(d.next_frame(), Ok(None));
    }

    #[test]
    fn oversize_then_good_frame() {
        let mut d = MllpDecoder::new(8);
        d.extend(&encode_frame(b"0123456789"));
        d.extend(&encode_frame(b"ok"));
        assert!(matches!(
            d.next_frame(),
            Err(FrameError::TooLarge { limit: 8, .. })
        ));
        assert_eq!(next(&mut d), Some(b"ok".to_vec()));
        // Oversize detected before the FS arrives, rest streamed later.
        let mut d = MllpDecoder::new(8);
        d.extend(b"\x0b0123456789");
        assert!(matches!(
            d.next_frame(),
            Err(FrameError::TooLarge { limit: 8, .. })
        ));
        assert!(!d.has_partial());
        d.extend(b"more payload\x1c\r");
        assert_eq!(d.next_frame(), Ok(None));
        d.extend(&encode_frame(b"exactly8"));
        assert_eq!(next(&mut d), Some(b"exactly8".to_vec()));
        assert_eq!(d.skipped_bytes(), 11 + 14);
    }

    #[test]
    fn garbage_before_vt_is_counted() {
        let mut d = MllpDecoder::new(64);
        d.extend(b"\r\nnoise");
        assert_eq!(d.next_frame(), Ok(None));
        d.extend(b"!!\x0bMSG\x1c\r");
        assert_eq!(next(&mut d), Some(b"MSG".to_vec()));
        assert_eq!(d.skipped_bytes(), 9);
    }

    #[test]
    fn partial_frame() {
        let mut d = MllpDecoder::new(64);
        assert!(!d.has_partial());
        d.extend(b"\x0bMSH|half");
        assert_eq!(d.next_frame(), Ok(None));
        assert!(d.has_partial());
        d.extend(b" done");
        assert_eq!(d.next_frame(), Ok(None));
        d.extend(b"\x1c");
        assert_eq!(next(&mut d), Some(b"MSH|half done".to_vec()));
        assert!(!d.has_partial());
        // The CR arriving late belongs to the finished frame.
        d.extend(b"\r");
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.skipped_bytes(), 0);
    }

    #[test]
    fn fs_without_cr_and_vt_inside_frame() {
        let mut d = MllpDecoder::new(64);
        d.extend(b"\x0bA\x1c\x0bB\x1cX\x0bC\x1c\r");
        assert_eq!(drain(&mut d), [b"A".to_vec(), b"B".to_vec(), b"C".to_vec()]);
        assert_eq!(d.skipped_bytes(), 1);
        let mut d = MllpDecoder::new(64);
        d.extend(b"\x0blost\x0bkept\x1c\r");
        assert_eq!(drain(&mut d), [b"kept".to_vec()]);
        assert_eq!(d.skipped_bytes(), 5);
    }

    #[test]
    fn large_frame_in_small_chunks() {
        let payload: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let framed = encode_frame(&payload);
        let mut d = MllpDecoder::new(1 << 20);
        let mut got = Vec::new();
        for chunk in framed.chunks(7) {
            d.extend(chunk);
            got.extend(drain(&mut d));
        }
        assert_eq!(got, [payload]);
    }
}
