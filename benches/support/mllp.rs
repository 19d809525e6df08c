//! MLLP senders for the benchmarks: distinct ADT^A04 messages and ACK reading.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A distinct person per message: names, birth dates, phones and streets vary, so that
/// matching finds no look-alike and every ACK waits for a new person's rows.
pub fn message(run: usize, sender: usize, i: usize) -> Vec<u8> {
    const FAMILY: [&str; 8] = ["Nguyễn", "Trần", "Lê", "Phạm", "Иванова", "王", "Smith", "Hoàng"];
    const GIVEN: [&str; 12] = [
        "Lan",
        "Minh",
        "Anh",
        "Hùng",
        "Thảo",
        "Ольга",
        "Dũng",
        "Mai",
        "Quân",
        "Linh",
        "伟",
        "Emily",
    ];
    let n = sender * 100_000 + i;
    // Each run its own control ids and identifiers, so that runs sharing a database (PostgreSQL)
    // each make new persons.
    let sender = format!("{run}S{sender}");
    let text = format!(
        "MSH|^~\\&|EMR|CLINIC|CAREHUB|CLINIC|20261120083000+0700||ADT^A04^ADT_A01|B{sender}-{i}|P|2.5.1\r\
         EVN|A04|20261120083000\r\
         PID|1||MRN{sender}X{i}^^^CLINIC^MR~0791{i:08}{sender}^^^VN-CCCD^NI||{}^{} {}^^^^^L||{}{:02}{:02}|F|||{} Lý Thường Kiệt^^Hà Nội^^100000^VN^H||^PRN^CP^^84^903^{:06}|||||||||||||||||N\r\
         PV1|1|O|KHAM^101^1\r",
        FAMILY[n % 8],
        GIVEN[(n / 8) % 12],
        GIVEN[(n / 96) % 12],
        1930 + (n / 1152) % 90,
        1 + (n / 7) % 12,
        1 + (n / 3) % 28,
        n % 997,
        n % 1_000_000
    );
    let mut v = vec![0x0b];
    v.extend_from_slice(text.as_bytes());
    v.extend_from_slice(&[0x1c, 0x0d]);
    v
}

/// Reads the next ACK frame from `s` (`buf` keeps what was read past it); true for `AA`.
pub async fn read_ack(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == [0x1c, 0x0d]) {
            let ok = buf[..end].windows(7).any(|w| w == b"MSA|AA|");
            buf.drain(..end + 2);
            return ok;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
