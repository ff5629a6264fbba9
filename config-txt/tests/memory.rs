//! What reading a config file costs in memory (issue 19, item 10: config files used
//! 4.5 times and more their size): the parser holds the file once, a token costs a
//! fixed 20 bytes whatever its length, and a mistake repeated thousands of times is
//! listed 100 times and counted once.
//!
//! The cost is measured by this test binary's own allocator: the most bytes held at
//! once while `parse` and `check` run, beyond what was held before. Byte counts, not
//! times: the numbers are the same on every run.
// Counting allocations needs a global allocator, which is `unsafe impl` by definition;
// it only forwards to the system allocator and adds two counters.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = NOW.fetch_add(n, SeqCst) + n;
    PEAK.fetch_max(now, SeqCst);
}

// SAFETY: every call forwards to `System` with the caller's arguments; the counters
// do not touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size(), SeqCst);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if n > l.size() {
            grew(n - l.size());
        } else {
            NOW.fetch_sub(l.size() - n, SeqCst);
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The tests of this binary run one at a time: the counters are process-wide.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Holds the counters for one test (taken first: a test that makes its text while
/// another measures would count in the other's peak).
fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The most bytes held at once by `parse` and `check` of `text`, as a multiple of its size.
fn cost(text: &[u8]) -> f64 {
    let before = NOW.load(SeqCst);
    PEAK.store(before, SeqCst);
    let parsed = config_txt::parse(text, "config.txt");
    let diags = parsed.check(&config_txt::LintOptions::default());
    let peak = PEAK.load(SeqCst) - before;
    drop((parsed, diags));
    peak as f64 / text.len() as f64
}

#[test]
fn key_value_lines_cost_less_than_twice_their_size() {
    let _alone = alone();
    // 40,000 `paramN=valueN` boot parameters (about 21 bytes a token): 10.6x before.
    let text: String = (0..40_000)
        .map(|i| format!("param{i}=value{i}\n"))
        .collect();
    let c = cost(text.as_bytes());
    assert!(c < 2.0, "{c:.2} times the file's size");
}

#[test]
fn the_shortest_tokens_cost_a_bounded_multiple() {
    let _alone = alone();
    // 300,000 tokens of 2 bytes and a space, the most tokens a file can hold: 62x before.
    let text: String = (0..300_000).map(|i| format!("a{} ", i % 10)).collect();
    let c = cost(text.as_bytes());
    assert!(c < 16.0, "{c:.2} times the file's size");
}

#[test]
fn a_mistake_repeated_thousands_of_times_is_listed_100_times_and_counted() {
    let _alone = alone();
    // 30,000 cobdN= lines over 32 indices: one "defined twice" finding each, 17x before.
    let text: String = (0..30_000)
        .map(|i| format!("cobd{}=c:\\coLinux\\root{i}.img\n", i % 32))
        .collect();
    let c = cost(text.as_bytes());
    assert!(c < 5.0, "{c:.2} times the file's size");
    let parsed = config_txt::parse(text.as_bytes(), "config.txt");
    let twice = parsed
        .diagnostics
        .iter()
        .filter(|d| d.code == "double-defined")
        .count();
    assert_eq!(
        twice,
        config_txt::parse::MAX_PER_CODE + 1,
        "100 and a summary"
    );
    let summary = parsed
        .diagnostics
        .iter()
        .find(|d| d.message.contains("more finding(s) like the 100"))
        .expect("a summary line");
    assert!(summary.is_error(), "{summary}");
    assert!(summary.message.starts_with("29868 more"), "{summary}");
}
