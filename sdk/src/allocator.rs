//! The component's global allocator: [`Recycling`] small blocks by size class
//! in front of Talc.
//!
//! A policy's evaluation allocates a block for every string and list the host
//! lowers into it (some sixty for a Pod), more while the SDK converts them into
//! the model, and frees them all when the evaluation ends; a warm instance
//! does the same again on the next review. Nearly all these blocks are small.
//! Talc alone was 8.7% of the webhook's CPU at 5,000 reviews/s
//! (docs/benchmarks.md, session 7); a freed small block now goes onto a list
//! for its size class, and the next allocation of that class takes it back
//! with two memory accesses. Larger or over-aligned blocks go to Talc
//! directly. The limit of 512 bytes covers a label map's B-tree nodes
//! (`BTreeMap<String, String>` nodes are 272 and 320 bytes on wasm32).
//!
//! Blocks on the lists are not returned to Talc: a class keeps at most as many
//! blocks as were once live together, which for a policy evaluating reviews of
//! the same shape stays constant after the first evaluation.
//!
//! The review a policy judges is decoded into a *scratch region*
//! ([`Recycling::begin_scratch`]): one block kept from review to review, from
//! which the decoder's strings, lists and map nodes are carved by moving a
//! pointer. Nothing in it is freed one by one: the review only lives for the
//! evaluation, and the next review's decoding starts the region over. Decoding
//! and dropping the review was about a sixth of the webhook's CPU at 5,000
//! reviews/s, a quarter of that allocating, freeing and dropping
//! (docs/benchmarks.md, session 10).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// Bytes per size class step; also the largest alignment served from the lists.
const STEP: usize = 8;
/// Size classes: blocks of 8, 16, ..., `STEP * CLASSES` bytes.
const CLASSES: usize = 64;

/// A [`GlobalAlloc`] that keeps freed blocks of up to 512 bytes (alignment up
/// to 8) on one free list per size class and hands them out again before
/// asking `A`. Not thread-safe: it is the allocator of single-threaded WASM
/// components, where it is the global allocator.
pub struct Recycling<A> {
    inner: A,
    /// The head of each class's free list; a free block holds the next one's address.
    free: UnsafeCell<[*mut u8; CLASSES]>,
    scratch: UnsafeCell<Scratch>,
}

/// The scratch region: `[start, end)` allocated from the inner allocator,
/// handed out from `next` while `active`.
struct Scratch {
    start: usize,
    end: usize,
    next: usize,
    active: bool,
    /// Whether a block was allocated elsewhere while active, because the
    /// region was full.
    spilled: bool,
}

/// Regions larger than this are not kept: a review that needs more is
/// decoded with ordinary allocations.
pub const MAX_SCRATCH: usize = 1 << 20;

impl<A> Recycling<A> {
    /// `inner` behind empty free lists.
    pub const fn new(inner: A) -> Self {
        Recycling {
            inner,
            free: UnsafeCell::new([ptr::null_mut(); CLASSES]),
            scratch: UnsafeCell::new(Scratch {
                start: 0,
                end: 0,
                next: 0,
                active: false,
                spilled: false,
            }),
        }
    }

    /// Whether `block` lies in the scratch region.
    #[allow(unsafe_code)]
    fn in_scratch(&self, block: *mut u8) -> bool {
        // SAFETY: single-threaded (see the `Sync` impl); no reference into
        // the cell outlives this call.
        let scratch = unsafe { &*self.scratch.get() };
        let at = block as usize;
        at >= scratch.start && at < scratch.end
    }
}

// The scratch cell is only touched from the one thread (see the `Sync` impl),
// through references that end within each method.
#[allow(unsafe_code)]
impl<A: GlobalAlloc> Recycling<A> {
    /// Serve every allocation from the scratch region, starting it over,
    /// until [`Recycling::end_scratch`]; a region of at least `capacity`
    /// bytes is allocated first if the kept one is smaller. Returns whether
    /// the region is in use: not when `capacity` exceeds [`MAX_SCRATCH`] or
    /// the inner allocator has no room, and then allocations go on as usual.
    ///
    /// While the region is in use, an allocation that does not fit in what is
    /// left of it is made as usual (and [`Recycling::end_scratch`] says so).
    /// Freeing a block of the region does nothing; its memory is reused once
    /// the region starts over.
    ///
    /// # Safety
    /// No block allocated from the region before this call may be used again:
    /// starting over hands its memory out anew.
    pub unsafe fn begin_scratch(&self, capacity: usize) -> bool {
        if capacity > MAX_SCRATCH {
            return false;
        }
        // SAFETY: single-threaded; the reference ends before any other use of the cell.
        let scratch = unsafe { &mut *self.scratch.get() };
        if scratch.end - scratch.start < capacity {
            let layout = Layout::from_size_align(capacity, STEP).unwrap_or(Layout::new::<u64>());
            // Take the new block before freeing the old one, so the inner
            // allocator cannot hand the old region back: a failure keeps the old.
            let block = unsafe { self.inner.alloc(layout) };
            if block.is_null() {
                return false;
            }
            if scratch.start != 0 {
                let old = scratch.end - scratch.start;
                let old_layout = Layout::from_size_align(old, STEP).unwrap_or(Layout::new::<u64>());
                // SAFETY: the old region came from `inner` with this layout,
                // and by the caller's promise none of it is in use.
                unsafe { self.inner.dealloc(scratch.start as *mut u8, old_layout) };
            }
            scratch.start = block as usize;
            scratch.end = scratch.start + capacity;
        }
        scratch.next = scratch.start;
        scratch.active = true;
        scratch.spilled = false;
        true
    }

    /// Stop serving allocations from the scratch region. Returns whether every
    /// allocation since [`Recycling::begin_scratch`] came from the region, so
    /// that what was built from them may be forgotten rather than dropped.
    pub fn end_scratch(&self) -> bool {
        // SAFETY: single-threaded; the reference ends with this call.
        let scratch = unsafe { &mut *self.scratch.get() };
        let all_in_region = scratch.active && !scratch.spilled;
        scratch.active = false;
        all_in_region
    }

    /// A block of the region for `layout`, or null when the region is
    /// inactive or full (then marked as spilled).
    fn scratch_alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded; the reference ends with this call.
        let scratch = unsafe { &mut *self.scratch.get() };
        if !scratch.active {
            return ptr::null_mut();
        }
        // Alignments are powers of two.
        let at = (scratch.next + layout.align() - 1) & !(layout.align() - 1);
        match at.checked_add(layout.size()) {
            Some(end) if end <= scratch.end => {
                scratch.next = end;
                at as *mut u8
            }
            _ => {
                scratch.spilled = true;
                ptr::null_mut()
            }
        }
    }
}

/// The size class of `layout`, if it is small enough to recycle.
fn class(layout: Layout) -> Option<usize> {
    if layout.align() > STEP || layout.size() > STEP * CLASSES {
        return None;
    }
    // Zero-sized layouts never reach a global allocator; be safe anyway.
    Some(layout.size().max(1).div_ceil(STEP) - 1)
}

/// The layout every block of `class` is allocated with.
fn class_layout(class: usize) -> Layout {
    // STEP is a power of two and the size a multiple of it: always valid.
    Layout::from_size_align((class + 1) * STEP, STEP).unwrap_or(Layout::new::<u64>())
}

#[allow(unsafe_code)]
// SAFETY: the caller (Rust's allocation API) upholds GlobalAlloc's contract;
// every block on a list was allocated from `inner` with its class's layout,
// is at least 8 bytes long and 8-aligned, and is owned by the list alone.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Recycling<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let block = self.scratch_alloc(layout);
        if !block.is_null() {
            return block;
        }
        let Some(class) = class(layout) else {
            return unsafe { self.inner.alloc(layout) };
        };
        let free = unsafe { &mut *self.free.get() };
        let head = free[class];
        if head.is_null() {
            return unsafe { self.inner.alloc(class_layout(class)) };
        }
        free[class] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if self.in_scratch(block) {
            return;
        }
        let Some(class) = class(layout) else {
            return unsafe { self.inner.dealloc(block, layout) };
        };
        let free = unsafe { &mut *self.free.get() };
        unsafe { block.cast::<*mut u8>().write(free[class]) };
        free[class] = block;
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `new_size` with the old alignment is valid per GlobalAlloc::realloc.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // A region block has exactly its size, not its class's: always move it.
        if self.in_scratch(block) {
            return unsafe { self.moved(block, layout, new_layout) };
        }
        match (class(layout), class(new_layout)) {
            // The block already has room for the new size.
            (Some(old), Some(new)) if old == new => block,
            // Both large: Talc may grow or shrink in place.
            (None, None) => unsafe { self.inner.realloc(block, layout, new_size) },
            _ => unsafe { self.moved(block, layout, new_layout) },
        }
    }
}

#[allow(unsafe_code)]
impl<A: GlobalAlloc> Recycling<A> {
    /// `block`'s contents in a new block of `new_layout`, `block` freed.
    ///
    /// # Safety
    /// As for [`GlobalAlloc::realloc`].
    unsafe fn moved(&self, block: *mut u8, layout: Layout, new_layout: Layout) -> *mut u8 {
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            unsafe {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_layout.size()));
                self.dealloc(block, layout);
            }
        }
        moved
    }
}

/// Single-threaded WASM only (the `#[global_allocator]` below), where no
/// other thread can touch the lists.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[allow(unsafe_code)]
// SAFETY: without the atomics feature a WASM component has one thread.
unsafe impl<A: Sync> Sync for Recycling<A> {}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use super::Recycling;

    /// Counts what reaches the allocator behind the lists.
    struct Counting {
        allocs: Cell<usize>,
        frees: Cell<usize>,
    }

    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.allocs.set(self.allocs.get() + 1);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            self.frees.set(self.frees.get() + 1);
            unsafe { System.dealloc(block, layout) }
        }
    }

    fn recycling() -> Recycling<Counting> {
        Recycling::new(Counting {
            allocs: Cell::new(0),
            frees: Cell::new(0),
        })
    }

    #[test]
    #[allow(unsafe_code)]
    fn a_freed_small_block_is_handed_out_again_for_its_size_class() {
        let a = recycling();
        let layout = Layout::from_size_align(20, 4).unwrap();
        let same_class = Layout::from_size_align(24, 8).unwrap();
        let other_class = Layout::from_size_align(25, 1).unwrap();
        unsafe {
            let first = a.alloc(layout);
            a.dealloc(first, layout);
            assert_eq!(a.alloc(same_class), first);
            let other = a.alloc(other_class);
            assert_ne!(other, first);
            assert_eq!(a.inner.allocs.get(), 2);
            assert_eq!(a.inner.frees.get(), 0);
            // Last in, first out, per class.
            let second = a.alloc(layout);
            a.dealloc(first, same_class);
            a.dealloc(second, layout);
            assert_eq!(a.alloc(layout), second);
            assert_eq!(a.alloc(layout), first);
            assert_eq!(a.inner.allocs.get(), 3);
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn large_and_over_aligned_blocks_go_straight_to_the_inner_allocator() {
        let a = recycling();
        for layout in [
            Layout::from_size_align(513, 8).unwrap(),
            Layout::from_size_align(64, 16).unwrap(),
        ] {
            unsafe {
                let block = a.alloc(layout);
                assert_eq!(block as usize % layout.align(), 0);
                a.dealloc(block, layout);
            }
        }
        assert_eq!((a.inner.allocs.get(), a.inner.frees.get()), (2, 2));
    }

    #[test]
    #[allow(unsafe_code)]
    fn realloc_keeps_the_contents_across_classes_and_sizes() {
        let a = recycling();
        let mut layout = Layout::from_size_align(3, 1).unwrap();
        unsafe {
            let mut block = a.alloc(layout);
            block.copy_from(b"abc".as_ptr(), 3);
            for new_size in [7, 8, 9, 200, 256, 257, 512, 513, 4000, 300, 100, 5] {
                block = a.realloc(block, layout, new_size);
                assert!(!block.is_null());
                assert_eq!(std::slice::from_raw_parts(block, 3), b"abc", "{new_size}");
                layout = Layout::from_size_align(new_size, 1).unwrap();
            }
            // Growing within a class keeps the block.
            let same = a.realloc(block, layout, 8);
            assert_eq!(same, block);
            a.dealloc(same, Layout::from_size_align(8, 1).unwrap());
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn blocks_handed_out_together_do_not_overlap() {
        let a = recycling();
        let mut live = Vec::new();
        for round in 0..3 {
            for size in 1..=256usize {
                let layout = Layout::from_size_align(size, 1).unwrap();
                let block = unsafe { a.alloc(layout) };
                unsafe { block.write_bytes(u8::try_from(size % 251).unwrap(), size) };
                live.push((block, layout));
            }
            for &(block, layout) in &live {
                let want = u8::try_from(layout.size() % 251).unwrap();
                let bytes = unsafe { std::slice::from_raw_parts(block, layout.size()) };
                assert!(bytes.iter().all(|&b| b == want), "round {round}");
            }
            for (block, layout) in live.drain(..) {
                unsafe { a.dealloc(block, layout) };
            }
        }
        // After the first round every block came from the lists.
        assert_eq!(a.inner.allocs.get(), 256);
    }

    #[test]
    #[allow(unsafe_code)]
    fn a_scratch_scope_carves_blocks_from_one_region_and_frees_none_of_them() {
        let a = recycling();
        let sizes = [1usize, 12, 24, 7, 272, 320, 3, 64];
        unsafe {
            assert!(a.begin_scratch(4096));
            assert_eq!(a.inner.allocs.get(), 1, "the region itself");
            let mut blocks = Vec::new();
            for (i, size) in sizes.into_iter().enumerate() {
                let align = if i % 2 == 0 { 8 } else { 4 };
                let layout = Layout::from_size_align(size, align).unwrap();
                let block = a.alloc(layout);
                assert_eq!(block as usize % align, 0);
                block.write_bytes(u8::try_from(i).unwrap(), size);
                blocks.push((block, layout));
            }
            assert_eq!(
                a.inner.allocs.get(),
                1,
                "no block came from the inner allocator"
            );
            for (i, &(block, layout)) in blocks.iter().enumerate() {
                let bytes = std::slice::from_raw_parts(block, layout.size());
                assert!(
                    bytes.iter().all(|&b| usize::from(b) == i),
                    "block {i} was overwritten"
                );
            }
            assert!(a.end_scratch(), "everything fit");
            // Freeing region blocks neither reaches the inner allocator nor
            // puts them on a free list.
            for &(block, layout) in &blocks {
                a.dealloc(block, layout);
            }
            assert_eq!(a.inner.frees.get(), 0);
            let after = a.alloc(blocks[1].1);
            assert!(!blocks.iter().any(|&(b, _)| b == after));
            // Starting over reuses the kept region from its start.
            assert!(a.begin_scratch(1024));
            assert_eq!(a.alloc(blocks[0].1), blocks[0].0);
            assert!(a.end_scratch());
            assert_eq!(a.inner.allocs.get(), 2, "the region and `after`");
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn what_does_not_fit_in_the_region_is_allocated_as_usual_and_reported() {
        let a = recycling();
        let small = Layout::from_size_align(100, 8).unwrap();
        let large = Layout::from_size_align(600, 8).unwrap();
        unsafe {
            assert!(a.begin_scratch(512));
            let first = a.alloc(small);
            let spilled = a.alloc(large);
            assert_eq!(a.inner.allocs.get(), 2, "the region and the spilled block");
            assert!(!a.end_scratch(), "a block spilled");
            a.dealloc(spilled, large);
            a.dealloc(first, small);
            assert_eq!(a.inner.frees.get(), 1, "only the spilled block is freed");
            // A larger region replaces the kept one, which is freed.
            assert!(a.begin_scratch(8192));
            assert_eq!(a.inner.frees.get(), 2);
            let big = a.alloc(large);
            assert!(a.end_scratch());
            a.dealloc(big, large);
            // Past the cap, no region: allocations go on as usual.
            assert!(!a.begin_scratch(super::MAX_SCRATCH + 1));
            let ordinary = a.alloc(small);
            assert!(!a.end_scratch());
            a.dealloc(ordinary, small);
            assert_eq!(a.alloc(small), ordinary, "an ordinary block is recycled");
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn a_region_block_reallocated_moves_with_its_contents() {
        let a = recycling();
        let layout = Layout::from_size_align(3, 1).unwrap();
        unsafe {
            assert!(a.begin_scratch(256));
            let block = a.alloc(layout);
            block.copy_from(b"abc".as_ptr(), 3);
            let neighbour = a.alloc(layout);
            assert!(a.end_scratch());
            // Same size class as 3 bytes, but a region block has no room to grow.
            let grown = a.realloc(block, layout, 8);
            assert_ne!(grown, block);
            assert_ne!(grown, neighbour);
            assert_eq!(std::slice::from_raw_parts(grown, 3), b"abc");
        }
    }
}
