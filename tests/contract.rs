//! The stack's contract (playbooks/variables.yml): defaults under the inventory, every value
//! checked against its type at load with its file and line, `foobar vars` naming where each
//! value came from, and the previous release's lab inventory applied unchanged to the local
//! test hosts.

mod common;

use common::*;

/// The lab project with `extra` added under the inventory's `vars:`.
fn with_vars(extra: &str) -> Project {
    let p = Project::new();
    p.edit("inventories/lab.yml", "vars:\n", &format!("vars:\n{extra}"));
    p
}

fn render(p: &Project) -> Run {
    p.foobar(&["render", "--out", p.path("out").to_str().unwrap()])
}

/// The diagnostic, with the project's temporary path out of it.
fn stderr(run: &Run) -> String {
    run.stderr.clone()
}

#[test]
fn a_value_of_the_wrong_type_is_refused_at_its_line() {
    for (name, line) in [
        ("contract_bool_string", "  https: no\n"),
        ("contract_enum", "  flavor: postgres\n"),
        ("contract_enum_typo", "  flavor: mysqll\n"),
        ("contract_port", "  mysql_port: 99999\n"),
        (
            "contract_duration",
            "  haproxy_fast_check_interval: 2 seconds\n",
        ),
    ] {
        let p = with_vars(line);
        let run = render(&p);
        assert_eq!(run.code, 1, "{name}: {run:?}");
        assert!(
            !p.path("out").exists(),
            "{name}: rendered despite the error"
        );
        insta::assert_snapshot!(name, stderr(&run));
    }
}

#[test]
fn every_wrong_value_is_reported_in_one_run() {
    let p = with_vars("  https: \"false\"\n  nginx_port: 0\n  app_root: opt/app\n");
    let host = p.read("inventories/lab.yml").replacen(
        "      server_id: 2\n",
        "      server_id: 2\n      app_port: eighty\n",
        1,
    );
    p.write("inventories/lab.yml", &host);
    let run = render(&p);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stderr.matches("error: ").count(), 4, "{run:?}");
    assert!(run.stderr.contains("4 errors"), "{run:?}");
    insta::assert_snapshot!("contract_four_at_once", stderr(&run));
}

#[test]
fn an_unknown_variable_is_a_warning_with_did_you_mean() {
    let p = with_vars("  haproxy_bnd: \"*:8080\"\n  my_own_setting: 1\n");
    let run = render(&p);
    assert_eq!(run.code, 0, "{run:?}");
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("warning:"))
        .collect();
    insta::assert_snapshot!("contract_unknown_variables", warnings.join("\n"));
}

#[test]
fn defaults_fill_what_the_inventory_leaves_out_and_it_wins_where_it_sets() {
    let p = Project::new();
    // A group's value and a host's value over the defaults.
    p.edit(
        "inventories/lab.yml",
        "  web:\n    hosts: [web-01, web-02]\n",
        "  web:\n    hosts: [web-01, web-02]\n    vars:\n      app_port: 8001\n",
    );
    p.edit(
        "inventories/lab.yml",
        "      server_id: 1\n",
        "      server_id: 1\n      app_root: /srv/foobar\n",
    );
    let run = p.foobar(&["vars", "web-01"]);
    assert_eq!(run.code, 0, "{run:?}");
    let line = |name: &str| {
        run.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("no {name} in {}", run.stdout))
            .trim()
            .to_string()
    };
    assert!(
        line("mysql_port").starts_with("mysql_port = 3306    # default (playbooks/variables.yml:"),
        "{run:?}"
    );
    assert_eq!(
        line("app_port"),
        "app_port = 8001    # group web (inventories/lab.yml:58:17)"
    );
    assert_eq!(
        line("app_root"),
        "app_root = \"/srv/foobar\"    # host vars (inventories/lab.yml:46:17)"
    );
    assert_eq!(
        line("haproxy_bind"),
        "haproxy_bind = \"127.0.1.1:80\"    # inventory vars (inventories/lab.yml:12:17)"
    );
    assert_eq!(
        line("replication_password"),
        "replication_password = <secret:replication_password>    # a secret, not read"
    );
    let json = p.foobar(&["vars", "web-01", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["hosts"]["web-01"]["app_port"]["value"], 8001);
    assert_eq!(
        doc["hosts"]["web-01"]["app_port"]["source"]["kind"],
        "group"
    );
    assert_eq!(doc["hosts"]["web-02"], serde_json::Value::Null);
    // What render writes follows the same layers.
    let out = p.path("out");
    assert_eq!(
        p.foobar(&["render", "--out", out.to_str().unwrap()]).code,
        0
    );
    let site =
        std::fs::read_to_string(out.join("web-01/etc/nginx/sites-available/foobar")).unwrap();
    assert!(site.contains("127.0.1.2:8001"), "{site}");
}

/// The lab inventory the previous release's README taught, applied unchanged: the new
/// variables take their defaults, monitoring is off without its group.
#[test]
fn the_previous_release_s_lab_inventory_applies_and_verifies_unchanged() {
    let _lab = lab_lock();
    lab(&["reset"]);
    let p = Project::new();
    let old = std::fs::read_to_string(repo().join("tests/fixtures/previous/lab.yml"))
        .unwrap()
        .replace(
            "../.lab/ssh_config",
            repo().join(".lab/ssh_config").to_str().unwrap(),
        );
    p.write("inventories/lab.yml", &old);
    let apply = p.foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let verify = p.foobar(&["verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    let plan = p.foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    lab(&["reset"]);
}
