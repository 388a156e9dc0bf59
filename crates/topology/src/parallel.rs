//! Work split over a few threads: the items in consecutive runs, each run
//! taken by whichever thread is free next, so that one slow run (directories
//! read from the disk, a large file) does not leave the other cores idle at
//! the end of a phase; the results in the items' order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// `work` over `items` cut into about `runs` consecutive runs, on up to
/// `threads` threads, the calling thread among them (a thread that cannot be
/// had leaves its share to the others). The results come in run order; a
/// run whose thread panicked gives `None`.
pub(crate) fn in_runs<T: Send, R: Send>(
    items: &mut [T],
    threads: usize,
    runs: usize,
    work: impl Fn(&mut [T]) -> R + Sync,
) -> Vec<Option<R>> {
    in_runs_with(items, threads, runs, || (), |(), run| work(run))
}

/// [`in_runs`] where each thread keeps something of its own across the runs
/// it takes (an io_uring, buffers): made by `init` before the thread's first
/// run, so a thread that takes no run makes none.
pub(crate) fn in_runs_with<T: Send, S, R: Send>(
    items: &mut [T],
    threads: usize,
    runs: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &mut [T]) -> R + Sync,
) -> Vec<Option<R>> {
    let run_len = items.len().div_ceil(runs.max(1)).max(1);
    taken_in_turn(items.chunks_mut(run_len).collect(), threads, init, work)
}

/// [`in_runs`] over items the work only reads.
pub(crate) fn in_shared_runs<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    runs: usize,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<Option<R>> {
    let run_len = items.len().div_ceil(runs.max(1)).max(1);
    taken_in_turn(
        items.chunks(run_len).collect(),
        threads,
        || (),
        |(), run| work(run),
    )
}

fn taken_in_turn<C: Send, S, R: Send>(
    runs: Vec<C>,
    threads: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, C) -> R + Sync,
) -> Vec<Option<R>> {
    let slots: Vec<Mutex<Option<C>>> = runs.into_iter().map(|r| Mutex::new(Some(r))).collect();
    let results: Vec<Mutex<Option<R>>> = slots.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut state = None;
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let (Some(slot), Some(result)) = (slots.get(index), results.get(index)) else {
                break;
            };
            let run = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(run) = run {
                let done = work(state.get_or_insert_with(&init), run);
                *result.lock().unwrap_or_else(PoisonError::into_inner) = Some(done);
            }
        }
    };
    let helpers = threads.min(slots.len()).saturating_sub(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..helpers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, worker).ok())
            .collect();
        worker();
        // Joined here, not by the scope, which would re-raise a helper's
        // panic: its run is left without a result instead.
        for handle in handles {
            let _ = handle.join();
        }
    });
    results
        .into_iter()
        .map(|result| result.into_inner().unwrap_or_else(PoisonError::into_inner))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_items_order_whatever_thread_ran_them() {
        for threads in [1, 2, 3, 8] {
            for runs in [1, 2, 7, 64, 1000] {
                let mut items: Vec<u32> = (0..500).collect();
                let out = in_runs(&mut items, threads, runs, |run| {
                    for item in run.iter_mut() {
                        *item *= 2;
                    }
                    run.to_vec()
                });
                let flat: Vec<u32> = out.into_iter().flat_map(Option::unwrap).collect();
                assert_eq!(flat, (0..500).map(|i| i * 2).collect::<Vec<_>>());
                let shared = in_shared_runs(&items, threads, runs, <[u32]>::len);
                assert_eq!(shared.into_iter().map(Option::unwrap).sum::<usize>(), 500);
            }
        }
        assert!(in_runs(&mut [0u8; 0], 2, 8, |run| run.len()).is_empty());
    }

    #[test]
    fn a_thread_makes_its_state_once_however_many_runs_it_takes() {
        let made = AtomicUsize::new(0);
        let mut items: Vec<u32> = (0..400).collect();
        let out = in_runs_with(
            &mut items,
            2,
            40,
            || {
                made.fetch_add(1, Ordering::Relaxed);
                0usize
            },
            |runs_here, run| {
                *runs_here += 1;
                (*runs_here, run.len())
            },
        );
        let made = made.into_inner();
        assert!((1..=2).contains(&made), "{made} states for 2 threads");
        assert_eq!(out.len(), 40);
        let out: Vec<(usize, usize)> = out.into_iter().map(Option::unwrap).collect();
        assert_eq!(out.iter().map(|(_, len)| len).sum::<usize>(), 400);
        // A state counts the runs its thread took: some took more than one.
        assert!(out.iter().any(|(runs_here, _)| *runs_here > 1));
        assert!(
            in_runs_with(&mut [0u8; 0], 2, 8, || unreachable!(), |(), run| run.len()).is_empty()
        );
    }

    #[test]
    fn a_helper_that_panics_leaves_its_run_without_a_result() {
        let items: Vec<u32> = (0..40).collect();
        let caller = std::thread::current().id();
        for _ in 0..20 {
            let out = in_shared_runs(&items, 2, 4, |run| {
                // Only a helper panics: the calling thread's panic is its caller's.
                if run.contains(&15) && std::thread::current().id() != caller {
                    panic!("the run with 15");
                }
                run.len()
            });
            assert_eq!(out.len(), 4);
            for (index, result) in out.iter().enumerate() {
                // Run 1 holds 10..20; it ran on either thread.
                assert!(result.is_some() || index == 1, "{out:?}");
            }
        }
    }
}
