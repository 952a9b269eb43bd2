//! Page contents: each 8-byte word of a written page encodes the data generation, the page and
//! the word's index, so a lost write, a stale page or a page from elsewhere is told apart.

/// The word at `word` of page `page` for generation `gen` (generation 0 is all zeroes).
pub fn word(gen: u8, page: usize, word: usize) -> u64 {
    if gen == 0 {
        0
    } else {
        (gen as u64) << 56 | ((page as u64) & 0xff_ffff) << 32 | (word as u64 & 0xffff_ffff)
    }
}

/// Explains an observed word, e.g. `generation 2 of page 1 word 0`.
pub fn explain(w: u64) -> String {
    if w == 0 {
        return "zero".into();
    }
    let gen = w >> 56;
    format!(
        "0x{w:016x} (generation {gen} of page {} word {})",
        (w >> 32) & 0xff_ffff,
        w & 0xffff_ffff
    )
}

/// Writes generation `gen` over the page at `addr`. The first word is written first, so a
/// fault is taken at the page's start address.
///
/// # Safety
/// `addr..addr+page_size` must be mapped writable (faults are resolved by the handler).
pub unsafe fn write_page(addr: usize, page_size: usize, page: usize, gen: u8) {
    let words = addr as *mut u64;
    std::ptr::write_volatile(words, word(gen, page, 0));
    let slice = std::slice::from_raw_parts_mut(words, page_size / 8);
    for (i, w) in slice.iter_mut().enumerate().skip(1) {
        *w = word(gen, page, i);
    }
}

/// Touches the page with a read of its first word.
///
/// # Safety
/// `addr` must be mapped readable.
pub unsafe fn touch_read(addr: usize) -> u64 {
    std::ptr::read_volatile(addr as *const u64)
}

/// Checks the page holds generation `gen`; returns the first differing word as
/// (index, expected, observed).
///
/// # Safety
/// `addr..addr+page_size` must be mapped readable.
pub unsafe fn verify_page(
    addr: usize,
    page_size: usize,
    page: usize,
    gen: u8,
) -> Option<(usize, u64, u64)> {
    let slice = std::slice::from_raw_parts(addr as *const u64, page_size / 8);
    slice
        .iter()
        .enumerate()
        .find(|(i, w)| **w != word(gen, page, *i))
        .map(|(i, w)| (i, word(gen, page, i), *w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_distinct_per_generation_page_and_index() {
        assert_eq!(word(0, 3, 5), 0);
        assert_ne!(word(1, 0, 0), word(2, 0, 0));
        assert_ne!(word(1, 0, 0), word(1, 1, 0));
        assert_ne!(word(1, 0, 0), word(1, 0, 1));
        assert_eq!(
            explain(word(2, 1, 7)),
            "0x0200000100000007 (generation 2 of page 1 word 7)"
        );
    }

    #[test]
    fn verify_finds_the_first_difference() {
        let mut buf = vec![0u64; 512];
        let addr = buf.as_mut_ptr() as usize;
        unsafe {
            write_page(addr, 4096, 3, 7);
            assert_eq!(verify_page(addr, 4096, 3, 7), None);
            buf[9] = 0;
            assert_eq!(verify_page(addr, 4096, 3, 7), Some((9, word(7, 3, 9), 0)));
        }
    }
}
