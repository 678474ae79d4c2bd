//! Ragged paging (`POST /_sandbox/paging`): real services treat a page size as a ceiling, not
//! a promise. Google may answer short or even empty pages that still carry a
//! `nextPageToken`; Graph delta pages can be empty, and an id can come again in a later page
//! of the same round (the later copy wins). In `ragged` mode the listings do the same, drawn
//! from the world's seeded generator so a seeded run repeats.

use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PagingMode {
    #[default]
    Normal,
    Ragged,
}

/// The size of the next page under `mode`: `max` when normal; when ragged, empty one time in
/// five and otherwise anything from 1 to `max`.
pub(crate) fn page_len(mode: PagingMode, rng: &mut StdRng, max: usize) -> usize {
    match mode {
        PagingMode::Normal => max,
        PagingMode::Ragged if max == 0 || rng.random_range(0..5) == 0 => 0,
        PagingMode::Ragged => rng.random_range(1..=max),
    }
}

/// Whether a ragged Graph delta page repeats one of its ids in a later page (one time in
/// four).
pub(crate) fn repeat_id(mode: PagingMode, rng: &mut StdRng) -> bool {
    mode == PagingMode::Ragged && rng.random_range(0..4) == 0
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn ragged_pages_are_short_or_empty_and_never_exceed_the_ceiling() {
        let mut rng = StdRng::seed_from_u64(7);
        let lens: Vec<_> = (0..200).map(|_| page_len(PagingMode::Ragged, &mut rng, 10)).collect();
        assert!(lens.iter().all(|&n| n <= 10));
        assert!(lens.contains(&0));
        assert!(lens.iter().any(|&n| n > 0 && n < 10));
        assert_eq!(page_len(PagingMode::Normal, &mut rng, 10), 10);
    }
}
