use std::io::Write;
use std::os::unix::net::UnixStream;

use super::*;

fn key(b: u8) -> ForwardKey {
    ForwardKey::from_bytes([b; KEY_LEN])
}

/// Runs `primary` on one end of a socket pair in a thread, `secondary`
/// on the other here.
fn pair<P, T, R>(primary: P, secondary: impl FnOnce(UnixStream) -> R) -> (T, R)
where
    P: FnOnce(UnixStream) -> T + Send + 'static,
    T: Send + 'static,
{
    let (a, b) = UnixStream::pair().unwrap();
    let t = std::thread::spawn(move || primary(a));
    let r = secondary(b);
    (t.join().unwrap(), r)
}

/// A primary that knows `ns2` by `k`, takes batches until the end and
/// returns them, or the error that ended it.
fn primary(k: ForwardKey) -> impl FnOnce(UnixStream) -> Result<Vec<Batch>, ForwardError> {
    move |s| {
        let mut rx = Receiver::handshake(s, |name| (name == "ns2").then(|| k.clone()))?;
        assert_eq!(rx.name(), "ns2");
        let mut got = Vec::new();
        while let Some(b) = rx.next_batch()? {
            rx.ack(b.seq)?;
            got.push(b);
        }
        Ok(got)
    }
}

#[test]
fn batches_arrive_in_order_and_are_acknowledged() {
    let (got, sent) = pair(primary(key(7)), |s| {
        let mut tx = Sender::handshake(s, &key(7), "ns2")?;
        tx.send(&[b"one".as_slice(), b"two"])?;
        tx.send::<&[u8]>(&[])?;
        tx.send(&[vec![9u8; MAX_RECORD]])?;
        Ok::<_, ForwardError>(())
    });
    sent.unwrap();
    let got = got.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].seq, 1);
    assert_eq!(got[0].records, vec![b"one".to_vec(), b"two".to_vec()]);
    assert!(got[1].records.is_empty());
    assert_eq!(got[2].records[0].len(), MAX_RECORD);
}

#[test]
fn a_wrong_key_is_refused_at_the_handshake() {
    let (got, sent) = pair(primary(key(7)), |s| {
        Sender::handshake(s, &key(8), "ns2").map(|_| ())
    });
    assert!(
        matches!(got, Err(ForwardError::Refused(Refusal::BadProof))),
        "{got:?}"
    );
    assert!(
        matches!(sent, Err(ForwardError::Refused(Refusal::BadProof))),
        "{sent:?}"
    );
}

#[test]
fn an_unknown_name_is_refused() {
    let (got, sent) = pair(primary(key(7)), |s| {
        Sender::handshake(s, &key(7), "ns3").map(|_| ())
    });
    assert!(matches!(
        got,
        Err(ForwardError::Refused(Refusal::UnknownServer))
    ));
    assert!(matches!(
        sent,
        Err(ForwardError::Refused(Refusal::UnknownServer))
    ));
}

#[test]
fn a_primary_without_the_key_cannot_acknowledge() {
    // It skips the proof check and makes up its welcome.
    let (_, sent) = pair(
        |mut s: UnixStream| {
            let _ = expect(&mut s, HELLO);
            write_message(&mut s, CHALLENGE, &[1u8; NONCE_LEN]).unwrap();
            let _ = expect(&mut s, PROOF);
            write_message(&mut s, WELCOME, &[0u8; TAG_LEN]).unwrap();
        },
        |s| Sender::handshake(s, &key(7), "ns2").map(|_| ()),
    );
    assert!(matches!(sent, Err(ForwardError::BadTag(_))), "{sent:?}");
}

/// The bytes of one batch message as the sender wrote it.
fn batch_bytes(records: &[&[u8]]) -> Vec<u8> {
    let (_, bytes) = pair(primary(key(7)), |s| {
        let copy = s.try_clone().unwrap();
        let mut tx = Sender::handshake(
            Tap {
                s,
                copy: Vec::new(),
            },
            &key(7),
            "ns2",
        )
        .unwrap();
        tx.stream.copy.clear();
        tx.send(records).unwrap();
        let bytes = std::mem::take(&mut tx.stream.copy);
        drop(tx);
        drop(copy);
        bytes
    });
    bytes
}

/// A stream that keeps a copy of what is written.
struct Tap {
    s: UnixStream,
    copy: Vec<u8>,
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.s.read(buf)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.s.write(buf)?;
        self.copy.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.s.flush()
    }
}

/// Handshakes as ns2, then writes `raw` instead of a batch the sender
/// made; returns what the primary made of it.
fn inject(raw: Vec<u8>) -> Result<Vec<Batch>, ForwardError> {
    let (got, _) = pair(primary(key(7)), move |s| {
        let mut raw_end = s.try_clone().unwrap();
        let tx = Sender::handshake(s, &key(7), "ns2").unwrap();
        raw_end.write_all(&raw).unwrap();
        let reply = read_message(&mut raw_end);
        drop(tx);
        reply
    });
    got
}

#[test]
fn a_tampered_batch_is_refused() {
    let mut bytes = batch_bytes(&[b"a sealed report"]);
    // A byte of the record (after length, type, sequence, count, length).
    bytes[4 + 1 + 8 + 4 + 4 + 2] ^= 1;
    let got = inject(bytes);
    assert!(matches!(got, Err(ForwardError::BadTag(_))), "{got:?}");
}

#[test]
fn a_batch_replayed_from_another_session_is_refused() {
    let bytes = batch_bytes(&[b"a sealed report"]);
    let got = inject(bytes);
    assert!(matches!(got, Err(ForwardError::BadTag(_))), "{got:?}");
}

#[test]
fn garbage_is_refused_as_a_protocol_error() {
    let (got, _) = pair(primary(key(7)), |mut s| {
        s.write_all(&[0, 0, 0, 3, HELLO, 1, 2]).unwrap();
        read_message(&mut s)
    });
    assert!(
        matches!(got, Err(ForwardError::Refused(Refusal::Protocol))),
        "{got:?}"
    );
}
