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

/// `foobar schema` is a JSON Schema the shipped inventories satisfy and a wrong one fails,
/// checked by a real validator (python3-jsonschema).
#[test]
fn the_json_schema_accepts_the_shipped_inventories_and_refuses_a_wrong_one() {
    let run = foobar_in(&repo(), &["schema"]);
    assert_eq!(run.code, 0, "{run:?}");
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("inventory.schema.json");
    std::fs::write(&schema, &run.stdout).unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(repo().join("inventories/lab.yml"))
            .unwrap()
            .replacen("vars:\n", "vars:\n  flavor: postgres\n  mysql_port: 0\n", 1),
    )
    .unwrap();
    let check = |inventory: &std::path::Path| {
        std::process::Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml, jsonschema\n\
                 s = json.load(open(sys.argv[1]))\n\
                 errors = sorted(e.message for e in jsonschema.Draft202012Validator(s).iter_errors(yaml.safe_load(open(sys.argv[2]))))\n\
                 print('\\n'.join(errors)); sys.exit(1 if errors else 0)",
            ])
            .arg(&schema)
            .arg(inventory)
            .output()
            .expect("python3 with jsonschema and yaml (scripts/test installs them)")
    };
    for inv in [
        "inventories/lab.yml",
        "inventories/production.yml",
        "inventories/lab-net.yml",
        "inventories/vagrant.yml",
        "docs/examples/quickstart/inventory.yml",
        "tests/fixtures/previous/production.yml",
        "tests/fixtures/previous/lab.yml",
    ] {
        let out = check(&repo().join(inv));
        assert!(
            out.status.success(),
            "{inv} fails the schema:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = check(&bad);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a wrong inventory passed");
    assert!(
        said.contains("'postgres' is not one of ['mariadb', 'mysql']"),
        "{said}"
    );
    assert!(said.contains("0 is less than the minimum of 1"), "{said}");
}

/// The lab inventory with its own group names, each role mapped to one in a line.
fn renamed_groups(p: &Project) {
    let inv = p.read("inventories/lab.yml");
    let groups = inv.find("\ngroups:\n").unwrap();
    let mut text = inv[..groups].to_string();
    text.push_str(
        "\ngroups:\n  edge:\n    hosts: [lb-01]\n  frontends:\n    hosts: [web-01, web-02]\n  \
         sql_primary:\n    hosts: [web-01]\n  sql_replicas:\n    hosts: [web-02]\n  sql:\n    \
         children: [sql_primary, sql_replicas]\n  metrics:\n    hosts: [lb-01]\n\n\
         roles:\n  loadbalancer: edge\n  web: frontends\n  db_primary: sql_primary\n  \
         db_replica: sql_replicas\n  databases: sql\n  monitoring: metrics\n",
    );
    p.write("inventories/lab.yml", &text);
}

#[test]
fn a_role_mapped_to_an_unknown_group_or_an_unknown_role_is_refused_and_an_empty_role_too() {
    for (snapshot, from, to) in [
        (
            "contract_roles_unknown_group",
            "  web: frontends\n",
            "  web: frontend\n",
        ),
        (
            "contract_roles_unknown_role",
            "  monitoring: metrics\n",
            "  monitorin: metrics\n",
        ),
        (
            "contract_roles_empty",
            "  edge:\n    hosts: [lb-01]\n",
            "  edge:\n    hosts: []\n",
        ),
    ] {
        let p = Project::new();
        renamed_groups(&p);
        p.edit("inventories/lab.yml", from, to);
        let run = render(&p);
        assert_eq!(run.code, 1, "{snapshot}: {run:?}");
        insta::assert_snapshot!(snapshot, stderr(&run));
    }
}

/// Renamed groups, every role mapped: apply from bare hosts, a rolling change, verify, and
/// a graph that draws every role.
#[test]
fn an_inventory_with_its_own_group_names_applies_rolls_and_verifies() {
    let _lab = lab_lock();
    lab(&["reset"]);
    let p = Project::new();
    renamed_groups(&p);
    let apply = p.foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert_eq!(p.foobar(&["verify"]).code, 0);
    p.edit(
        "inventories/lab.yml",
        "app_version: \"1\"",
        "app_version: \"2\"",
    );
    let roll = p.foobar(&["apply", "--yes"]);
    assert_eq!(roll.code, 0, "{roll:?}");
    assert!(
        roll.stdout.contains(
            "rollout: play `application servers` changes 1 at a time: web-01, then web-02"
        ),
        "{roll:?}"
    );
    assert_eq!(
        roll.stdout
            .matches("done drained and put in maintenance on lb-01")
            .count(),
        2,
        "each web host drained behind the load balancer: {roll:?}"
    );
    let verify = p.foobar(&["verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    let graph = p.foobar(&["graph"]);
    assert_eq!(graph.code, 0, "{graph:?}");
    for host in ["lb-01", "web-01", "web-02"] {
        assert!(graph.stdout.contains(host), "{}", graph.stdout);
    }
    assert!(graph.stdout.contains("Prometheus"), "{}", graph.stdout);
    assert!(
        graph.stdout.to_lowercase().contains("replica"),
        "{}",
        graph.stdout
    );
    lab(&["reset"]);
}

/// `foobar init` from an empty directory: an inventory that loads and renders with the
/// stack, secrets in 0600 files it never prints, nothing overwritten on a second run.
#[test]
fn init_writes_an_inventory_that_renders_and_secrets_it_never_prints() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let playbook = repo().join("playbooks/site.yml");
    let args = [
        "init",
        site.to_str().unwrap(),
        "--lb",
        "lb-01=10.0.0.10",
        "--web",
        "web-01=10.0.0.11,web-02=10.0.0.12",
        "-p",
        playbook.to_str().unwrap(),
    ];
    let run = foobar_in(dir.path(), &args);
    assert_eq!(run.code, 0, "{run:?}");
    let inventory = std::fs::read_to_string(site.join("inventory.yml")).unwrap();
    insta::assert_snapshot!("contract_init_inventory", inventory);
    for s in [
        "replication_password",
        "app_db_password",
        "mysqld_exporter_password",
    ] {
        let path = site.join("secrets").join(s);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{s}");
        let value = std::fs::read_to_string(&path).unwrap();
        assert_eq!(value.trim().len(), 32, "{s}");
        assert!(!run.all().contains(value.trim()), "init printed {s}");
    }
    assert!(site.join("inventory.schema.json").is_file());
    let out = dir.path().join("out");
    let render = std::process::Command::new(env!("CARGO_BIN_EXE_foobar"))
        .args(["render", "-i"])
        .arg(site.join("inventory.yml"))
        .arg("-p")
        .arg(&playbook)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(render.status.success(), "{render:?}");
    let again = foobar_in(dir.path(), &args);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("exists"), "{again:?}");
}

/// `foobar init` for the local test hosts, applied with no edit: verify is green.
#[test]
fn init_for_the_local_hosts_applies_and_verifies_with_no_edit() {
    let _lab = lab_lock();
    lab(&["reset"]);
    let p = Project::new();
    let ssh_config = repo().join(".lab/ssh_config");
    let run = foobar_in(
        &p.path(""),
        &[
            "init",
            "site",
            "--lb",
            "lb-01=127.0.1.1",
            "--web",
            "web-01=127.0.1.2,web-02=127.0.1.3",
            "--db-network",
            "127.%",
            "--haproxy-bind",
            "127.0.1.1:80",
            "--ssh-config",
            ssh_config.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let inv = ["-i", "site/inventory.yml", "-p", "playbooks/site.yml"];
    let apply = foobar_in(&p.path(""), &[&["apply", "--yes"][..], &inv[..]].concat());
    assert_eq!(apply.code, 0, "{apply:?}");
    let verify = foobar_in(&p.path(""), &[&["verify"][..], &inv[..]].concat());
    assert_eq!(verify.code, 0, "{verify:?}");
    lab(&["reset"]);
}

/// A handler's `run:` is not a template (refused), a stack secret that is not declared is
/// named as a secret (never "define it under vars:"), an empty primary role is a load error.
#[test]
fn run_with_template_syntax_a_missing_secret_and_an_empty_primary_are_clear_errors() {
    let p = Project::new();
    p.edit(
        "playbooks/site.yml",
        "      - name: restart database\n        service: \"{{ mysql_service }}\"\n        action: restart\n",
        "      - name: restart database\n        run: \"systemctl restart {{ mysql_service }}\"\n",
    );
    let run = render(&p);
    assert_eq!(run.code, 1, "{run:?}");
    insta::assert_snapshot!("contract_run_templated", stderr(&run));

    let p = Project::new();
    p.edit("inventories/lab.yml", "vars:\n", "vars:\n  https: true\n");
    let run = render(&p);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("`tls_certificate` is a secret")
            && run.stderr.contains("declare it under `secrets:`")
            && !run.stderr.contains("define it under `vars:`"),
        "{run:?}"
    );

    let p = Project::new();
    p.edit(
        "inventories/lab.yml",
        "  db_primary:\n    hosts: [web-01]\n",
        "  db_primary:\n    hosts: []\n",
    );
    p.edit(
        "inventories/lab.yml",
        "  db_replica:\n    hosts: [web-02]\n",
        "  db_replica:\n    hosts: []\n",
    );
    let run = render(&p);
    assert_eq!(run.code, 1, "{run:?}");
    insta::assert_snapshot!("contract_empty_primary", stderr(&run));
}

/// The quickstart's inventory is what its `foobar init` line writes, byte for byte.
#[test]
fn the_quickstart_inventory_is_what_its_init_line_writes() {
    let page = std::fs::read_to_string(repo().join("docs/quickstart.md")).unwrap();
    let line = page
        .lines()
        .find(|l| l.starts_with("foobar init . "))
        .expect("the quickstart's init line");
    let dir = tempfile::tempdir().unwrap();
    let playbook = repo().join("playbooks/site.yml");
    let mut args: Vec<&str> = line
        .trim_start_matches("foobar ")
        .split_whitespace()
        .collect();
    args.extend(["-p", playbook.to_str().unwrap()]);
    let run = foobar_in(dir.path(), &args);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("inventory.yml")).unwrap(),
        std::fs::read_to_string(repo().join("docs/examples/quickstart/inventory.yml")).unwrap()
    );
}

/// A secret of the stack written under `vars:` is refused; a play whose only group the
/// inventory declares empty is skipped with a warning (exit 0).
#[test]
fn a_secret_under_vars_is_refused_and_a_play_of_an_empty_group_warns() {
    let p = with_vars("  tls_key: \"-----BEGIN PRIVATE KEY-----\"\n");
    let run = render(&p);
    assert_eq!(run.code, 1, "{run:?}");
    insta::assert_snapshot!("contract_secret_under_vars", stderr(&run));

    let p = Project::new();
    p.edit(
        "inventories/lab.yml",
        "  monitoring:\n    hosts: [lb-01]\n",
        "  monitoring:\n    hosts: []\n",
    );
    let run = render(&p);
    assert_eq!(run.code, 0, "{run:?}");
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("warning:"))
        .collect();
    insta::assert_snapshot!("contract_play_of_an_empty_group", warnings.join("\n"));
}
