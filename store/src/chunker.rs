//! Content-defined chunking. A file shorter than `whole_file_below` is one
//! chunk; a longer one is cut by FastCDC v2020 (normalization level 1, the
//! crate's fixed public gear table, seed 0), so two repositories cut the same
//! bytes the same way. The parameters live in the repository config and in
//! every snapshot; `docs/chunking.md` records why these values.

use serde::{Deserialize, Serialize};

/// Chunking parameters. Field order is part of the snapshot encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// 1 = FastCDC v2020, normalization level 1, seed 0.
    pub algorithm: u32,
    /// Files shorter than this many bytes are stored as a single chunk.
    pub whole_file_below: u32,
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

pub const FASTCDC_V2020: u32 = 1;

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            algorithm: FASTCDC_V2020,
            whole_file_below: 16 * 1024,
            min_size: 4 * 1024,
            avg_size: 16 * 1024,
            max_size: 64 * 1024,
        }
    }
}

impl ChunkerParams {
    pub fn validate(&self) -> Result<(), String> {
        if self.algorithm != FASTCDC_V2020 {
            return Err(format!("unknown chunking algorithm {}", self.algorithm));
        }
        let ok = (64..=1 << 20).contains(&self.min_size)
            && (256..=4 << 20).contains(&self.avg_size)
            && (1024..=16 << 20).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.min_size.is_multiple_of(2)
            && self.avg_size.is_multiple_of(2)
            && self.max_size.is_multiple_of(2);
        if ok {
            Ok(())
        } else {
            Err(format!("invalid chunk sizes {self:?}"))
        }
    }

    /// Cut `data` (a whole file) into chunks; returns `(offset, length)` pairs
    /// covering it exactly. An empty file has no chunks.
    pub fn cut(&self, data: &[u8]) -> Vec<(usize, usize)> {
        if data.is_empty() {
            return Vec::new();
        }
        if data.len() < self.whole_file_below as usize {
            return vec![(0, data.len())];
        }
        fastcdc::v2020::FastCDC::new(
            data,
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        )
        .map(|c| (c.offset, c.length))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) as u8
            })
            .collect()
    }

    /// Cut points are part of dedup: an upgrade of fastcdc that moves them
    /// must be noticed (it costs dedup against older snapshots, never data).
    #[test]
    fn golden_cut_points() {
        let data = noise(1 << 20, 42);
        let lens: Vec<usize> = ChunkerParams::default()
            .cut(&data)
            .iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        assert_eq!(lens, GOLDEN_CUT_LENGTHS, "chunk boundaries moved");
    }
    const GOLDEN_CUT_LENGTHS: [usize; 56] = [
        22445, 18906, 18208, 32534, 16549, 22022, 21217, 18840, 20453, 9405, 18350, 27675, 17555,
        20101, 29358, 45079, 17921, 20611, 18632, 5372, 27732, 17475, 18616, 14245, 11380, 7632,
        14734, 5424, 5668, 17858, 10794, 10454, 18779, 23895, 25256, 4391, 5592, 20910, 28250,
        38035, 10516, 24247, 29431, 21826, 22383, 46336, 16552, 6350, 4848, 33405, 9925, 21298,
        5526, 21962, 4521, 21097,
    ];

    /// Large files are chunked from a stream; the cut points must be the
    /// same as for the whole file in memory.
    #[test]
    fn streaming_cuts_like_in_memory() {
        let p = ChunkerParams::default();
        let data = noise(3 << 20, 7);
        let mem = p.cut(&data);
        let streamed: Vec<(usize, usize)> = fastcdc::v2020::StreamCDC::new(
            &data[..],
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
        )
        .map(|c| {
            let c = c.unwrap();
            (c.offset as usize, c.length)
        })
        .collect();
        assert_eq!(mem, streamed);
    }

    proptest! {
        #[test]
        fn chunks_cover_input(len in 0usize..400_000, seed in any::<u64>()) {
            let p = ChunkerParams::default();
            let data = noise(len, seed);
            let cuts = p.cut(&data);
            let mut at = 0;
            for (i, &(off, l)) in cuts.iter().enumerate() {
                prop_assert_eq!(off, at);
                prop_assert!(l <= p.max_size as usize);
                if i + 1 < cuts.len() { prop_assert!(l >= p.min_size as usize); }
                at += l;
            }
            prop_assert_eq!(at, data.len());
        }
    }
}
