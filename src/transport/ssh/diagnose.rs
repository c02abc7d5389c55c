//! Why connecting failed, in plain words: OpenSSH's own reason from the master's log, asked
//! again louder when the ssh config silences it or a proxy hid it, and a failed host key
//! check turned into the file at fault and the fix.
//!
//! In: an openssh error or ssh's log, and the [`ConnectionSpec`]. Out: one line of reason.

use std::ffi::OsString;
use std::time::Duration;

use openssh::Error as SshError;

use crate::transport::ConnectionSpec;

/// The master's log when the proxy (ProxyJump, ProxyCommand) went away before the server
/// said hello: the proxy's own reason is elsewhere.
pub(super) fn proxy_failed(reason: &str) -> bool {
    reason.contains("kex_exchange_identification: Connection closed")
        || reason.contains("Connection closed by UNKNOWN port")
}

/// OpenSSH's own words for a failed connection (`Connection refused`, `Permission denied
/// (publickey).`, host key mismatches...), from the master's log.
pub(super) fn connect_failure_reason(e: &SshError) -> String {
    match e {
        // An OS error: `ssh` itself could not be started.
        SshError::Connect(io) if io.raw_os_error().is_some() => {
            format!("cannot run the local `ssh` command: {io}")
        }
        // Empty when the ssh config silences the log.
        SshError::Connect(io) => clean_ssh_log(&io.to_string()),
        SshError::Master(io) => format!("cannot create the ssh control socket directory: {io}"),
        other => error_chain(other),
    }
}

/// Run `ssh ... true` with the same options as the master and `LogLevel=ERROR`, only to learn
/// why connecting fails; `None` if it says nothing (or, by chance, succeeds now).
pub(super) async fn probe_failure_reason(spec: &ConnectionSpec, limit: Duration) -> Option<String> {
    let mut ssh = tokio::process::Command::new("ssh");
    ssh.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o"])
        .arg(if spec.strict_host_key_checking {
            "StrictHostKeyChecking=yes"
        } else {
            "StrictHostKeyChecking=accept-new"
        })
        .arg("-o")
        .arg(format!(
            "ConnectTimeout={}",
            spec.connect_timeout.as_secs().max(1)
        ));
    if let Some(config) = &spec.ssh_config {
        ssh.arg("-F").arg(config);
    }
    if let Some(user) = &spec.user {
        ssh.arg("-l").arg(user);
    }
    if let Some(port) = spec.port {
        ssh.arg("-p").arg(port.to_string());
    }
    if let Some(key) = &spec.identity_file {
        ssh.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(key);
    }
    if let Some(known_hosts) = &spec.known_hosts_file {
        let mut option = OsString::from("UserKnownHostsFile=");
        option.push(known_hosts);
        ssh.arg("-o").arg(option);
    }
    ssh.arg("--").arg(&spec.destination).arg("true");
    let output = tokio::time::timeout(limit, ssh.output()).await.ok()?.ok()?;
    if output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stderr);
    let reason = clean_ssh_log(text.trim_start_matches("ssh: "));
    (!reason.is_empty()).then_some(reason)
}

/// A failed host key check, said plainly with the file at fault and the fix; `None` for any
/// other failure. `log` is ssh's log, joined by [`clean_ssh_log`].
pub(crate) fn host_key_reason(log: &str, spec: &ConnectionSpec) -> Option<String> {
    let lines: Vec<&str> = log.split("; ").map(str::trim).collect();
    // "Offending ED25519 key in /path/known_hosts:2"
    let offending = lines
        .iter()
        .filter(|l| l.starts_with("Offending "))
        .find_map(|l| {
            l.split_once(" key in ")
                .map(|(_, rest)| rest.trim().to_string())
        });
    let configured = spec
        .known_hosts_file
        .as_ref()
        .map(|p| p.display().to_string());
    let changed = log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || log.contains("has changed and you have requested strict checking");
    if changed {
        let at = offending.or(configured.clone());
        let file = at
            .as_deref()
            .map(|a| a.rsplit_once(':').map_or(a, |(f, _)| f).to_string())
            .unwrap_or_else(|| "~/.ssh/known_hosts".to_string());
        let fingerprint = lines
            .iter()
            .position(|l| l.starts_with("The fingerprint for the"))
            .and_then(|i| lines.get(i + 1))
            .filter(|l| l.starts_with("SHA256:"))
            .map(|f| format!(" It now presents {}.", f.trim_end_matches('.')))
            .unwrap_or_default();
        return Some(format!(
            "the host key of {} changed since it was recorded in {}: refused (a reinstalled host, or a man in the middle).{fingerprint} \
             Check the new key's fingerprint on the host itself (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), \
             then remove the old key with `ssh-keygen -f '{file}' -R '{}'` and run again",
            spec.host,
            at.as_deref().unwrap_or(&file),
            spec.destination,
        ));
    }
    if log.contains("host key is known for") && log.contains("requested strict checking") {
        let file = configured.unwrap_or_else(|| {
            "the known_hosts file of your ssh config (UserKnownHostsFile)".to_string()
        });
        return Some(format!(
            "no host key is known for {} in {file} and `strict_host_key_checking` is true: refused. \
             Add its key after checking the fingerprint (`ssh-keyscan {} >> {file}`), \
             or set `strict_host_key_checking: accept-new` to trust it on first contact",
            spec.host, spec.destination,
        ));
    }
    None
}

/// ssh's log lines, trimmed, without the noise of accepting a new host key, one line.
pub(crate) fn clean_ssh_log(log: &str) -> String {
    log.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added "))
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::ssh::tests::spec;

    /// What OpenSSH 9.2 logs (at `LogLevel=ERROR`) for a key that changed, joined by
    /// `clean_ssh_log`.
    #[test]
    fn a_changed_host_key_is_said_plainly_with_the_fix() {
        let log = clean_ssh_log(
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
             @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
             Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n\
             It is also possible that a host key has just been changed.\n\
             The fingerprint for the ED25519 key sent by the remote host is\n\
             SHA256:abcDEF123.\n\
             Please contact your system administrator.\n\
             Add correct host key in /tmp/k/known_hosts to get rid of this message.\n\
             Offending ED25519 key in /tmp/k/known_hosts:2\n\
             \x20 remove with:\n\
             \x20 ssh-keygen -f \"/tmp/k/known_hosts\" -R \"web-01\"\n\
             Host key for web-01 has changed and you have requested strict checking.\n\
             Host key verification failed.\n",
        );
        let spec = spec();
        let why = host_key_reason(&log, &spec).expect("recognised");
        assert!(
            why.starts_with("the host key of web-01 changed since it was recorded in /tmp/k/known_hosts:2: refused"),
            "{why}"
        );
        assert!(why.contains("It now presents SHA256:abcDEF123."), "{why}");
        assert!(
            why.contains(&format!(
                "`ssh-keygen -f '/tmp/k/known_hosts' -R '{}'`",
                spec.destination
            )),
            "{why}"
        );
        assert!(host_key_reason("Connection refused", &spec).is_none());
        let unknown = host_key_reason(
            "No ED25519 host key is known for web-01 and you have requested strict checking.; Host key verification failed.",
            &spec,
        )
        .expect("recognised");
        assert!(unknown.contains("accept-new"), "{unknown}");
    }

    #[test]
    fn ssh_log_is_kept_verbatim_minus_host_key_noise() {
        assert_eq!(
            clean_ssh_log(
                "Warning: Permanently added '127.0.1.2' (ED25519) to the list of known hosts.\r\ndeploy@127.0.1.2: Permission denied (publickey).\r\n"
            ),
            "deploy@127.0.1.2: Permission denied (publickey)."
        );
        assert_eq!(
            clean_ssh_log("connect to host 127.0.1.99 port 22: Connection refused\n"),
            "connect to host 127.0.1.99 port 22: Connection refused"
        );
        assert_eq!(clean_ssh_log("  \n"), "");
    }
}
