//! A TCP proxy between the bridge and slapd that injects faults deterministically. It frames
//! the LDAP messages (BER) passing each way, so a test can hold the answer to the next
//! request of a kind, cut the connection right after forwarding one (the directory gets the
//! request; the bridge never gets its answer), or refuse new connections.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// LDAP request kinds, by the tag of their protocolOp (RFC 4511 §4.2…4.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapOp {
    Bind,
    Search,
    Modify,
    Add,
    Delete,
    ModDn,
    Compare,
    Other,
}

impl LdapOp {
    fn from_tag(tag: u8) -> LdapOp {
        match tag {
            0x60 => LdapOp::Bind,
            0x63 => LdapOp::Search,
            0x66 => LdapOp::Modify,
            0x68 => LdapOp::Add,
            0x4a => LdapOp::Delete,
            0x6c => LdapOp::ModDn,
            0x6e => LdapOp::Compare,
            _ => LdapOp::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Deliver the answer to the next request of this kind only after this long.
    Hold(LdapOp, Duration),
    /// Forward the next request of this kind, then close both sides before its answer.
    CutAfter(LdapOp),
    /// As `CutAfter`, and then the directory is gone: every open connection is cut and new
    /// ones are refused until `restore`.
    Blackout(LdapOp),
}

impl Fault {
    fn op(&self) -> LdapOp {
        match self {
            Fault::Hold(o, _) | Fault::CutAfter(o) | Fault::Blackout(o) => *o,
        }
    }
}

#[derive(Default)]
struct Rules {
    once: Vec<Fault>,
    /// Every request of a kind whose bytes hold a pattern is answered this much later (a
    /// slow part of the directory), until `restore`.
    slow: Vec<(LdapOp, Vec<u8>, Duration)>,
    /// Every request of a kind whose bytes hold a pattern is answered only once the test
    /// `release`s it: a test orders interleavings exactly.
    gates: Vec<(LdapOp, Vec<u8>)>,
    /// Requests held at a gate so far.
    gated: usize,
    /// Every request of a kind whose bytes hold a pattern is swallowed (never reaches the
    /// directory, never answered), until `restore`: a step the bridge sent that never
    /// happened.
    stalls: Vec<(LdapOp, Vec<u8>)>,
    stalled: usize,
    refuse: bool,
    /// Requests forwarded, by kind, for tests that count.
    seen: Vec<LdapOp>,
    /// Cancelled to cut every open connection (a blackout).
    all: tokio_util::sync::CancellationToken,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub port: u16,
    rules: Arc<Mutex<Rules>>,
    /// Raised by `release`: answers held at a gate before it go out.
    released: Arc<tokio::sync::watch::Sender<u64>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let rules = Arc::new(Mutex::new(Rules::default()));
        let released = Arc::new(tokio::sync::watch::channel(0u64).0);
        let r = rules.clone();
        let rel = released.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if r.lock().unwrap().refuse {
                    drop(client);
                    continue;
                }
                let r = r.clone();
                let rel = rel.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        relay(client, server, r, rel).await;
                    }
                });
            }
        });
        FaultProxy {
            port,
            rules,
            released,
        }
    }

    /// Holds the answer to every request of kind `op` that mentions `pattern` until
    /// `release`; `gated` counts them.
    pub fn gate(&self, op: LdapOp, pattern: &str) {
        self.rules
            .lock()
            .unwrap()
            .gates
            .push((op, pattern.as_bytes().to_vec()));
    }

    /// Swallows every request of kind `op` that mentions `pattern` until `restore`.
    pub fn stall(&self, op: LdapOp, pattern: &str) {
        self.rules
            .lock()
            .unwrap()
            .stalls
            .push((op, pattern.as_bytes().to_vec()));
    }

    /// Requests swallowed so far.
    pub fn stalled(&self) -> usize {
        self.rules.lock().unwrap().stalled
    }

    /// Waits until `n` requests have been swallowed.
    pub async fn wait_stalled(&self, n: usize) {
        for _ in 0..1000 {
            if self.stalled() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("no request reached the stall");
    }

    /// Requests held at a gate so far.
    pub fn gated(&self) -> usize {
        self.rules.lock().unwrap().gated
    }

    /// Waits until `n` requests have been held at a gate.
    pub async fn wait_gated(&self, n: usize) {
        for _ in 0..1000 {
            if self.gated() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("only {} of {n} requests reached the gate", self.gated());
    }

    /// Lets every answer held at a gate until now go out.
    pub fn release(&self) {
        self.released.send_modify(|g| *g += 1);
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Applies `fault` to the next matching request (once).
    pub fn inject(&self, fault: Fault) {
        self.rules.lock().unwrap().once.push(fault);
    }

    /// Cuts every open connection and refuses new ones until `restore`: a network partition.
    pub fn partition(&self) {
        let mut r = self.rules.lock().unwrap();
        r.refuse = true;
        r.all.cancel();
    }

    /// New connections are closed at once (existing ones keep working) while `on`.
    pub fn refuse(&self, on: bool) {
        self.rules.lock().unwrap().refuse = on;
    }

    /// Answers every request of kind `op` that mentions `pattern` (e.g. a search's base DN)
    /// `delay` late, until `restore`.
    pub fn slow_down(&self, op: LdapOp, pattern: &str, delay: Duration) {
        self.rules
            .lock()
            .unwrap()
            .slow
            .push((op, pattern.as_bytes().to_vec(), delay));
    }

    /// Ends a blackout and any slowness: new connections are accepted again.
    pub fn restore(&self) {
        let mut r = self.rules.lock().unwrap();
        r.refuse = false;
        r.slow.clear();
        r.gates.clear();
        r.stalls.clear();
        drop(r);
        self.release();
        let mut r = self.rules.lock().unwrap();
        r.all = tokio_util::sync::CancellationToken::new();
    }

    /// Whether an injected fault is still waiting for its request.
    pub fn pending(&self) -> usize {
        self.rules.lock().unwrap().once.len()
    }

    pub fn seen(&self) -> Vec<LdapOp> {
        self.rules.lock().unwrap().seen.clone()
    }
}

/// The length of the BER message at the start of `buf`, when it is complete there.
fn message_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 2 {
        return None;
    }
    let (len, header) = match buf[1] {
        n if n < 0x80 => (n as usize, 2),
        n => {
            let k = (n & 0x7f) as usize;
            if buf.len() < 2 + k {
                return None;
            }
            let len = buf[2..2 + k]
                .iter()
                .fold(0usize, |a, b| (a << 8) | *b as usize);
            (len, 2 + k)
        }
    };
    (buf.len() >= header + len).then_some(header + len)
}

/// The message id and the protocolOp tag of one whole LDAPMessage.
fn id_and_tag(msg: &[u8]) -> (u64, u8) {
    let header = if msg[1] < 0x80 {
        2
    } else {
        2 + (msg[1] & 0x7f) as usize
    };
    // messageID INTEGER: 0x02 len value
    let id_len = msg[header + 1] as usize;
    let id = msg[header + 2..header + 2 + id_len]
        .iter()
        .fold(0u64, |a, b| (a << 8) | *b as u64);
    (id, msg[header + 2 + id_len])
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    rules: Arc<Mutex<Rules>>,
    released: Arc<tokio::sync::watch::Sender<u64>>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let held: Arc<Mutex<Vec<(u64, Duration)>>> = Arc::default();
    // answers held at a gate: message id → the release generation they wait past
    let gated: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    // set before a request to be cut is forwarded: no answer goes back after it, and the
    // line goes dead when the directory answers that request (so it was applied)
    let mute = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cut_at: Arc<Mutex<Option<(u64, bool)>>> = Arc::default();
    let cut = tokio_util::sync::CancellationToken::new();
    let all = rules.lock().unwrap().all.clone();
    let up = {
        let held = held.clone();
        let gated = gated.clone();
        let released = released.clone();
        let rules = rules.clone();
        let mute = mute.clone();
        let cut_at = cut_at.clone();
        async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 16384];
            loop {
                let n = match cr.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(len) = message_len(&buf) {
                    let msg: Vec<u8> = buf.drain(..len).collect();
                    let (id, tag) = id_and_tag(&msg);
                    let op = LdapOp::from_tag(tag);
                    let (fault, slow) = {
                        let mut r = rules.lock().unwrap();
                        let stall = r.stalls.iter().any(|(o, p)| {
                            *o == op && msg.windows(p.len()).any(|w| w == p.as_slice())
                        });
                        if stall {
                            r.stalled += 1;
                            continue;
                        }
                        r.seen.push(op);
                        let gate = r.gates.iter().any(|(o, p)| {
                            *o == op && msg.windows(p.len()).any(|w| w == p.as_slice())
                        });
                        if gate {
                            r.gated += 1;
                            gated.lock().unwrap().push((id, *released.borrow()));
                        }
                        let i = r.once.iter().position(|f| f.op() == op);
                        let slow = r
                            .slow
                            .iter()
                            .find(|(o, p, _)| {
                                *o == op && msg.windows(p.len()).any(|w| w == p.as_slice())
                            })
                            .map(|(_, _, d)| *d);
                        (i.map(|i| r.once.remove(i)), slow)
                    };
                    if let Some(d) = slow {
                        held.lock().unwrap().push((id, d));
                    }
                    if matches!(fault, Some(Fault::CutAfter(_) | Fault::Blackout(_))) {
                        mute.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    if sw.write_all(&msg).await.is_err() {
                        return;
                    }
                    match fault {
                        Some(Fault::Hold(_, d)) => held.lock().unwrap().push((id, d)),
                        Some(Fault::CutAfter(_)) => *cut_at.lock().unwrap() = Some((id, false)),
                        Some(Fault::Blackout(_)) => *cut_at.lock().unwrap() = Some((id, true)),
                        None => {}
                    }
                }
            }
        }
    };
    let down = {
        let cut = cut.clone();
        let rules = rules.clone();
        let mut release = released.subscribe();
        async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 16384];
            loop {
                let n = match sr.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(len) = message_len(&buf) {
                    let msg: Vec<u8> = buf.drain(..len).collect();
                    let (id, _) = id_and_tag(&msg);
                    let delay = {
                        let mut h = held.lock().unwrap();
                        let i = h.iter().position(|(hid, _)| *hid == id);
                        i.map(|i| h.remove(i).1)
                    };
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    let gate = {
                        let mut g = gated.lock().unwrap();
                        let i = g.iter().position(|(gid, _)| *gid == id);
                        i.map(|i| g.remove(i).1)
                    };
                    if let Some(generation) = gate {
                        let _ = release.wait_for(|now| *now > generation).await;
                    }
                    // the directory answered the request to cut: it was applied; the bridge
                    // never hears so
                    let cut_here = *cut_at.lock().unwrap();
                    if let Some((_, blackout)) = cut_here.filter(|(cid, _)| *cid == id) {
                        if blackout {
                            let all = {
                                let mut r = rules.lock().unwrap();
                                r.refuse = true;
                                r.all.clone()
                            };
                            all.cancel();
                        }
                        cut.cancel();
                        return;
                    }
                    if mute.load(std::sync::atomic::Ordering::SeqCst) {
                        continue;
                    }
                    if cw.write_all(&msg).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = async { tokio::join!(up, down); } => {}
        () = cut.cancelled() => {}
        () = all.cancelled() => {}
    }
}
