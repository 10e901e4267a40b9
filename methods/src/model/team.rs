//! A team: every thread of the current pool running one closure at once, meeting at a
//! spinning barrier between dependent stages and sharing each stage's work out of a common
//! counter — one parallel section for a whole decode step instead of one fork and join per
//! product.
//!
//! Why: on two threads a decode step of SmolLM2-135M runs about 150 parallel sections (four
//! products and the attention per layer, and the head), each 7–40 µs. A `rayon::join` per
//! section hands the second half over in 0.6–0.7 µs, returns 0.3–0.9 µs after the later
//! half ends, and its two fixed halves end about 1.5 µs apart, so the products reached about
//! 80 % of the two threads' read bandwidth against 90 % on one. A team's barrier costs a
//! cache line's round trip; nine tenths of each product are split in fixed parts and the
//! last tenth handed out from a counter to whichever member is free, so that the members end
//! a stage together. Work a stage needs whole before the next (the
//! norms, the activations' quantization) each member does for itself, identically.
//!
//! The members spin while they wait (as llama.cpp's threads do), yielding the CPU after a
//! while so that an oversubscribed machine still makes progress; the spinning is the
//! method's own CPU time and is measured as such. One team runs at a time in a process: a
//! step that finds one running takes the other path (a team inside a team could wait on its
//! own thread).

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// The share of a stage handed out in fixed parts, one per member, before the rest is
/// taken from the counter.
const FIXED: f64 = 0.9;

/// Spins before a waiting member yields the CPU at each round (about 50–100 µs).
const SPINS: u32 = 1 << 14;

/// A member's view of its team.
pub struct Team<'a> {
    index: usize,
    size: usize,
    shared: &'a Shared,
}

/// What the members share.
struct Shared {
    /// Members arrived at the current barrier.
    arrived: AtomicUsize,
    /// Barriers passed.
    round: AtomicUsize,
    /// Set when a member failed: the others leave at their next barrier.
    abort: AtomicBool,
    /// The first failure.
    error: Mutex<Option<Error>>,
    /// Each stage's counter of parts handed out past the fixed ones.
    taken: Vec<AtomicUsize>,
}

/// Whether a team is running in this process.
static BUSY: AtomicBool = AtomicBool::new(false);

/// Runs `f` on every thread of the current pool at once (each with its own [`Team`]) and
/// gives member 0's result, or the first member's error. `None` where no team can form:
/// a pool of one thread, or another team running in this process. `stages` counters are
/// available to [`Team::parts`]. A member's panic is resumed here after the others left.
pub fn run<R: Send>(stages: usize, f: impl Fn(&Team) -> Result<R> + Sync) -> Option<Result<R>> {
    if rayon::current_num_threads() < 2 || BUSY.swap(true, Ordering::Acquire) {
        return None;
    }
    let shared = Shared {
        arrived: AtomicUsize::new(0),
        round: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        error: Mutex::new(None),
        taken: (0..stages).map(|_| AtomicUsize::new(0)).collect(),
    };
    let results = rayon::broadcast(|ctx| {
        let team = Team {
            index: ctx.index(),
            size: ctx.num_threads(),
            shared: &shared,
        };
        match catch_unwind(AssertUnwindSafe(|| f(&team))) {
            Ok(Ok(r)) => Ok(Some(r)),
            Ok(Err(e)) => {
                // The first failure is kept: a member that left because of it (`sync`'s
                // error) sees the abort only after the failure is stored here.
                shared.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                shared.abort.store(true, Ordering::Release);
                Ok(None)
            }
            Err(panic) => {
                shared.abort.store(true, Ordering::Release);
                Err(panic)
            }
        }
    });
    BUSY.store(false, Ordering::Release);
    let mut first = None;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Err(panic) => resume_unwind(panic),
            Ok(r) if i == 0 => first = r,
            Ok(_) => {}
        }
    }
    match shared.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Some(Err(e)),
        None => first.map(Ok),
    }
}

/// What [`Team::sync`] gives a member whose team failed elsewhere.
const LEFT: &str = "a member of the decode team failed";

impl Team<'_> {
    /// This member's index, `0..size`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Members.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Waits until every member arrives here; an error where a member failed instead.
    /// Writes before it are seen by every member after it.
    pub fn sync(&self) -> Result<()> {
        let s = self.shared;
        let round = s.round.load(Ordering::Acquire);
        if s.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.size {
            s.arrived.store(0, Ordering::Relaxed);
            s.round.store(round + 1, Ordering::Release);
        } else {
            let mut spins = 0u32;
            while s.round.load(Ordering::Acquire) == round {
                if s.abort.load(Ordering::Acquire) {
                    return Err(Error::Model(LEFT.into()));
                }
                spins += 1;
                if spins < SPINS {
                    std::hint::spin_loop();
                } else {
                    spins = 0;
                    std::thread::yield_now();
                }
            }
        }
        if s.abort.load(Ordering::Acquire) {
            return Err(Error::Model(LEFT.into()));
        }
        Ok(())
    }

    /// This member's fixed share of `n` items (contiguous, sizes differing by at most one).
    pub fn share(&self, n: usize) -> Range<usize> {
        (self.index * n / self.size)..((self.index + 1) * n / self.size)
    }

    /// This member's parts of stage `stage`'s `n` items: first its fixed part of the first
    /// [`FIXED`] of them, then parts of the rest as it takes them from the stage's counter,
    /// each what is left divided by the members and at least `min` items. Every item goes to one
    /// member once the members' iterators are all spent.
    pub fn parts(&self, stage: usize, n: usize, min: usize) -> impl Iterator<Item = Range<usize>> + '_ {
        let fixed = (n as f64 * FIXED) as usize / self.size * self.size;
        let (size, index) = (self.size, self.index);
        let taken = &self.shared.taken[stage];
        let mut own = Some((index * fixed / size)..((index + 1) * fixed / size)).filter(|r| !r.is_empty());
        std::iter::from_fn(move || {
            if let Some(r) = own.take() {
                return Some(r);
            }
            let rest = n - fixed;
            let mut at = taken.load(Ordering::Relaxed);
            loop {
                if at >= rest {
                    return None;
                }
                let take = ((rest - at) / size).max(min).max(1).min(rest - at);
                match taken.compare_exchange_weak(at, at + take, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => return Some((fixed + at)..(fixed + at + take)),
                    Err(now) => at = now,
                }
            }
        })
    }
}

/// A buffer the members write disjoint parts of between two [`Team::sync`]s and read whole
/// after one.
pub struct Board<'a> {
    ptr: *mut f32,
    len: usize,
    buf: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a board is a plain f32 buffer; who writes and reads what, when, is the contract of
// `part` and `all` (disjoint writes, reads after a barrier), which the barrier's
// acquire/release ordering makes visible across threads.
unsafe impl Sync for Board<'_> {}

impl<'a> Board<'a> {
    /// A board over `buf`, which it borrows mutably for its life.
    pub fn new(buf: &'a mut [f32]) -> Board<'a> {
        Board {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            buf: std::marker::PhantomData,
        }
    }

    /// Values `r`, to write.
    ///
    /// # Safety
    /// No other member reads or writes any of `r` until the next [`Team::sync`].
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn part(&self, r: Range<usize>) -> &mut [f32] {
        assert!(r.start <= r.end && r.end <= self.len, "a part inside the board");
        // SAFETY: in bounds (checked); unaliased by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.end - r.start) }
    }

    /// Every value, to read.
    ///
    /// # Safety
    /// No member writes the board until the next [`Team::sync`].
    pub unsafe fn all(&self) -> &[f32] {
        // SAFETY: the buffer's whole length; no writer by the caller's contract.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{Board, Team, run};
    use crate::error::{Error, Result};

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap()
    }

    /// [`run`] on `p`, waiting while another test's team holds the process's one.
    fn formed<R: Send>(p: &rayon::ThreadPool, stages: usize, f: impl Fn(&Team) -> Result<R> + Sync) -> Result<R> {
        for _ in 0..1_000_000 {
            if let Some(r) = p.install(|| run(stages, &f)) {
                return r;
            }
            std::thread::yield_now();
        }
        panic!("no team formed");
    }

    /// Over many rounds, every member sees every other member's writes of the round before
    /// (a member reading early would see the old values), and the stages' parts cover every
    /// item exactly once whatever their sizes.
    #[test]
    fn barriers_order_writes_and_parts_cover_every_item_once() {
        for threads in 2..=3 {
            let sizes = [1usize, 2, 7, 8, 9, 64, 100, 383, 3072];
            let hits: Vec<Vec<AtomicUsize>> = sizes
                .iter()
                .map(|&n| (0..n).map(|_| AtomicUsize::new(0)).collect())
                .collect();
            let mut buf = vec![0f32; threads];
            let board = Board::new(&mut buf);
            let out = formed(&pool(threads), sizes.len(), |team| {
                for round in 1..=200 {
                    // SAFETY: each member writes its own value, all read after a barrier,
                    // and the next write comes after another.
                    unsafe { board.part(team.index()..team.index() + 1)[0] = round as f32 };
                    team.sync()?;
                    let seen = unsafe { board.all() }.to_vec();
                    assert!(seen.iter().all(|&v| v == round as f32), "round {round}: {seen:?}");
                    team.sync()?;
                }
                for (stage, &n) in sizes.iter().enumerate() {
                    for r in team.parts(stage, n, 2) {
                        for i in r {
                            hits[stage][i].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                team.sync()?;
                Ok(team.size())
            });
            assert_eq!(out.unwrap(), threads);
            for (stage, h) in hits.iter().enumerate() {
                let counts: Vec<usize> = h.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                assert!(counts.iter().all(|&c| c == 1), "stage of {}: {counts:?}", sizes[stage]);
            }
        }
    }

    /// A member's error ends the team: the others leave at their barrier and the error comes
    /// back; a panic is resumed; one thread forms no team; the next team forms after each.
    #[test]
    fn a_failing_member_ends_the_team_and_one_thread_forms_none() {
        let p = pool(2);
        let out = formed(&p, 0, |team| {
            if team.index() == 1 {
                return Err(Error::Model("member 1 failed".into()));
            }
            loop {
                team.sync()?;
            }
        });
        match out {
            Err(Error::Model(m)) => assert_eq!(m, "member 1 failed"),
            other => panic!("{:?}", other.map(|_: ()| ())),
        }
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            formed(&p, 0, |team| {
                if team.index() == 0 {
                    panic!("member 0 panicked");
                }
                team.sync()?;
                Ok(())
            })
        }));
        assert!(panicked.is_err(), "the panic is resumed");
        assert_eq!(formed(&p, 0, |t| Ok(t.size())).unwrap(), 2, "forms again");
        assert!(pool(1).install(|| run(0, |_| Ok(()))).is_none());
    }
}
