//! [`Chunked`]: a queue that grows in fixed-size chunks, for the in-memory audit trails.
//!
//! A `Vec` or `VecDeque` that only grows doubles its buffer from time to time: it asks
//! for fresh memory twice the size, copies everything over, and frees the old buffer.
//! For a trail that keeps every record, that copy and the first touch of the fresh pages
//! were most of what a gated call cost beyond its args hash. Chunks are never moved or
//! copied once allocated, and a chunk emptied from the front is kept and reused for the
//! next one, so a trail that keeps only its newest records stops asking for memory.

use std::collections::VecDeque;

/// Items per chunk: 1,024 audit records are about 430 KB.
const CHUNK: usize = 1024;

/// A first-in, first-out sequence stored in chunks of [`CHUNK`] items (fewer for one
/// that never holds that many).
#[derive(Debug)]
pub(crate) struct Chunked<T> {
    /// Items per chunk.
    chunk: usize,
    chunks: VecDeque<VecDeque<T>>,
    /// An emptied chunk kept for reuse.
    spare: Option<VecDeque<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunk: CHUNK,
            chunks: VecDeque::new(),
            spare: None,
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    /// An empty sequence for one that will never hold more than `most` items at a time,
    /// so that its chunk is no larger than that.
    pub(crate) fn holding_at_most(most: usize) -> Self {
        Chunked {
            chunk: most.clamp(1, CHUNK),
            ..Self::default()
        }
    }

    /// How many items it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `item` at the back.
    pub(crate) fn push_back(&mut self, item: T) {
        match self.chunks.back_mut() {
            Some(last) if last.len() < self.chunk => last.push_back(item),
            _ => {
                let mut chunk = self
                    .spare
                    .take()
                    .unwrap_or_else(|| VecDeque::with_capacity(self.chunk));
                chunk.push_back(item);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    /// Removes and returns the item at the front.
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let first = self.chunks.front_mut()?;
        let item = first.pop_front();
        if first.is_empty() {
            self.spare = self.chunks.pop_front();
        }
        if item.is_some() {
            self.len -= 1;
        }
        item
    }

    /// The items, front to back.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    /// The items from the `start`-th on, front to back, to change in place.
    pub(crate) fn iter_mut_from(&mut self, mut start: usize) -> impl Iterator<Item = &mut T> {
        let mut skip_chunks = 0;
        for chunk in &self.chunks {
            if start < chunk.len() {
                break;
            }
            start -= chunk.len();
            skip_chunks += 1;
        }
        self.chunks
            .iter_mut()
            .skip(skip_chunks)
            .flatten()
            .skip(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_across_chunks_and_pops_from_the_front() {
        let mut q = Chunked::default();
        for i in 0..3 * CHUNK + 5 {
            q.push_back(i);
        }
        assert_eq!(q.len(), 3 * CHUNK + 5);
        assert!(q.iter().copied().eq(0..3 * CHUNK + 5));
        for i in 0..CHUNK + 2 {
            assert_eq!(q.pop_front(), Some(i));
        }
        assert_eq!(q.len(), 2 * CHUNK + 3);
        assert!(q.iter().copied().eq(CHUNK + 2..3 * CHUNK + 5));
        // The emptied chunk is reused, and the order still holds.
        for i in 3 * CHUNK + 5..4 * CHUNK {
            q.push_back(i);
        }
        assert!(q.iter().copied().eq(CHUNK + 2..4 * CHUNK));
        while q.pop_front().is_some() {}
        assert_eq!(q.len(), 0);
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn a_small_bounded_queue_keeps_one_small_chunk() {
        let mut q = Chunked::holding_at_most(3);
        for i in 0..100 {
            if q.len() == 3 {
                q.pop_front();
            }
            q.push_back(i);
        }
        assert!(q.iter().copied().eq(97..100));
        assert_eq!(q.chunks.len(), 1);
        assert!(q.chunks[0].capacity() < CHUNK);
    }

    #[test]
    fn iter_mut_from_starts_at_the_given_item() {
        let mut q = Chunked::default();
        for i in 0..2 * CHUNK + 10 {
            q.push_back(i);
        }
        q.pop_front();
        for start in [
            0,
            1,
            CHUNK - 2,
            CHUNK - 1,
            CHUNK,
            2 * CHUNK + 8,
            2 * CHUNK + 9,
        ] {
            let from: Vec<usize> = q.iter_mut_from(start).map(|i| *i).collect();
            assert_eq!(
                from,
                (start + 1..2 * CHUNK + 10).collect::<Vec<_>>(),
                "{start}"
            );
        }
        for i in q.iter_mut_from(CHUNK) {
            *i = 0;
        }
        assert!(q.iter().take(CHUNK).all(|&i| i != 0));
        assert!(q.iter().skip(CHUNK).all(|&i| i == 0));
    }
}
