//! Where log lines go: standard error, written without the process-wide lock that
//! `std::io::stderr()` takes around every write.
//!
//! With that lock, two workers finishing requests at once queue on it for the length of a
//! `write(2)`, and each wait is a futex sleep and a context switch: the busiest lock in the
//! bridge under load. A line is formatted whole before it is written, and one `write(2)` of
//! at most `PIPE_BUF` bytes is atomic on a pipe (and is one record on journald's stream
//! socket, a file or a terminal), so such lines are written side by side without a lock.
//! Longer lines (a large audit record) may take more than one `write(2)`; they take the
//! lock exclusively, so no other line lands inside them.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, PoisonError, RwLock};

use tracing_subscriber::fmt::MakeWriter;

/// Lines up to this many bytes are written by one `write(2)` that no other writer can split:
/// POSIX's `PIPE_BUF`, 4096 on Linux.
const ATOMIC_LINE: usize = 4096;

/// A log destination shared by every thread (cheap to clone).
#[derive(Clone, Debug)]
pub struct LineSink {
    /// `None` when there is no standard error: lines are dropped, as std drops them.
    file: Option<Arc<File>>,
    /// Read-held by short lines (they never wait on one another), write-held by long ones.
    long: Arc<RwLock<()>>,
}

impl LineSink {
    /// Standard error, duplicated (it is the same open file; a closed fd 2 drops lines).
    pub fn stderr() -> LineSink {
        let fd = io::stderr().as_fd().try_clone_to_owned().ok();
        LineSink {
            file: fd.map(|fd| Arc::new(File::from(fd))),
            long: Arc::new(RwLock::new(())),
        }
    }

    /// Writes to `fd` (a pipe in tests).
    pub fn new(fd: OwnedFd) -> LineSink {
        LineSink {
            file: Some(Arc::new(File::from(fd))),
            long: Arc::new(RwLock::new(())),
        }
    }
}

/// One line's writer, as `tracing_subscriber`'s formatter asks for one per event.
pub struct LineWriter<'a>(&'a LineSink);

impl<'a> MakeWriter<'a> for LineSink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter(self)
    }
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    /// The formatter hands over one whole line here.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let sink = self.0;
        let Some(file) = sink.file.as_deref() else {
            return Ok(());
        };
        // the lock guards no data, so a panic elsewhere while holding it harms nothing
        if buf.len() <= ATOMIC_LINE {
            let _shared = sink.long.read().unwrap_or_else(PoisonError::into_inner);
            (&*file).write_all(buf)
        } else {
            let _alone = sink.long.write().unwrap_or_else(PoisonError::into_inner);
            (&*file).write_all(buf)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use std::io::Read;

    /// Line `i` of writer `w`: its own letter, repeated to a length that crosses `PIPE_BUF`
    /// every few lines.
    fn line(w: usize, i: usize) -> Vec<u8> {
        let len = if i % 5 == 0 { 9000 + i } else { 40 + i * 7 };
        let mut l = vec![b'a' + w as u8; len];
        l.push(b'\n');
        l
    }

    #[test]
    fn lines_written_at_once_from_many_threads_arrive_whole() {
        let (mut reader, writer) = io::pipe().unwrap();
        let sink = LineSink::new(OwnedFd::from(writer));
        let (writers, lines) = (6usize, 200usize);
        let collect = std::thread::spawn(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all
        });
        let threads: Vec<_> = (0..writers)
            .map(|w| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..lines {
                        sink.make_writer().write_all(&line(w, i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(sink);
        let all = collect.join().unwrap();
        let mut next = vec![0usize; writers];
        for got in all.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let w = usize::from(got[0] - b'a');
            assert!(
                got.iter().all(|&b| b == got[0]),
                "a line was split by another"
            );
            let mut want = line(w, next[w]);
            want.pop();
            assert_eq!(
                got,
                &want[..],
                "writer {w}'s lines arrive whole and in order"
            );
            next[w] += 1;
        }
        assert_eq!(next, vec![lines; writers], "every line arrived");
    }
}
