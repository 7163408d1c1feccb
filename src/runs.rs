//! Runs of one value in a slice: the frames of speech in voice activity, the pixels of ink along
//! a row of a picture.

use std::ops::Range;

/// The maximal ranges of `values` whose elements all equal `value`, in order.
pub fn runs_of<T: PartialEq>(values: &[T], value: T) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < values.len() && values[i] != value {
            i += 1;
        }
        let start = i;
        while i < values.len() && values[i] == value {
            i += 1;
        }
        (i > start).then_some(start..i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_found_at_both_ends_and_between() {
        let v = [1, 1, 0, 1, 0, 0, 1];
        assert_eq!(runs_of(&v, 1).collect::<Vec<_>>(), vec![0..2, 3..4, 6..7]);
        assert_eq!(runs_of(&v, 0).collect::<Vec<_>>(), vec![2..3, 4..6]);
        assert_eq!(runs_of(&v, 2).count(), 0);
        assert_eq!(runs_of(&[] as &[u8], 0).count(), 0);
    }
}
