//! docs/quickstart.md, followed on the local test hosts as its boxed note says: from an empty
//! directory, the page's own inventory (docs/examples/quickstart/inventory.yml) with the
//! note's changes, the page's secrets commands, then plan, plan --out, show, apply, plan
//! again, verify and a request through the load balancer. What the page shows of each
//! command's output must be in what the command prints now (the lines the page elides with
//! `…` excepted, numbers aside; the plan after apply line for line), so the page cannot
//! drift from the tool.

mod common;

use std::path::Path;
use std::process::Command;

use common::{lab, lab_lock, repo};

fn page() -> String {
    std::fs::read_to_string(repo().join("docs/quickstart.md")).unwrap()
}

/// The body of the `nth` fenced block of language `lang` after the heading that starts with
/// `heading`.
fn block(page: &str, heading: &str, lang: &str, nth: usize) -> String {
    let start = page
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("docs/quickstart.md has no heading `{heading}`"));
    let mut rest = &page[start..];
    for _ in 0..=nth {
        let open = rest
            .find(&format!("\n```{lang}\n"))
            .unwrap_or_else(|| panic!("no ```{lang} block after `{heading}`"));
        rest = &rest[open + lang.len() + 5..];
    }
    rest[..rest.find("\n```").unwrap() + 1].to_string()
}

/// The page's `foobar init` line, changed as the boxed note says for the local test hosts.
fn lab_init(page: &str) -> Vec<String> {
    let line = block(page, "## 3.", "sh", 0);
    let line = line.trim();
    assert!(line.starts_with("foobar init . "), "{line}");
    let mut words: Vec<String> = line
        .trim_start_matches("foobar ")
        .split_whitespace()
        .map(String::from)
        .collect();
    for (from, to) in [
        ("lb-01=10.0.0.10", "lb-01=127.0.1.1"),
        (
            "web-01=10.0.0.11,web-02=10.0.0.12",
            "web-01=127.0.1.2,web-02=127.0.1.3",
        ),
    ] {
        let w = words
            .iter_mut()
            .find(|w| w.as_str() == from)
            .unwrap_or_else(|| {
                panic!("the boxed note's change `{from}` no longer fits the page's init line")
            });
        *w = to.to_string();
    }
    words.extend(
        [
            "--db-network",
            "127.%",
            "--haproxy-bind",
            "127.0.1.1:80",
            "--ssh-config",
            repo().join(".lab/ssh_config").to_str().unwrap(),
        ]
        .map(String::from),
    );
    words
}

struct Out {
    code: i32,
    text: String,
}

fn foobar(dir: &Path, args: &[&str], secrets: &[String]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_foobar"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("FOOBAR_INVENTORY")
        .env_remove("FOOBAR_PLAYBOOK")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "foobar {args:?} printed a secret"
        );
    }
    println!("$ foobar {}\n{text}", args.join(" "));
    Out {
        code: out.status.code().unwrap_or(-1),
        text,
    }
}

/// Every line the page shows (but `…` lines) is printed, numbers aside (a heartbeat's
/// seconds, a server's version). Not in order: hosts and plays that run side by side finish
/// in either order.
fn shows(page_block: &str, printed: &str, what: &str) {
    let printed_lines: Vec<String> = printed.lines().map(numbers_masked).collect();
    for line in page_block.lines() {
        if line.trim() == "…" || line.trim().is_empty() {
            continue;
        }
        assert!(
            printed_lines.contains(&numbers_masked(line)),
            "docs/quickstart.md shows, for {what}, a line the tool did not print:\n{line}\n--- printed:\n{printed}"
        );
    }
}

fn numbers_masked(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[test]
fn the_quickstart_reaches_a_verified_stack_on_the_local_hosts() {
    let _lab = lab_lock();
    lab(&["reset"]);
    let page = page();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);

    // 2. foobar.toml, as the page writes it, with this checkout's playbook.
    let toml = block(&page, "## 2.", "sh", 0);
    assert!(toml.contains("inventory = \"inventory.yml\""), "{toml}");
    std::fs::write(
        dir.join("foobar.toml"),
        format!(
            "inventory = \"inventory.yml\"\nplaybook = \"{}\"\n",
            repo().join("playbooks/site.yml").display()
        ),
    )
    .unwrap();
    // 3. The page's `foobar init`, with the boxed note's changes: the inventory and secrets.
    let init: Vec<String> = lab_init(&page);
    let init: Vec<&str> = init.iter().map(String::as_str).collect();
    let made = foobar(dir, &init, &[]);
    assert_eq!(made.code, 0, "{}", made.text);
    let inventory = std::fs::read_to_string(dir.join("inventory.yml")).unwrap();
    assert!(!inventory.contains("10.0.0."), "{inventory}");
    let secrets: Vec<String> = [
        "replication_password",
        "app_db_password",
        "mysqld_exporter_password",
    ]
    .iter()
    .map(|s| {
        std::fs::read_to_string(dir.join("secrets").join(s))
            .unwrap()
            .trim()
            .to_string()
    })
    .collect();
    assert!(secrets.iter().all(|s| s.len() == 32), "{secrets:?}");

    // 5. Plan.
    let plan = foobar(dir, &["plan"], &secrets);
    assert_eq!(plan.code, 0);
    shows(
        &block(&page, "## 5.", "text", 0),
        &plan.text,
        "`foobar plan`",
    );

    // 6. Save, show, apply.
    let saved = foobar(dir, &["plan", "--out", "plan.json"], &secrets);
    assert_eq!(saved.code, 0);
    assert!(
        saved
            .text
            .contains("plan saved to plan.json; apply it with `foobar apply plan.json`"),
        "{}",
        saved.text
    );
    let show = foobar(dir, &["show", "plan.json"], &secrets);
    assert_eq!(show.code, 0);
    let apply = foobar(dir, &["apply", "plan.json", "--yes"], &secrets);
    assert_eq!(apply.code, 0);
    shows(
        &block(&page, "## 6.", "text", 0),
        &apply.text,
        "`foobar apply plan.json`",
    );

    // 7. Plan again: what the page shows, line for line (numbers aside).
    let again = foobar(dir, &["plan", "--detailed-exitcode"], &secrets);
    assert_eq!(again.code, 0);
    let masked = |t: &str| t.lines().map(numbers_masked).collect::<Vec<_>>();
    assert_eq!(
        masked(&again.text),
        masked(&block(&page, "## 7.", "text", 0)),
        "docs/quickstart.md step 8 must show what the second plan printed:\n{}",
        again.text
    );

    // 8. Verify, then the load balancer.
    let verify = foobar(dir, &["verify"], &secrets);
    assert_eq!(verify.code, 0, "{}", verify.text);
    shows(
        &block(&page, "## 8.", "text", 0),
        &verify.text,
        "`foobar verify`",
    );
    let mut served = Vec::new();
    for _ in 0..4 {
        let out = Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "5",
                "-H",
                "Host: www.example.com",
                "http://127.0.1.1/",
            ])
            .output()
            .unwrap();
        served.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    println!("{served:?}");
    for host in ["web-01", "web-02"] {
        let line = format!("served by {host} (app version 1)");
        assert!(served.contains(&line), "{served:?}");
        assert!(block(&page, "## 8.", "text", 1).contains(&line));
    }
}
