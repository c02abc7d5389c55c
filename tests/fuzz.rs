//! Bounded fuzzing of everything foobar does before it connects: inventory and playbook
//! loading, validation, secret resolution and rendering, fed mutated copies of the corpus in
//! `tests/fuzz/corpus/`. The property: every input ends in `Ok` or a typed error — no panic,
//! no hang. Runs in CI for a bounded time (`FOOBAR_FUZZ_SECONDS`, default 20;
//! `FOOBAR_FUZZ_SEED` to replay). A failing input is written to `target/fuzz-crash-*`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TOKENS: &[&str] = &[
    ":",
    "- ",
    "{{",
    "}}",
    "{%",
    "%}",
    "[",
    "]",
    "{",
    "}",
    "\n  ",
    "\n    - ",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "~",
    "null",
    "'",
    "\"",
    "\t",
    "0o777",
    "1e999",
    "-1",
    "99999999999999999999",
    "{{ x.y[0] }}",
    "{% for x in groups.web %}",
    "{% endfor %}",
    "{% if %}",
    "\u{feff}",
    "yes",
    "hosts:",
    "groups:",
    "children: [web]",
    "vars:",
    "secrets:",
    "{ env: X }",
    "{ file: /nonexistent }",
    "dest: relative",
    "template: ../../etc/passwd",
    "notify: [x]",
    "database: replica",
    "server_id: 0",
    "private_ip: 127.0.1.2",
    "{{ hostvars[inventory_hostname] }}",
    "{{ range(10)|list }}",
    "%s",
    "\\",
    "\0",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, so a seed replays a failure.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &str) -> String {
    let mut bytes = input.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(40).min(len - i);
                bytes.drain(i..i + n);
            }
            2 => {
                let i = rng.below(len + 1);
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                bytes.splice(i..i, t.iter().copied());
            }
            3 => {
                let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
                let i = rng.below(lines.len());
                let mut out = Vec::new();
                for (n, l) in lines.iter().enumerate() {
                    out.extend_from_slice(l);
                    out.push(b'\n');
                    if n == i {
                        out.extend_from_slice(l);
                        out.push(b'\n');
                    }
                }
                bytes = out;
            }
            4 => {
                let lines: Vec<Vec<u8>> =
                    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                let mut lines = lines;
                lines.swap(a, b);
                bytes = lines.join(&b'\n');
            }
            _ => {
                let i = rng.below(len + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                let indent = " ".repeat(rng.below(6));
                let line = format!("\n{indent}{t}");
                bytes.splice(i..i, line.bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn corpus(kind: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(kind);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| {
            let p = e.expect("entry").path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).expect("corpus file"),
            )
        })
        .collect();
    out.sort();
    out
}

/// Everything before connecting. Errors are fine; only panics and hangs are failures.
fn pipeline(root: &Path) {
    let inv = root.join("inventories/inv.yml");
    let Ok(inventory) = foobar::inventory::load_inventory(&inv) else {
        return;
    };
    let Ok(playbook) = foobar::inventory::load_playbook(&root.join("playbooks/pb.yml"), &inventory)
    else {
        return;
    };
    let _ = inventory.limit(&["web*".to_string(), "lb-01".to_string()]);
    let Ok(secrets) = foobar::inventory::resolve_secrets(&inventory) else {
        return;
    };
    let _ = foobar::apply::database::config(&inventory, &secrets);
    let Ok(ctx) = foobar::render::RenderContext::new(&inventory, &playbook, &secrets) else {
        return;
    };
    for host in inventory.hosts.keys() {
        let _ = ctx.render_host(host);
    }
}

fn layout(root: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["inventories", "playbooks", "templates", "app/static"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("app/server.py"), "print('app')\n").unwrap();
    std::fs::write(root.join("app/static/index.html"), "hi\n").unwrap();
    for entry in std::fs::read_dir(repo.join("templates")).unwrap() {
        let dir = entry.unwrap().path();
        let to = root.join("templates").join(dir.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
}

fn template_path(root: &Path, name: &str) -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for entry in std::fs::read_dir(&repo).ok()? {
        let dir = entry.ok()?.path();
        if dir.join(name).is_file() {
            return Some(root.join("templates").join(dir.file_name()?).join(name));
        }
    }
    None
}

#[test]
fn loading_and_rendering_never_panic_or_hang() {
    let seconds: u64 = std::env::var("FOOBAR_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("FOOBAR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d_ba5e_0001);
    // SAFETY of the environment: this test binary has one test, so no other thread reads it.
    unsafe {
        std::env::set_var("FOOBAR_REPLICATION_PASSWORD", "fuzz-repl");
        std::env::set_var("FOOBAR_APP_DB_PASSWORD", "fuzz-app");
        std::env::set_var("FOOBAR_MYSQLD_EXPORTER_PASSWORD", "fuzz-mon");
    }
    let inventories = corpus("inventory");
    let playbooks = corpus("playbook");
    let templates = corpus("template");
    let lab = inventories
        .iter()
        .find(|(n, _)| n == "lab.yml")
        .expect("lab.yml in corpus")
        .1
        .clone();
    let site = playbooks
        .iter()
        .find(|(n, _)| n == "site.yml")
        .expect("site.yml in corpus")
        .1
        .clone();

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    layout(&root);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = Rng(seed);
    let mut cases = 0u64;
    while Instant::now() < deadline {
        cases += 1;
        let case_seed = rng.next();
        let mut r = Rng(case_seed | 1);
        let mut restore: Option<(PathBuf, String)> = None;
        let (mut inv, mut pb) = (lab.clone(), site.clone());
        let what = match r.below(3) {
            0 => {
                let i = r.below(inventories.len());
                inv = mutate(&mut r, &inventories[i].1);
                "inventory"
            }
            1 => {
                let i = r.below(playbooks.len());
                pb = mutate(&mut r, &playbooks[i].1);
                "playbook"
            }
            _ => {
                let (name, text) = &templates[r.below(templates.len())];
                if let Some(p) = template_path(&root, name) {
                    std::fs::write(&p, mutate(&mut r, text)).unwrap();
                    restore = Some((p, text.clone()));
                }
                "template"
            }
        };
        std::fs::write(root.join("inventories/inv.yml"), &inv).unwrap();
        std::fs::write(root.join("playbooks/pb.yml"), &pb).unwrap();

        let (tx, rx) = mpsc::channel();
        let run_root = root.clone();
        let worker = std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| pipeline(&run_root));
            let _ = tx.send(r.is_ok());
        });
        let outcome = rx.recv_timeout(Duration::from_secs(10));
        if outcome != Ok(true) {
            let keep = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("target/fuzz-crash-{case_seed:x}"));
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::copy(root.join("inventories/inv.yml"), keep.join("inv.yml"));
            let _ = std::fs::copy(root.join("playbooks/pb.yml"), keep.join("pb.yml"));
            if let Some((p, _)) = &restore {
                let _ = std::fs::copy(p, keep.join(p.file_name().unwrap()));
            }
            panic!(
                "{} on a mutated {what} (case seed {case_seed:#x}, inputs kept in {})",
                if outcome.is_err() {
                    "hang (over 10 s)"
                } else {
                    "panic"
                },
                keep.display()
            );
        }
        let _ = worker.join();
        if let Some((p, text)) = restore {
            std::fs::write(p, text).unwrap();
        }
    }
    println!("fuzz: {cases} cases in {seconds} s from seed {seed:#x}, no panic, no hang");
}
