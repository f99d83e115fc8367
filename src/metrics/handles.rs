//! Series handles kept per thread, so that counting a request or an LDAP operation needs no
//! label hashing and no lock (the "pre-resolved label sets" of issue 24).

use std::cell::RefCell;
use std::thread::LocalKey;

/// A thread's handles to the series of one family (or two families sharing labels): which
/// `Metrics` they belong to, their labels, the handles.
pub(super) type Handles<K, H> = RefCell<Vec<(u64, K, H)>>;

/// At most this many handles per family per thread; past it the list starts again (labels
/// are bounded, but a list walked per request must stay short).
pub(super) const HANDLES_PER_THREAD: usize = 64;

/// Gives `use_handle` the handle of the series whose labels `is_key` accepts, from this
/// thread's list, else from `resolve` (then kept). Counting a request or an LDAP operation
/// hashed its labels with SipHash and took its family's lock, each time; a family never
/// drops a series, so a kept handle stays the one `/metrics` shows.
pub(super) fn with_handles<K: 'static, H: 'static>(
    handles: &'static LocalKey<Handles<K, H>>,
    owner: u64,
    is_key: impl Fn(&K) -> bool,
    resolve: impl FnOnce() -> (K, H),
    use_handle: impl FnOnce(&H),
) {
    handles.with(|cell| {
        let Ok(mut kept) = cell.try_borrow_mut() else {
            return use_handle(&resolve().1); // re-entered: not kept
        };
        if let Some((_, _, h)) = kept.iter().find(|(o, k, _)| *o == owner && is_key(k)) {
            return use_handle(h);
        }
        if kept.len() >= HANDLES_PER_THREAD {
            kept.clear();
        }
        let (key, h) = resolve();
        use_handle(&h);
        kept.push((owner, key, h));
    });
}
