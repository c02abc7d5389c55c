//! A bounded request load through the load balancer: one thread POSTs notes with unique
//! bodies (kept when acknowledged), one GETs them; counts per kind, read as a snapshot so a
//! test can measure each step of a longer sequence.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http;

/// At most this many requests per thread, and this long.
const LIMIT: u64 = 20_000;
const MAX_SECONDS: u64 = 600;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub posts: u64,
    pub failed_posts: u64,
    pub gets: u64,
    pub failed_gets: u64,
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, o: Counts) -> Counts {
        Counts {
            posts: self.posts - o.posts,
            failed_posts: self.failed_posts - o.failed_posts,
            gets: self.gets - o.gets,
            failed_gets: self.failed_gets - o.failed_gets,
        }
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    counts: Arc<[AtomicU64; 4]>,
    acked: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// Starts the load through `addr` (`127.0.1.1:80`); bodies start with `tag`.
    pub fn start(addr: &'static str, tag: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
        let acked = Arc::new(Mutex::new(Vec::new()));
        let threads = [true, false]
            .into_iter()
            .map(|writer| {
                let (stop, counts, acked) = (stop.clone(), counts.clone(), acked.clone());
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(MAX_SECONDS);
                    let (total, failed) = if writer { (0, 1) } else { (2, 3) };
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && n < LIMIT {
                        n += 1;
                        counts[total].fetch_add(1, Ordering::SeqCst);
                        let ok = if writer {
                            let body = format!("{tag} {n}");
                            let ok = matches!(http(addr, "POST", "/notes", &body), Some((201, _)));
                            if ok {
                                acked.lock().unwrap().push(body);
                            }
                            ok
                        } else {
                            matches!(http(addr, "GET", "/notes", ""), Some((200, _)))
                        };
                        if !ok {
                            counts[failed].fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                })
            })
            .collect();
        Load {
            stop,
            counts,
            acked,
            threads,
        }
    }

    pub fn counts(&self) -> Counts {
        let c = |i: usize| self.counts[i].load(Ordering::SeqCst);
        Counts {
            posts: c(0),
            failed_posts: c(1),
            gets: c(2),
            failed_gets: c(3),
        }
    }

    /// Stops the load; the totals and the bodies of every acknowledged write.
    pub fn finish(mut self) -> (Counts, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut self.threads);
        for t in threads {
            t.join().expect("load thread");
        }
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        (self.counts(), acked)
    }
}
