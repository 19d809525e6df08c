//! The MLLP listener as a sending system sees it: ACK codes, framing edge cases, idempotency.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::*;

#[tokio::test]
async fn an_adt_message_is_acknowledged_and_becomes_a_person() {
    let t = spawn_hub().await;
    let ack = send(t.mllp(), &adt("CTRL-1", "MRN-1", "Nguyen")).await;
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    assert_eq!(field(&ack, "MSA", 2), "CTRL-1");
    // The ACK is built from the inbound MSH: applications swapped, version echoed.
    assert_eq!(field(&ack, "MSH", 3), "CAREHUB");
    assert_eq!(field(&ack, "MSH", 5), "EMR");
    assert_eq!(field(&ack, "MSH", 12), "2.5.1");
    assert!(field(&ack, "MSH", 9).starts_with("ACK^A04"), "{ack}");

    let persons = t.hub.store.find_persons("MRN-1", Some("CLINIC")).await.unwrap();
    assert_eq!(persons.len(), 1);
    let p = &persons[0];
    assert_eq!(p.profile["names"][0]["family"], "Nguyen");
    assert_eq!(p.profile["birth_date"], "1985-03-07");
    assert_eq!(p.profile["sex"], "female");
    assert_eq!(p.profile["telecom"][0]["value"], "+84903123456");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn the_same_message_twice_is_applied_once_and_acknowledged_twice() {
    let t = spawn_hub().await;
    let msg = adt("DUP-1", "MRN-DUP", "Tran");
    let first = send(t.mllp(), &msg).await;
    let second = send(t.mllp(), &msg).await;
    assert_eq!(field(&first, "MSA", 1), "AA");
    assert_eq!(
        field(&second, "MSA", 1),
        "AA",
        "a retransmission is accepted again"
    );
    assert_eq!(t.hub.store.person_count().await.unwrap(), 1);
    let p = &t.hub.store.find_persons("MRN-DUP", None).await.unwrap()[0];
    assert_eq!(p.source_records.len(), 1, "one source record");
    let dups = messages_with(&t.hub.store, carehub::store::MessageStatus::Duplicate).await;
    assert_eq!(dups.len(), 1, "the second copy is logged as a duplicate");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn an_update_from_the_same_system_changes_the_same_person() {
    let t = spawn_hub().await;
    send(t.mllp(), &adt("U-1", "MRN-U", "Le")).await;
    let update = adt("U-2", "MRN-U", "Le-Pham").replace("ADT^A04", "ADT^A08");
    assert_eq!(field(&send(t.mllp(), &update).await, "MSA", 1), "AA");
    assert_eq!(t.hub.store.person_count().await.unwrap(), 1);
    let p = &t.hub.store.find_persons("MRN-U", None).await.unwrap()[0];
    assert_eq!(
        p.profile["names"][0]["family"], "Le-Pham",
        "the newest name comes first"
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn garbage_gets_ar_with_a_reason_and_its_bytes_are_kept() {
    let t = spawn_hub().await;
    let ack = send(t.mllp(), "this is not HL7 at all").await;
    assert_eq!(field(&ack, "MSA", 1), "AR", "{ack}");
    assert!(ack.contains("ERR"), "an ERR segment: {ack}");
    let errors = messages_with(&t.hub.store, carehub::store::MessageStatus::Error).await;
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("not a valid HL7"),
        "{:?}",
        errors[0].error
    );
    let detail = t.hub.store.message(errors[0].id).await.unwrap().unwrap();
    assert_eq!(detail.raw, b"this is not HL7 at all");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn an_unmappable_message_gets_ae_naming_the_rule() {
    let t = spawn_hub().await;
    let bad_date = adt("BAD-1", "MRN-B", "Ho").replace("19850307", "19851345");
    let ack = send(t.mllp(), &bad_date).await;
    assert_eq!(field(&ack, "MSA", 1), "AE", "{ack}");
    let err = field(&ack, "ERR", 8);
    assert!(
        err.contains("birth_date") && err.contains("PID-7"),
        "the reason names rule and path: {ack}"
    );
    assert!(!ack.contains("19851345"), "no patient data in the reason");
    assert_eq!(t.hub.store.person_count().await.unwrap(), 0);
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_message_type_without_mapping_is_kept_and_accepted() {
    let t = spawn_hub().await;
    let oru = "MSH|^~\\&|LAB|CLINIC|CAREHUB|CLINIC|20261120||VXU^V04|LAB-1|P|2.5\rPID|1||MRN-L^^^CLINIC^MR\rRXA|0|1|20261120|20261120|08^HEPB^CVX|0.5\r";
    let ack = send(t.mllp(), oru).await;
    assert_eq!(field(&ack, "MSA", 1), "AA");
    let unmapped = messages_with(&t.hub.store, carehub::store::MessageStatus::Unmapped).await;
    assert_eq!(unmapped.len(), 1);
    assert_eq!(
        unmapped[0].error.as_deref(),
        Some("no mapping for message type VXU^V04")
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn latin1_messages_are_read_in_their_declared_charset() {
    let t = spawn_hub().await;
    let text = "MSH|^~\\&|EMR|CLINIC|CAREHUB|CLINIC|20261120||ADT^A04|L1-1|P|2.5|||||FRA|8859/1\rPID|1||MRN-FR^^^CLINIC^MR||Müller^Zoë||1970|F\r";
    let (bytes, _, _) = encoding_latin1(text);
    let mut s = TcpStream::connect(t.mllp()).await.unwrap();
    let mut framed = vec![VT];
    framed.extend_from_slice(&bytes);
    framed.extend_from_slice(&[FS, CR]);
    s.write_all(&framed).await.unwrap();
    let ack = read_frame(&mut s).await.unwrap();
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    let p = &t.hub.store.find_persons("MRN-FR", None).await.unwrap()[0];
    assert_eq!(p.profile["names"][0]["family"], "Müller");
    assert_eq!(p.profile["names"][0]["given"][0], "Zoë");
    t.hub.shutdown().await;
}

fn encoding_latin1(text: &str) -> (Vec<u8>, (), ()) {
    (text.chars().map(|c| c as u32 as u8).collect(), (), ())
}

#[tokio::test]
async fn a_frame_split_over_many_reads_is_one_message() {
    let t = spawn_hub().await;
    let mut s = TcpStream::connect(t.mllp()).await.unwrap();
    for chunk in frame(&adt("SPLIT-1", "MRN-S", "Vo")).chunks(7) {
        s.write_all(chunk).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ack = read_frame(&mut s).await.unwrap();
    assert_eq!(field(&ack, "MSA", 1), "AA");
    assert_eq!(field(&ack, "MSA", 2), "SPLIT-1");
    assert_eq!(t.hub.store.person_count().await.unwrap(), 1);
    t.hub.shutdown().await;
}

#[tokio::test]
async fn two_frames_in_one_write_get_two_acks_in_order() {
    let t = spawn_hub().await;
    let mut s = TcpStream::connect(t.mllp()).await.unwrap();
    let mut both = frame(&adt("TWO-1", "MRN-T1", "Dang"));
    both.extend(frame(&adt("TWO-2", "MRN-T2", "Bui")));
    s.write_all(&both).await.unwrap();
    let a1 = read_frame(&mut s).await.unwrap();
    let a2 = read_frame(&mut s).await.unwrap();
    assert_eq!(field(&a1, "MSA", 2), "TWO-1");
    assert_eq!(field(&a2, "MSA", 2), "TWO-2");
    assert_eq!(t.hub.store.person_count().await.unwrap(), 2);
    t.hub.shutdown().await;
}

#[tokio::test]
async fn bytes_before_the_start_block_are_skipped() {
    let t = spawn_hub().await;
    let mut s = TcpStream::connect(t.mllp()).await.unwrap();
    let mut data = b"\r\n\r\nnoise".to_vec();
    data.extend(frame(&adt("NOISE-1", "MRN-N", "Ngo")));
    s.write_all(&data).await.unwrap();
    let ack = read_frame(&mut s).await.unwrap();
    assert_eq!(field(&ack, "MSA", 1), "AA");
    assert_eq!(field(&ack, "MSA", 2), "NOISE-1");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn an_oversize_frame_is_refused_and_the_connection_goes_on() {
    let t = spawn_hub_with(HubOptions {
        mllp_extra: "max_frame_bytes: 2048\n".into(),
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(t.mllp()).await.unwrap();
    let big = adt("BIG-1", "MRN-BIG", &"X".repeat(5000));
    s.write_all(&frame(&big)).await.unwrap();
    let refused = read_frame(&mut s).await.unwrap();
    assert_eq!(field(&refused, "MSA", 1), "AR", "{refused}");
    assert_eq!(
        field(&refused, "MSA", 2),
        "BIG-1",
        "the sender can match the reject: {refused}"
    );
    let errors = messages_with(&t.hub.store, carehub::store::MessageStatus::Error).await;
    assert_eq!(
        errors.len(),
        1,
        "a trace of the refused frame is in the message log"
    );
    assert!(
        errors[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("max_frame_bytes")
    );
    s.write_all(&frame(&adt("AFTER-1", "MRN-A", "Ly"))).await.unwrap();
    let ok = read_frame(&mut s).await.unwrap();
    assert_eq!(field(&ok, "MSA", 2), "AFTER-1");
    assert_eq!(field(&ok, "MSA", 1), "AA");
    assert!(
        t.hub
            .store
            .find_persons("MRN-BIG", None)
            .await
            .unwrap()
            .is_empty()
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_connection_dropped_mid_frame_stores_and_acknowledges_nothing() {
    let t = spawn_hub().await;
    {
        let mut s = TcpStream::connect(t.mllp()).await.unwrap();
        let f = frame(&adt("HALF-1", "MRN-H", "Mai"));
        s.write_all(&f[..f.len() / 2]).await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let n = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut rest),
        )
        .await
        .expect("the hub closes its side")
        .unwrap_or(0);
        assert_eq!(n, 0, "no ACK for half a message");
    }
    // A later, whole message still works, and the half one left no trace.
    let ack = send(t.mllp(), &adt("WHOLE-1", "MRN-W", "Mai")).await;
    assert_eq!(field(&ack, "MSA", 1), "AA");
    let all = t
        .hub
        .store
        .messages(&carehub::store::MessageFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "only the whole message is in the log");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn many_connections_at_once_are_all_acknowledged() {
    let t = spawn_hub().await;
    let addr = t.mllp();
    let mut tasks = Vec::new();
    for c in 0..8 {
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            for i in 0..25 {
                let id = format!("C{c}-{i}");
                s.write_all(&frame(&adt(&id, &format!("MRN-{c}-{i}"), "Phan")))
                    .await
                    .unwrap();
                let ack = read_frame(&mut s).await.unwrap();
                assert_eq!(field(&ack, "MSA", 2), id);
                assert_eq!(field(&ack, "MSA", 1), "AA");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(t.hub.store.person_count().await.unwrap(), 200);
    t.hub.shutdown().await;
}

/// The `mllp_send` command of the PyPI package `hl7` — a client we did not write.
#[tokio::test]
async fn mllp_send_from_python_hl7_is_acknowledged() {
    let probe = std::process::Command::new("mllp_send").arg("--version").output();
    if probe.is_err() {
        if required() {
            panic!("CAREHUB_REQUIRE_SERVICES=1 but mllp_send is missing: python3 -m pip install hl7");
        }
        eprintln!("\n!!! SKIPPED: mllp_send not found (python3 -m pip install hl7) !!!\n");
        return;
    }
    let t = spawn_hub().await;
    let file = t.dir.path().join("send.hl7");
    let msgs = format!(
        "{}\n{}\n",
        adt("PY-1", "MRN-PY1", "Hoang").replace('\r', "\n"),
        adt("PY-2", "MRN-PY2", "Vu").replace('\r', "\n")
    );
    std::fs::write(&file, msgs).unwrap();
    let port = t.mllp().port().to_string();
    let out = tokio::process::Command::new("mllp_send")
        .args(["--loose", "--file"])
        .arg(&file)
        .args(["--port", &port, "127.0.0.1"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "mllp_send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let acks: Vec<&str> = stdout.split("MSH|").skip(1).collect();
    assert_eq!(acks.len(), 2, "two ACKs printed: {stdout}");
    for a in &acks {
        assert!(a.contains("MSA|AA|PY-"), "{stdout}");
    }
    assert_eq!(t.hub.store.find_persons("MRN-PY1", None).await.unwrap().len(), 1);
    assert_eq!(t.hub.store.find_persons("MRN-PY2", None).await.unwrap().len(), 1);
    t.hub.shutdown().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let t = spawn_hub_with(HubOptions {
        mllp_extra: "idle_timeout_secs: 1\n".into(),
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(t.mllp()).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut s, &mut byte),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "the hub closes a silent connection: {read:?}"
    );
    t.hub.shutdown().await;
}

/// True when the hub has closed `s` (EOF or reset) within `within`.
async fn closed_by_hub(s: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, tokio::io::AsyncReadExt::read(s, &mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.2, 127.0.0.3, …).
async fn connect_from(from: &str, addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// The user's report: 193 idle connections left a real sender without an ACK for over 5 s.
/// 300 sockets stay below the usual 1024 file descriptors per process (the hub keeps at
/// most `max_connections` of them open on its side).
#[tokio::test]
async fn three_hundred_idle_connections_do_not_hold_up_a_real_sender() {
    let t = spawn_hub().await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(t.mllp()).await.unwrap());
    }
    let started = std::time::Instant::now();
    let ack = send(t.mllp(), &adt("REAL-1", "MRN-REAL", "Quach")).await;
    let waited = started.elapsed();
    eprintln!("a real sender behind 300 idle connections got its ACK in {waited:?}");
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    assert!(
        waited < Duration::from_secs(1),
        "the real sender waited {waited:?} behind idle connections"
    );
    let mut closed = 0;
    for s in &mut idle {
        if closed_by_hub(s, Duration::from_millis(20)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 300 - 64,
        "the longest-idle connections were closed: {closed}"
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_connection_without_a_whole_first_frame_is_closed_after_first_frame_timeout() {
    let t = spawn_hub_with(HubOptions {
        mllp_extra: "first_frame_timeout_secs: 1
"
        .into(),
        ..Default::default()
    })
    .await;
    let mut silent = TcpStream::connect(t.mllp()).await.unwrap();
    let mut half = TcpStream::connect(t.mllp()).await.unwrap();
    let f = frame(&adt("SLOW-1", "MRN-SLOW", "Kim"));
    half.write_all(&f[..f.len() / 2]).await.unwrap();
    let mut talker = TcpStream::connect(t.mllp()).await.unwrap();
    talker
        .write_all(&frame(&adt("FAST-1", "MRN-F1", "Kim")))
        .await
        .unwrap();
    assert_eq!(field(&read_frame(&mut talker).await.unwrap(), "MSA", 1), "AA");

    assert!(
        closed_by_hub(&mut silent, Duration::from_secs(5)).await,
        "a silent connection is closed"
    );
    assert!(
        closed_by_hub(&mut half, Duration::from_secs(5)).await,
        "a half frame is not enough"
    );
    // A connection that has sent a frame is held to idle_timeout_secs (300 s) only.
    tokio::time::sleep(Duration::from_millis(500)).await;
    talker
        .write_all(&frame(&adt("FAST-2", "MRN-F2", "Kim")))
        .await
        .unwrap();
    assert_eq!(field(&read_frame(&mut talker).await.unwrap(), "MSA", 1), "AA");
    assert!(
        t.hub
            .store
            .find_persons("MRN-SLOW", None)
            .await
            .unwrap()
            .is_empty()
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn at_max_connections_the_longest_idle_connection_makes_room() {
    let t = spawn_hub_with(HubOptions {
        mllp_extra: "max_connections: 2
"
        .into(),
        ..Default::default()
    })
    .await;
    let mut first = TcpStream::connect(t.mllp()).await.unwrap();
    first
        .write_all(&frame(&adt("LIM-1", "MRN-L1", "Chu")))
        .await
        .unwrap();
    assert_eq!(field(&read_frame(&mut first).await.unwrap(), "MSA", 1), "AA");
    let mut second = TcpStream::connect(t.mllp()).await.unwrap();
    second
        .write_all(&frame(&adt("LIM-2", "MRN-L2", "Chu")))
        .await
        .unwrap();
    assert_eq!(field(&read_frame(&mut second).await.unwrap(), "MSA", 1), "AA");

    let mut third = TcpStream::connect(t.mllp()).await.unwrap();
    third
        .write_all(&frame(&adt("LIM-3", "MRN-L3", "Chu")))
        .await
        .unwrap();
    let ack = read_frame(&mut third).await.expect("the newcomer is served");
    assert_eq!(field(&ack, "MSA", 2), "LIM-3");
    assert!(
        closed_by_hub(&mut first, Duration::from_secs(2)).await,
        "the longest idle is closed"
    );
    second
        .write_all(&frame(&adt("LIM-4", "MRN-L4", "Chu")))
        .await
        .unwrap();
    assert_eq!(
        field(&read_frame(&mut second).await.unwrap(), "MSA", 1),
        "AA",
        "the other stays"
    );
    t.hub.shutdown().await;
}

#[tokio::test]
async fn a_newcomer_is_refused_only_when_no_connection_is_idle() {
    let t = spawn_hub_with(HubOptions {
        mllp_extra: "max_connections: 1
"
        .into(),
        ..Default::default()
    })
    .await;
    let mut busy = TcpStream::connect(t.mllp()).await.unwrap();
    let f = frame(&adt("MID-1", "MRN-MID", "Luu"));
    busy.write_all(&f[..20]).await.unwrap();
    // Give the hub time to read the partial frame (then the connection is busy, not idle).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut newcomer = TcpStream::connect(t.mllp()).await.unwrap();
    assert!(
        closed_by_hub(&mut newcomer, Duration::from_secs(2)).await,
        "refused: the only connection is inside a frame"
    );
    busy.write_all(&f[20..]).await.unwrap();
    let ack = read_frame(&mut busy)
        .await
        .expect("the frame in progress is finished");
    assert_eq!(field(&ack, "MSA", 1), "AA");
    t.hub.shutdown().await;
}

#[tokio::test]
async fn one_peer_cannot_take_more_than_max_connections_per_peer() {
    let t = spawn_hub_with(HubOptions {
        mllp_extra: "max_connections_per_peer: 2
"
        .into(),
        ..Default::default()
    })
    .await;
    let f = frame(&adt("PEER-1", "MRN-P1", "Ta"));
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from("127.0.0.2", t.mllp()).await;
        s.write_all(&f[..20]).await.unwrap();
        busy.push(s);
    }
    // Give the hub time to read the partial frames (then the connections are busy, not idle).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut third = connect_from("127.0.0.2", t.mllp()).await;
    assert!(
        closed_by_hub(&mut third, Duration::from_secs(2)).await,
        "a third from the same address is refused"
    );
    let mut other = connect_from("127.0.0.3", t.mllp()).await;
    other
        .write_all(&frame(&adt("PEER-2", "MRN-P2", "Ta")))
        .await
        .unwrap();
    assert_eq!(
        field(&read_frame(&mut other).await.unwrap(), "MSA", 1),
        "AA",
        "another address is served"
    );
    for s in &mut busy {
        s.write_all(&f[20..]).await.unwrap();
        assert_eq!(field(&read_frame(s).await.unwrap(), "MSA", 1), "AA");
    }
    t.hub.shutdown().await;
}
