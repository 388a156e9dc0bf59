//! Finished tool results per (state, tool, arguments). A release-config answer depends only on
//! the analysed revision and where it came from ([`SourceInfo`]: fetch time, staleness), so a
//! repeated question is answered by a clone of the result already built, without building,
//! serialising and rendering it again. A new state (another view, or a refresh that changed the
//! source) empties the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use rmcp::model::CallToolResult;

use super::state::Answer;
use super::view::{FleetView, SourceInfo};

/// Results kept per state, by their approximate JSON size: a few dozen pages of the largest
/// answers; past it the cache starts over rather than growing with hostile argument variety.
pub const MAX_CACHED_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
pub struct ResultCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// The view the results describe; weak, so that the cache never keeps an old revision alive.
    view: Weak<FleetView>,
    source: Option<SourceInfo>,
    results: HashMap<(&'static str, String), CallToolResult>,
    bytes: usize,
}

impl Entries {
    fn describes(&self, answer: &Answer) -> bool {
        std::ptr::eq(self.view.as_ptr(), Arc::as_ptr(&answer.view))
            && self.source.as_ref() == Some(&answer.source)
    }
}

impl ResultCache {
    /// The result of `tool` with `arguments` (their canonical JSON) for `answer`'s state: the
    /// cached one, else `compute`'s, which is kept.
    pub fn get_or_compute(
        &self,
        answer: &Answer,
        tool: &'static str,
        arguments: String,
        compute: impl FnOnce() -> CallToolResult,
    ) -> CallToolResult {
        let key = (tool, arguments);
        {
            let entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.describes(answer)
                && let Some(result) = entries.results.get(&key)
            {
                return result.clone();
            }
        }
        // Built outside the lock: a slow miss must not hold up hits of other questions.
        let result = compute();
        let size = approximate_size(&result);
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.describes(answer) {
            *entries = Entries {
                view: Arc::downgrade(&answer.view),
                source: Some(answer.source.clone()),
                ..Entries::default()
            };
        }
        if size > MAX_CACHED_BYTES {
            return result;
        }
        if entries.bytes + size > MAX_CACHED_BYTES {
            entries.results.clear();
            entries.bytes = 0;
        }
        entries.bytes += size;
        entries.results.insert(key, result.clone());
        result
    }

    /// Results currently kept (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .results
            .len()
    }
}

fn approximate_size(result: &CallToolResult) -> usize {
    let structured = result
        .structured_content
        .as_ref()
        .map_or(0, |value| value.to_string().len());
    let text: usize = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.len()))
        .sum();
    structured + text + 256
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rmcp::model::ContentBlock;

    use super::*;
    use crate::release_configs::view::FindingCounts;

    fn source(fetched_at: &str) -> SourceInfo {
        SourceInfo {
            repository: "repo".to_owned(),
            branch: "main".to_owned(),
            commit: None,
            fetched_at: fetched_at.to_owned(),
            stale: false,
            stale_reason: None,
            findings: FindingCounts::default(),
        }
    }

    #[test]
    fn results_are_reused_until_the_state_changes() {
        let cache = ResultCache::default();
        let computed = AtomicUsize::new(0);
        let ask = |answer: &Answer, arguments: &str| {
            let result = cache.get_or_compute(answer, "t", arguments.to_owned(), || {
                let n = computed.fetch_add(1, Ordering::SeqCst);
                CallToolResult::success(vec![ContentBlock::text(format!("answer {n}"))])
            });
            result
                .content
                .first()
                .and_then(|c| c.as_text().map(|t| t.text.clone()))
                .unwrap_or_default()
        };
        let first = Answer {
            view: Arc::new(FleetView::default()),
            source: source("t1"),
        };
        assert_eq!(ask(&first, "{}"), "answer 0");
        assert_eq!(ask(&first, "{}"), "answer 0", "same question, same state");
        assert_eq!(ask(&first, r#"{"limit":1}"#), "answer 1", "other arguments");
        // The same view refreshed (another fetch time): rebuilt.
        let refreshed = Answer {
            view: Arc::clone(&first.view),
            source: source("t2"),
        };
        assert_eq!(ask(&refreshed, "{}"), "answer 2");
        // A new revision: rebuilt, and the old results are gone.
        let next = Answer {
            view: Arc::new(FleetView::default()),
            source: source("t2"),
        };
        assert_eq!(ask(&next, "{}"), "answer 3");
        assert_eq!(cache.len(), 1);
    }
}
